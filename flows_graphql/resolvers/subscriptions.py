"""Subscriptions, served over graphql-transport-ws on /graphql (docs/live-updates.md).

Each reads the process's event log through a feed (live/broker.py) filtered by what
the viewer may see; at delivery the event's object is loaded again through the
viewer's own reads — the same rules, row-level security included, as a query made at
that moment — and an event whose object the viewer cannot see is not delivered. Those
reads are shared by every subscriber of the process whose reads are made of the same
inputs (live/sharing.py): an event costs a statement per kind of viewer, not per
subscriber.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Hashable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError

from .. import faults, logs
from ..context import Context
from ..live.broker import Filter, LoggedEvent
from ..live.kinds import BILLING_RUN_KINDS, KINDS, PAYMENT_KINDS
from ..loaders import Loaders
from ..types.events import BillReady, Event
from ..types.node import NODE_SOURCES, NodeSource, TypedRow, parse_id

if TYPE_CHECKING:
    from ..types.billing import BillingRun, Payment

log = logging.getLogger("flows_graphql.live")

Info = strawberry.Info[Context, None]
Lazy = strawberry.lazy


def _invalid(message: str, argument: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "INVALID", "argument": argument})


def _forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


def _base(context: Context, kinds: frozenset[str] | None, **narrower: object) -> Filter:
    viewer = context.viewer
    return Filter(
        esco_ids=viewer.esco_scope,
        kinds=kinds,
        # A customer's events are about them: never another household's.
        customer_id=viewer.customer_id if viewer.role == "customer" else None,
        **narrower,  # type: ignore[arg-type]
    )


async def _after(context: Context, after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    text = str(after)
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise _invalid("`after` is the id of an event (ASCII digits).", "after")
    value = int(text)
    assert context.broker is not None
    if value > context.broker.last_id:
        # A cursor from the future would silently swallow every event to come.
        raise _invalid("`after` is past the newest event.", "after")
    try:
        oldest = await context.broker.oldest_id()
    except Exception as exc:
        raise _masked(exc) from exc
    if oldest is not None and value < oldest - 1:
        raise _invalid(
            f"Events before {oldest} are no longer kept; resume from a newer event.", "after"
        )
    return value


def _broker(context: Context) -> None:
    if context.broker is None or context.socket is None:
        raise GraphQLError(
            "Subscriptions are served over graphql-transport-ws on /graphql.",
            extensions={"code": "INVALID"},
        )


def _masked(exc: Exception) -> GraphQLError:
    """A failure while a subscription runs, as the client may see it: an outage is
    `UNAVAILABLE` (resubscribe with `after:`), anything else `INTERNAL`; never the
    driver's text (hosts, SQL). The detail goes to the log with the request id."""
    code = faults.classify(exc)
    request_id = logs.new_request_id()
    if code is None:
        log.error("subscription failed", exc_info=exc, extra={"requestId": request_id})
        return GraphQLError(
            "Internal error.", extensions={"code": "INTERNAL", "requestId": request_id}
        )
    log.warning(
        "subscription interrupted",
        extra={"error": code, "requestId": request_id, "cause": type(exc).__name__},
    )
    return GraphQLError(
        "The event log could not be read; subscribe again with `after:` the last event.",
        extensions={"code": code, "requestId": request_id},
    )


class _Reads:
    """One event's reads for every subscriber of the same reads (live/sharing.py): its
    object, read once through these loaders (the viewer's rules and row-level security,
    as a query's), and the loaders the selections resolve on, so what they load beyond
    the object is one batched statement for them all."""

    def __init__(self, context: Context) -> None:
        viewer = context.viewer
        self.db = context.db.fresh(viewer.esco_scope)
        self.loaders = Loaders(self.db, viewer.esco_scope, viewer.customer_id)
        self.loaders.today = context.today
        self.failed = False
        self._subject: asyncio.Future[Any] | None = None

    def subject(self, source: NodeSource, key: str) -> Awaitable[Any]:
        if self._subject is None:
            self._subject = asyncio.ensure_future(self._fetch(source, key))
        # Shielded: a subscriber that goes away does not cancel the others' read.
        return asyncio.shield(self._subject)

    async def _fetch(self, source: NodeSource, key: str) -> Any:
        try:
            return await source.fetch(self.loaders, key)
        except BaseException:
            self.failed = True  # the next subscriber to come reads again
            raise
        finally:
            # The connection goes back at once: a selection that loads more takes one
            # for its batch, and most load nothing beyond the object.
            await self.db.end_snapshot()

    async def idle(self) -> None:
        await self.db.end_snapshot()

    def drop(self) -> None:
        self.loaders.release()


