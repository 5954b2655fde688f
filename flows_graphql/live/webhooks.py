"""The webhook delivery worker: from the event log to partners' URLs, at least once.

It runs inside `serve` (started by the app's lifespan) and as `flows-graphql webhooks
work`; any number of them may run against one database:
- Fan-out: for each enabled endpoint, the events of its ESCO and types after its
  cursor become delivery rows, and the cursor moves, in one transaction (a crash
  repeats nothing and skips nothing; two workers lock endpoints with SKIP LOCKED).
- Claim: a delivery is due when it is pending, its time has come, no other worker
  holds its lease, and no earlier event of the same endpoint is still pending (the
  order per endpoint). Claiming takes a lease (`locked_until`) with
  `FOR UPDATE SKIP LOCKED`, so no two workers send one delivery at once; a worker
  killed while sending loses nothing: its lease runs out and the delivery is claimed
  again (its unfinished attempt is marked `interrupted`).
- Send: the URL is checked again and its name resolved, every address checked, and
  the request goes to the checked address (live/targets.py); redirects are not
  followed; each send is bounded by FLOWS_WEBHOOKS_TIMEOUT_S and at most the first
  RESPONSE_PREFIX characters of the answer are kept.
- After a failure the next try waits by the retry schedule; after the last one the
  delivery is `failed` and the next event of the endpoint goes. An endpoint whose
  failures have lasted FLOWS_WEBHOOKS_DISABLE_AFTER_S is disabled (audited).

The worker works as the database owner: it serves every ESCO, and each row it writes
names the ESCO of the endpoint it belongs to (an endpoint only ever gets its own
ESCO's events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from .. import faults, logs
from ..config import Settings
from .messages import delivery_body, message_id
from .targets import TargetRefused, parse_target, resolve

log = logging.getLogger("flows_graphql.webhooks")

# Characters of a receiver's answer kept in the delivery log.
RESPONSE_PREFIX = 512
# Events fanned out to one endpoint per round.
FAN_OUT_PAGE = 1000
USER_AGENT = "flows-graphql-webhooks/1"
# Deliveries of one endpoint sent in a row by one slot before it goes back to the loop
# (where the endpoints whose heads waited longest come first).
CHAIN = 32
# A lease outlives the send's own bound by this much (recording the outcome).
LEASE_MARGIN_S = 2.0

# One statement, so one round trip and its own transaction: the due heads locked (SKIP
# LOCKED) and leased, the unfinished attempts of an earlier lease marked `interrupted`,
# this attempt written, and what the send needs of its endpoint read. The UPDATE of
# webhook_attempts reads the statement's snapshot, so it cannot see (and mark) the rows
# this statement inserts.
CLAIM_SQL = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled'
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.locked_until IS NULL OR d.locked_until <= now())
      AND ($3::uuid IS NULL OR d.endpoint_id = $3::uuid)
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.status = 'pending'
            AND p.event_id < d.event_id)
    ORDER BY d.next_attempt_at, d.event_id
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d
       SET locked_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
      FROM due WHERE d.id = due.id
    RETURNING d.id, d.esco_id, d.endpoint_id, d.event_id, d.event_type, d.body,
              d.attempts, d.updated_at
), interrupted AS (
    UPDATE webhook_attempts
       SET outcome = 'interrupted',
           error = 'The sending worker stopped before an answer; its lease ran out.'
     WHERE delivery_id IN (SELECT id FROM claimed) AND outcome = 'sending'
), attempt AS (
    INSERT INTO webhook_attempts
           (esco_id, delivery_id, endpoint_id, event_id, event_type, attempt)
    SELECT esco_id, id, endpoint_id, event_id, event_type, attempts FROM claimed
    RETURNING id, delivery_id
)
SELECT c.id, c.esco_id, c.endpoint_id, c.event_id, c.body::text AS body, c.attempts,
       c.updated_at, a.id AS attempt_id, e.url, e.secret
  FROM claimed c
  JOIN attempt a ON a.delivery_id = c.id
  JOIN webhook_endpoints e ON e.id = c.endpoint_id
 ORDER BY c.event_id
"""
# A success, recorded in one statement (one round trip, its own transaction). The
# endpoint's row is locked before the delivery's, as the mutations lock them
# (services/webhooks.py; two orders could deadlock): the delivery's UPDATE reads
# `endpoint`'s result, so it runs after it. The delivery gets its new state only if
# the row is still as the claim left it (its lease not taken over, no redelivery asked
# for since); otherwise only this attempt's lease is given back.
SUCCEEDED_SQL = """
WITH endpoint AS (
    UPDATE webhook_endpoints SET failing_since = NULL
     WHERE id = $1 AND failing_since IS NOT NULL
    RETURNING id
), delivery AS (
    UPDATE webhook_deliveries
       SET status = CASE WHEN updated_at = $4 THEN 'succeeded' ELSE status END,
           delivered_at = CASE WHEN updated_at = $4 THEN now() ELSE delivered_at END,
           locked_until = NULL
     WHERE id = $2 AND attempts = $3 AND (SELECT count(*) FROM endpoint) >= 0
    RETURNING id
)
UPDATE webhook_attempts
   SET outcome = 'succeeded', status_code = $6, duration_ms = $7, error = NULL,
       response_prefix = $8, next_retry_at = NULL
 WHERE id = $5 AND (SELECT count(*) FROM delivery) >= 0
"""
# When the head of some endpoint's queue (its earliest pending delivery) falls due or
# its lease runs out; the deliveries behind a head wait for it, not for a clock.
NEXT_DUE_SQL = """
SELECT extract(epoch FROM min(greatest(d.next_attempt_at, coalesce(d.locked_until,
       d.next_attempt_at))) - now())
  FROM webhook_deliveries d
  JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled'
 WHERE d.status = 'pending'
   AND NOT EXISTS (
       SELECT 1 FROM webhook_deliveries p
       WHERE p.endpoint_id = d.endpoint_id AND p.status = 'pending'
         AND p.event_id < d.event_id)
"""
# Whether any enabled endpoint's cursor is behind the log (then fan_out has work).
BEHIND_SQL = """
SELECT EXISTS (
    SELECT 1 FROM webhook_endpoints
     WHERE status = 'enabled' AND cursor < (SELECT coalesce(max(id), 0) FROM events))
"""
# Clients kept, one per host name (see WebhookWorker.client_for).
CLIENTS_KEPT = 64


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    prefix: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