def _group(context: Context) -> Hashable:
    """What a subscriber's reads are made of (Loaders, RequestDb): equal groups read
    the same rows, so they share each event's reads."""
    viewer = context.viewer
    return (viewer.esco_scope, viewer.customer_id, context.today)


async def _deliver(
    context: Context, filter: Filter, after: int | None
) -> AsyncIterator[tuple[LoggedEvent, TypedRow]]:
    """The feed's events whose object the viewer can see now, each with that object."""
    broker = context.broker
    assert broker is not None
    group = _group(context)
    feed = broker.open(filter, after, group)
    events = feed.__aiter__()
    try:
        while True:
            try:
                event, expected = await events.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise _masked(exc) from exc
            # In the step the feed handed the event over: the share cannot go meanwhile.
            key = (event.id, group)
            share = broker.shares.acquire(key, expected, lambda: _Reads(context))
            try:
                source = NODE_SOURCES.get(event.entity)
                if source is None:
                    continue
                # One event at a time per connection: its fields resolve on the shared
                # reads, which end before the next event (no transaction idles between).
                async with context.delivery:
                    try:
                        row = await share.value.subject(source, event.entity_key)
                    except Exception as exc:
                        raise _masked(exc) from exc
                    if row is not None:
                        with context.lend(share.value.db, share.value.loaders):
                            yield event, TypedRow(event.entity, row)
            finally:
                await broker.shares.release(key, share)
    finally:
        await events.aclose()
        broker.close(feed)


@strawberry.type(description="Live updates; see docs/live-updates.md.")
class Subscription:
    @strawberry.subscription(
        description="Events of the log the viewer may see, from now or after an event id."
    )
    async def events(
        self,
        info: Info,
        types: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these kinds (e.g. `payment.created`)."),
        ] = None,
        after: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Replay the events after this id first."),
        ] = None,
    ) -> AsyncGenerator[Event, None]:
        context = info.context
        _broker(context)
        kinds = None
        if types is not None:
            unknown = sorted(set(types) - set(KINDS))
            if unknown:
                named = ", ".join(u[:40] for u in unknown[:5])
                raise _invalid(f"Unknown event types: {named}.", "types")
            kinds = frozenset(types)
        start = await _after(context, after)
        async for event, subject in _deliver(context, _base(context, kinds), start):
            yield Event(
                id=strawberry.ID(str(event.id)),
                type=event.type,
                occurred_at=event.created_at,
                subject_row=subject,
            )

    @strawberry.subscription(description="An ESCO's billing runs as they start and end.")
    async def billing_run_changed(
        self,
        info: Info,
        esco_id: Annotated[strawberry.ID, strawberry.argument(description="The ESCO.")],
    ) -> AsyncGenerator[Annotated[BillingRun, Lazy("flows_graphql.types.billing")], None]:
        context = info.context
        _broker(context)
        if context.viewer.role == "customer":
            raise _forbidden("Billing runs are for operators.")
        esco = parse_id(str(esco_id), "Esco")
        scope = context.viewer.esco_scope
        if esco is None or (scope is not None and esco not in scope):
            raise GraphQLError("No ESCO with this id.", extensions={"code": "NOT_FOUND"})
        filter = Filter(esco_ids=frozenset({esco}), kinds=BILLING_RUN_KINDS)
        async for _event, run in _deliver(context, filter, None):
            yield run.row

    @strawberry.subscription(description="The viewer's bills, as each month is billed.")
    async def monthly_bill_ready(self, info: Info) -> AsyncGenerator[BillReady, None]:
        context = info.context
        _broker(context)
        filter = _base(context, frozenset({"monthly_costs.ready"}))
        async for event, customer in _deliver(context, filter, None):
            yield BillReady(
                month=date.fromisoformat(str(event.payload["month"])), customer_row=customer.row
            )

    @strawberry.subscription(description="An account's payments as they are made and move.")
    async def payment_status_changed(
        self,
        info: Info,
        account_id: Annotated[strawberry.ID, strawberry.argument(description="The account.")],
    ) -> AsyncGenerator[Annotated[Payment, Lazy("flows_graphql.types.billing")], None]:
        context = info.context
        _broker(context)
        account = parse_id(str(account_id), "Account")
        if account is None:
            raise _invalid("Not an account id.", "accountId")
        filter = _base(context, PAYMENT_KINDS, account_id=account)
        async for _event, payment in _deliver(context, filter, None):
            yield payment.row