async def send(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    msg_id: str,
    body: str,
    *,
    timeout_s: float,
    allow_loopback: bool,
) -> Outcome:
    """One attempt: checked, resolved, signed, sent to the checked address, bounded."""
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    prefix: str | None = None
    try:
        async with asyncio.timeout(timeout_s):
            target = parse_target(url, allow_loopback)
            addresses = await resolve(target, allow_loopback)
            now = datetime.now(UTC)
            headers = {
                "host": target.host_header,
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(secret).sign(msg_id, now, body),
            }
            extensions: dict[str, Any] = {}
            if target.scheme == "https":
                # TLS to the checked address, for the name in the URL (SNI and the
                # certificate's check).
                extensions["sni_hostname"] = target.host
            for i, address in enumerate(addresses):
                request = client.build_request(
                    "POST",
                    target.url_for(address),
                    content=body.encode(),
                    headers=headers,
                    extensions=extensions,
                )
                try:
                    response = await client.send(request, stream=True, follow_redirects=False)
                    break
                except httpx.ConnectError:
                    # Nothing was sent: the name's next (checked) address, if any.
                    if i == len(addresses) - 1:
                        raise
            try:
                status = response.status_code
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) >= RESPONSE_PREFIX * 4:
                        break
                prefix = _printable(kept.decode("utf-8", "replace")[:RESPONSE_PREFIX]) or None
            finally:
                await response.aclose()
            if 300 <= status < 400:
                error = "Redirects are not followed; answer 2xx at the registered URL."
            elif not 200 <= status < 300:
                error = f"The receiver answered {status}."
    except TargetRefused as refused:
        error = f"Not sent: {refused}"
    except TimeoutError:
        error = f"No answer within {timeout_s:g} s."
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_PREFIX]
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"[:RESPONSE_PREFIX]
    except Exception as exc:  # a worker must outlive whatever one send meets
        log.warning("webhook attempt failed unexpectedly", extra={"error": repr(exc)})
        error = f"Not sent: {type(exc).__name__}."
    duration = int((time.perf_counter() - started) * 1000)
    return Outcome(status, error, prefix, duration)


@dataclass(frozen=True)
class Claimed:
    id: Any
    esco_id: Any
    endpoint_id: Any
    event_id: int
    body: str
    attempts: int
    attempt_id: Any
    url: str
    secret: str
    # The row's updated_at as the claim left it: a later change (a redelivery asked for
    # meanwhile) is not overwritten by this attempt's outcome.
    claimed_at: Any = None


class WebhookWorker:
    def __init__(self, dsn: str, settings: Settings) -> None:
        self.dsn = dsn
        self.settings = settings
        self.concurrency = settings.webhooks_concurrency
        self._pool: asyncpg.Pool | None = None
        # One HTTP client per host name: a pooled connection is keyed by the address it
        # went to, so clients shared between names could send one name's request over
        # a TLS session made (and its certificate checked) for another name.
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        # Failing since the last round that worked (the database is down, say).
        self._troubled = False

    @property
    def lease_s(self) -> float:
        return self.settings.webhooks_timeout_s + LEASE_MARGIN_S

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self.concurrency + 2,
            timeout=5,
            server_settings={"application_name": "flows-webhooks", "timezone": "UTC"},
            # Behind a transaction pooler a statement prepared on one server connection
            # is unknown on the next (docs/pooling.md): unnamed statements only.
            statement_cache_size=0 if self.settings.behind_pooler else 100,
        )
        self._task = asyncio.create_task(self._run(), name="flows-webhooks")

    def wake(self, *_: object) -> None:
        """New events committed (the broker's notification) or a delivery finished."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            # Cancelled sends are claimed again once their lease runs out.
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._pool is not None:
            await self._pool.close()

    def client_for(self, url: str) -> httpx.AsyncClient:
        host = urlsplit(url).hostname or ""
        client = self._clients.pop(host, None)
        if client is None:
            # No proxies from the environment (they would connect to the name again,
            # not to the address checked), no redirects.
            client = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(self.settings.webhooks_timeout_s),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            )
        self._clients[host] = client
        while len(self._clients) > CLIENTS_KEPT:
            _, oldest = self._clients.popitem(last=False)
            task = asyncio.create_task(oldest.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def _run(self) -> None:
        delay = 0.2
        while True:
            # Cleared before the round, not after: a send that finishes (or an event
            # that commits) during the round wakes the next one at once. Cleared after,
            # its wake-up was lost and the endpoint's next delivery waited for the poll
            # (a quarter of one endpoint's deliveries waited a whole second).
            self._wake.clear()
            try:
                wait = await self.round()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._trouble(exc)
                wait = delay
                delay = min(delay * 2, 5.0)
                self._wake.clear()  # an outage backs off, whatever woke it meanwhile
            else:
                if self._troubled:
                    self._troubled = False
                    log.info("webhook worker resumed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def round(self) -> float:
        """Fan out, claim what is due and start sending it; the seconds until there may
        be more to do (a wake-up comes sooner)."""
        await self.fan_out()
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return self.settings.webhooks_poll_s  # a finished send wakes the loop
        claimed = await self.claim(free)
        for one in claimed:
            task = asyncio.create_task(self._deliver(one))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        if len(claimed) == free:
            # Every slot is busy: a finished send wakes the loop before any clock would.
            return self.settings.webhooks_poll_s
        assert self._pool is not None
        due = await self._pool.fetchval(NEXT_DUE_SQL)
        wait = self.settings.webhooks_poll_s
        if due is not None:
            wait = min(wait, max(float(due), 0.02))
        return wait

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            # Its lease runs out and the delivery is sent again (at least once).
            self._trouble(error)
        self._wake.set()

    def _trouble(self, error: BaseException) -> None:
        """One line per outage, not one per round or delivery (a database that is
        down for a minute would otherwise fill the log). A database fault is INFO: the
        outage is the database's, reported by whatever watches it (/readyz, the
        requests' own lines), and nothing is lost meanwhile; anything else is an ERROR."""
        if self._troubled:
            return
        self._troubled = True
        code = faults.classify(error)
        logs.failure(
            log,
            logging.INFO if code else logging.ERROR,
            "webhook worker paused; retrying with backoff",
            error,
            code or "INTERNAL",
        )

    async def fan_out(self) -> int:
        """Deliveries for the events after each enabled endpoint's cursor; returns how
        many were written."""
        assert self._pool is not None
        written = 0
        # Most rounds (one after every send) find nothing new: one statement says so,
        # without the transaction and its locks.
        if not await self._pool.fetchval(BEHIND_SQL):
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
            endpoints = await conn.fetch(
                "SELECT id, esco_id, event_types, cursor FROM webhook_endpoints "
                "WHERE status = 'enabled' AND cursor < $1 ORDER BY id "
                "FOR UPDATE SKIP LOCKED",
                top,
            )
            for endpoint in endpoints:
                # Every id up to `top` is committed or never will be (ids are in
                # commit order), so moving the cursor to `top` skips nothing.
                events = await conn.fetch(
                    "SELECT id, esco_id, type, entity, entity_key, customer_id, account_id, "
                    "payload, created_at FROM events "
                    "WHERE esco_id = $1 AND id > $2 AND id <= $3 AND type = ANY($4::text[]) "
                    f"ORDER BY id LIMIT {FAN_OUT_PAGE}",
                    endpoint["esco_id"],
                    endpoint["cursor"],
                    top,
                    endpoint["event_types"],
                )
                cursor = top if len(events) < FAN_OUT_PAGE else events[-1]["id"]
                if events:
                    await conn.executemany(
                        "INSERT INTO webhook_deliveries "
                        "(esco_id, endpoint_id, event_id, event_type, body) "
                        "VALUES ($1, $2, $3, $4, $5::jsonb) "
                        "ON CONFLICT (endpoint_id, event_id) DO NOTHING",
                        [
                            (
                                endpoint["esco_id"],
                                endpoint["id"],
                                e["id"],
                                e["type"],
                                json.dumps(delivery_body(_EventRow(e))),
                            )
                            for e in events
                        ],
                    )
                    written += len(events)
                await conn.execute(
                    "UPDATE webhook_endpoints SET cursor = $2 WHERE id = $1",
                    endpoint["id"],
                    cursor,
                )
        return written

    async def claim(self, limit: int, endpoint: Any = None) -> list[Claimed]:
        """Up to `limit` due deliveries (of `endpoint` only, when given), leased."""
        assert self._pool is not None
        rows = await self._pool.fetch(CLAIM_SQL, limit, self.lease_s, endpoint)
        return [
            Claimed(
                r["id"],
                r["esco_id"],
                r["endpoint_id"],
                r["event_id"],
                r["body"],
                r["attempts"],
                r["attempt_id"],
                r["url"],
                r["secret"],
                r["updated_at"],
            )
            for r in rows
        ]

    async def _deliver(self, claimed: Claimed) -> None:
        """Send, record, and while that worked, claim and send the endpoint's next
        delivery in the same slot (up to CHAIN): an endpoint's deliveries go one after
        another anyway, and claiming its next here takes one statement instead of a
        round of the worker's loop, which every slot would otherwise wait for in turn."""
        for sent in range(1, CHAIN + 1):
            outcome = await send(
                self.client_for(claimed.url),
                claimed.url,
                claimed.secret,
                message_id(claimed.event_id),
                claimed.body,
                timeout_s=self.settings.webhooks_timeout_s,
                allow_loopback=self.settings.webhooks_allow_loopback,
            )
            await self.record(claimed, outcome)
            if not outcome.succeeded or sent == CHAIN:
                # A retry is due later, and a long chain gives its slot back: the
                # loop claims them.
                return
            following = await self.claim(1, claimed.endpoint_id)
            if not following:
                return
            claimed = following[0]

    def _retry_after(self, attempts: int) -> float | None:
        """Seconds before the next try after `attempts` tries; None: no more."""
        schedule = self.settings.webhooks_retry_schedule
        return schedule[attempts - 1] if attempts <= len(schedule) else None

    async def record(self, claimed: Claimed, outcome: Outcome) -> None:
        assert self._pool is not None
        if outcome.succeeded:
            await self._pool.execute(
                SUCCEEDED_SQL,
                claimed.endpoint_id,
                claimed.id,
                claimed.attempts,
                claimed.claimed_at,
                claimed.attempt_id,
                outcome.status_code,
                outcome.duration_ms,
                outcome.prefix,
            )
            return
        async with self._pool.acquire() as conn, conn.transaction():
            # The endpoint's row before the delivery's, as the mutations lock them
            # (services/webhooks.py): two orders could deadlock.
            status = "failed"
            await self._failing(conn, claimed)
            retry = self._retry_after(claimed.attempts)
            if retry is None:
                await self._settle(conn, claimed, "status = 'failed', locked_until = NULL")
            else:
                await self._settle(
                    conn,
                    claimed,
                    "locked_until = NULL, next_attempt_at = now() + make_interval(secs => $4)",
                    retry,
                )
            await conn.execute(
                "UPDATE webhook_attempts SET outcome = $2, status_code = $3, duration_ms = $4, "
                "error = $5, response_prefix = $6, "
                "next_retry_at = CASE WHEN $7::float8 IS NULL THEN NULL "
                "ELSE now() + make_interval(secs => $7::float8) END "
                "WHERE id = $1",
                claimed.attempt_id,
                status,
                outcome.status_code,
                outcome.duration_ms,
                outcome.error,
                outcome.prefix,
                retry,
            )

    async def _settle(
        self, conn: asyncpg.Connection, claimed: Claimed, assignments: str, *args: Any
    ) -> None:
        """The delivery's new state, if the row is still as this attempt's claim left it
        (its lease not taken over, no redelivery asked for since). Otherwise only this
        attempt's lease is given back, so what was asked meanwhile goes ahead at once."""
        done = await conn.execute(
            f"UPDATE webhook_deliveries SET {assignments} "
            "WHERE id = $1 AND attempts = $2 AND updated_at = $3",
            claimed.id,
            claimed.attempts,
            claimed.claimed_at,
            *args,
        )
        if done == "UPDATE 0":
            await conn.execute(
                "UPDATE webhook_deliveries SET locked_until = NULL WHERE id = $1 AND attempts = $2",
                claimed.id,
                claimed.attempts,
            )

    async def _failing(self, conn: asyncpg.Connection, claimed: Claimed) -> None:
        """Mark the endpoint failing; disable it when that has lasted long enough."""
        disabled = await conn.fetchrow(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()), "
            "status = CASE WHEN failing_since <= now() - make_interval(secs => $2) "
            "THEN 'disabled' ELSE status END, "
            "disabled_at = CASE WHEN failing_since <= now() - make_interval(secs => $2) "
            "THEN now() ELSE disabled_at END, "
            "disabled_reason = CASE WHEN failing_since <= now() - make_interval(secs => $2) "
            "THEN $3 ELSE disabled_reason END "
            "WHERE id = $1 AND status = 'enabled' "
            "RETURNING status, esco_id, url",
            claimed.endpoint_id,
            self.settings.webhooks_disable_after_s,
            _disabled_reason(self.settings.webhooks_disable_after_s),
        )
        if disabled is not None and disabled["status"] == "disabled":
            log.warning(
                "webhook endpoint disabled after failing",
                extra={"endpoint": str(claimed.endpoint_id)},
            )
            await conn.execute(
                "INSERT INTO audit_log (esco_id, actor, action, entity, entity_id, changes) "
                "VALUES ($1, 'system', 'disableWebhookEndpoint', 'webhook_endpoint', $2, "
                "$3::jsonb)",
                disabled["esco_id"],
                str(claimed.endpoint_id),
                json.dumps({"changed": {"status": {"old": "enabled", "new": "disabled"}}}),
            )


def _disabled_reason(after_s: float) -> str:
    span = timedelta(seconds=after_s)
    return f"Every delivery failed for {span}; enable it again with updateWebhookEndpoint."


class _EventRow:
    """An events record read as the attribute row delivery_body takes."""

    def __init__(self, record: asyncpg.Record) -> None:
        self.id = record["id"]
        self.esco_id = record["esco_id"]
        self.type = record["type"]
        self.entity = record["entity"]
        self.entity_key = record["entity_key"]
        self.customer_id = record["customer_id"]
        self.account_id = record["account_id"]
        payload = record["payload"]
        self.payload = json.loads(payload) if isinstance(payload, str) else payload
        self.created_at = record["created_at"]
