"""The Starlette application: GraphQL, health and readiness, request ids and JSON logs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import strawberry
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import faults, graphiql, logs, metrics, negotiation, tracing
from .auth.apikeys import KEY_CHANNEL
from .auth.authenticate import Authenticator, ProviderUnavailable, Unauthenticated
from .auth.identities import GRANT_CHANNEL, subject_of
from .auth.tokens import jwt_secret
from .config import Settings
from .cors import cors_options
from .cutoff import Cutoffs
from .db.engine import create_engine, discard
from .db.migrate import head_revision
from .db.models.events import EVENTS_CHANNEL
from .db.replica import Replicas
from .db.request import Parking
from .db.urls import asyncpg_dsn
from .exports import ExportRefused, export_csv
from .graphql_view import FlowsGraphQL
from .live.broker import Broker
from .live.webhooks import WebhookWorker
from .observe import Observed, OverBudget
from .ratelimit import Spend
from .rules.clock import Today, london_today
from .schema import schema
from .services.billing_jobs import BillingJobs

log = logging.getLogger("flows_graphql.http")


# On every answer. The API's answers are per viewer: no cache may keep them.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]
# JSON runs nothing. GraphiQL's page brings its own policy (graphiql.CSP); any
# other HTML gets that one too.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
HTML_CSP = graphiql.CSP.encode()
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS) | {b"content-security-policy"}


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID (printable, cut to 64 characters), else a new one."""
    incoming = ""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")  # the last one, as a dict of them keeps
    return incoming[:64] if incoming and incoming.isprintable() else logs.new_request_id()


def _stamped(headers: list[tuple[bytes, bytes]], rid: bytes) -> list[tuple[bytes, bytes]]:
    """An answer's headers with its request id and the security headers (a header the
    answer sets itself is kept), without `server`."""
    kept: list[tuple[bytes, bytes]] = []
    present: set[bytes] = set()
    html = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"server":
            continue
        if lower == b"content-type" and value.startswith(b"text/html"):
            html = True
        present.add(lower)
        kept.append((name, value))
    if present.isdisjoint(_SECURITY_NAMES):
        kept += SECURITY_HEADERS
        kept.append((b"content-security-policy", HTML_CSP if html else API_CSP))
    else:
        kept += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
        if b"content-security-policy" not in present:
            kept.append((b"content-security-policy", HTML_CSP if html else API_CSP))
    kept.append((b"x-request-id", rid))
    return kept


class RequestIdMiddleware:
    """Gives every HTTP request an id (or keeps the caller's X-Request-ID), puts it in
    every log line of the request and in the response, adds the security headers to
    every answer (ours and Starlette's own), and logs one access line.

    One layer for the three: each ASGI layer wraps `send` once more per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.stamp(self.app, scope, receive, send)

    @staticmethod
    async def stamp(
        app: ASGIApp, scope: Scope, receive: Receive, send: Send, vary_origin: bool = False
    ) -> None:
        """`app` answering with the request id, the security headers and (with
        `vary_origin`, what CORSMiddleware adds to an answer to a request without an
        Origin) `Vary: Origin`."""
        rid = _request_id(scope)
        rid_bytes = rid.encode()
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                if vary_origin:
                    headers = _vary_origin(list(headers))
                message["headers"] = _stamped(headers, rid_bytes)
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            logs.request_id.reset(token)


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Vary` with `Origin` added, as CORSMiddleware writes it for a request that
    names no origin: the answer depends on whether one is sent."""
    vary = [value for name, value in headers if name.lower() == b"vary"]
    if not vary:
        headers.append((b"vary", b"Origin"))
        return headers
    merged = b", ".join([*vary, b"Origin"])
    return [(n, v) for n, v in headers if n.lower() != b"vary"] + [(b"vary", merged)]


class FlowsApp(Starlette):
    """The application. A GraphQL request from no browser origin (an app, a partner's system,
    a server) goes straight to /graphql's handler, with what the layers it skips
    would have done to it — the request id and security headers, CORS's
    `Vary: Origin`, JSON for a Starlette HTTPException, a plain 500 for anything
    else. Everything else (browser origins and their preflights, other paths and
    methods, a root path) takes Starlette's stack. Those layers (error handling,
    CORS, exceptions, routing) cost an empty query a quarter of its CPU."""

    # /graphql's handler (Observed and what it wraps); None: every request takes the stack.
    graphql: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.graphql is None
            or scope["type"] != "http"
            or scope["path"] != "/graphql"
            or scope["method"] not in ("POST", "GET")
            or scope.get("root_path")
            or any(name == b"origin" for name, _ in scope["headers"])
        ):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope.setdefault("router", self.router)
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await RequestIdMiddleware.stamp(self._routed, scope, receive, tracking, True)
        except Exception:
            # Starlette's ServerErrorMiddleware (outside the request id, as there).
            if not started:
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.graphql is not None
        scope.setdefault("path_params", {})
        try:
            await self.graphql(scope, receive, send)
        except HTTPException as exc:  # Starlette's ExceptionMiddleware
            await (await _http_error(Request(scope), exc))(scope, receive, send)


def fault_response(code: str, message: str) -> JSONResponse:
    """The answer to a request stopped by a database fault or its cutoff before
    GraphQL ran (faults.py): 503 with Retry-After, the code and the request id."""
    body = {
        "errors": [
            {"message": message, "extensions": {"code": code, "requestId": logs.request_id.get()}}
        ]
    }
    return JSONResponse(body, 503, headers={"Retry-After": str(faults.RETRY_AFTER_S)})


class Bounded:
    """Outermost on /graphql and /exports: gives the request its cutoff (cutoff.py;
    `seconds`, else the request cap) and answers in JSON whatever database fault or
    cutoff escapes from below. One that comes after the response began (an export's
    stream) can only end it unfinished: the client sees a cut response, never a
    complete-looking one."""

    def __init__(self, app: ASGIApp, cutoffs: Cutoffs, seconds: float | None = None) -> None:
        self.app = app
        self.cutoffs = cutoffs
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with self.cutoffs.open(self.seconds) as cutoff:
            scope.setdefault("state", {})["cutoff"] = cutoff
            try:
                async with cutoff.scope():
                    await self.app(scope, receive, tracking)
            except Exception as exc:
                code = faults.classify(exc)
                if code is None:
                    raise
                logs.failure(log, logging.WARNING, "request stopped", exc, code)
                if started:
                    return
                message = exc.message if isinstance(exc, faults.Cut) else faults.MESSAGES[code]
                await fault_response(code, message)(scope, receive, send)


class Authenticated:
    """In front of /graphql: every operation needs credentials (GraphiQL's page does
    not); a bad or missing one is answered 401 before any GraphQL work."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, graphiql: bool) -> None:
        self.app = app
        self.authenticator = authenticator
        self.graphiql = graphiql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if not (wants_page and self.graphiql):
            try:
                # A credential not seen before is looked up in the database: a fault
                # there, or the request's cutoff, goes up to Bounded (503 in JSON).
                viewer = await self.authenticator.viewer(request.headers)
            except Unauthenticated as exc:
                response = JSONResponse(
                    {
                        "errors": [
                            {"message": exc.message, "extensions": {"code": "UNAUTHENTICATED"}}
                        ]
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type=negotiation.CONTENT_TYPE[
                        negotiation.response_media_type(request.headers.get("accept"))
                        or negotiation.JSON
                    ],
                )
                await response(scope, receive, send)
                return
            except ProviderUnavailable as exc:
                log.warning("identity provider unavailable", extra={"error": exc.message})
                response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": "The identity provider's keys could not be "
                                "fetched; try again shortly.",
                                "extensions": {"code": "UNAVAILABLE"},
                            }
                        ]
                    },
                    status_code=503,
                    headers={"Retry-After": "5"},
                    media_type=negotiation.CONTENT_TYPE[
                        negotiation.response_media_type(request.headers.get("accept"))
                        or negotiation.JSON
                    ],
                )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["viewer"] = viewer
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (an unknown path, a method a route does not take) in
    JSON with a code, like every other answer."""
    assert isinstance(exc, HTTPException)
    code = "NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
    return JSONResponse(
        {"errors": [{"message": exc.detail, "extensions": {"code": code}}]},
        status_code=exc.status_code,
        headers=exc.headers,
    )


class ExportResponse(StreamingResponse):
    """A CSV stream whose rows (and their snapshot, a pooled connection) are closed the
    moment the response ends — finished, the client gone, or its cutoff passed — not
    whenever the garbage collector finalizes the generator."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


def create_app(
    settings: Settings,
    database_url: str,
    today: Today = london_today,
    graphql_schema: strawberry.Schema = schema,
) -> Starlette:
    """The application. `today` is the billing clock (tests pass a fixed day, and may
    serve another build of the schema: schema.build_schema)."""
    engine = create_engine(settings, database_url, api_role=True)
    expected_revision = head_revision()
    metrics.instrument_pool(engine, capacity=2 * settings.db_pool_size)  # + as many overflow
    # Billing runs' statements are bounded by the run's own timeout, not the read
    # path's: asyncpg's client-side command timeout (the read bound + 1 s) would cut a
    # long statement of a big ESCO's run. Connections are made only when a run starts.
    billing_engine = create_engine(
        settings, database_url, api_role=True, command_timeout_s=settings.billing_timeout_s + 1
    )
    billing_jobs = BillingJobs(billing_engine, settings)
    replicas = (
        Replicas(settings, engine, settings.database_replica_url)
        if settings.database_replica_url
        else None
    )
    if replicas is not None:
        metrics.instrument_pool(replicas.replica, capacity=2 * settings.db_pool_size)
    authenticator = Authenticator(
        engine,
        jwt_secret(settings),
        max_token_lifetime_s=settings.max_token_lifetime_s,
        issuers=settings.oidc_issuers,
        oidc_timeout_s=settings.oidc_timeout_s,
    )
    # The process's one listening connection (as the owner: it serves every ESCO of
    # the process): the event log for subscriptions, and API key changes. LISTEN needs
    # a session of its own: on the server itself, not through a transaction pooler.
    broker = Broker(
        asyncpg_dsn(settings.direct_url(database_url)),
        retention=timedelta(days=settings.event_retention_days),
    )
    # A waiting transaction would pin a transaction pooler's server connection.
    parking = None if settings.behind_pooler else Parking(engine, most=settings.db_pool_size)
    graphql = FlowsGraphQL(
        graphql_schema,
        settings=settings,
        engine=engine,
        today=today,
        authenticator=authenticator,
        broker=broker,
        billing_jobs=billing_jobs,
        replicas=replicas,
        parking=parking,
    )

    def key_changed(key_id: str) -> None:
        authenticator.key_changed(key_id)
        # A revoked key's subscriptions end at once (a new key has none).
        graphql.end_principal(f"partner:{key_id}")

    broker.listen(KEY_CHANNEL, key_changed)

    def identity_changed(payload: str) -> None:
        # A revoked staff grant or an unlinked identity: its subscriptions end in every
        # process at once; reconnecting signs in afresh, with what is left (if anything).
        subject = subject_of(payload)
        if subject is not None:
            for role in ("operator", "customer"):
                graphql.end_principal(f"{role}:{subject}")

    broker.listen(GRANT_CHANNEL, identity_changed)
    # Partner webhooks are sent from every server process (docs/webhooks.md), woken by
    # the same listening connection when events commit.
    webhooks = (
        WebhookWorker(asyncpg_dsn(database_url), settings) if settings.webhooks_worker else None
    )
    if webhooks is not None:
        broker.listen(EVENTS_CHANNEL, webhooks.wake)
    broker.connected.append(authenticator.listening_changed)
    cutoffs = Cutoffs(settings.request_timeout_s, settings.shutdown_grace_s)

    async def export(request: Request) -> Response:
        name: str = request.path_params["name"]
        kind, dot, suffix = name.rpartition(".")
        viewer = request.scope["state"]["viewer"]
        spent: list[Spend] = []

        async def admit(cost: int) -> None:
            # An export spends its cost of the principal's rate limit, like a query.
            spend = await graphql.admission.charge(viewer, cost)
            if spend is not None:
                spent.append(spend)

        try:
            if not dot or suffix != "csv":
                raise ExportRefused(404, "NOT_FOUND", "Exports are /exports/<kind>.csv.")
            chunks = await export_csv(
                engine,
                viewer,
                kind,
                request.query_params.get("esco"),
                request.query_params.get("month"),
                today,
                admit,
            )
        except ExportRefused as refused:
            body = {"errors": [{"message": refused.message, "extensions": {"code": refused.code}}]}
            return JSONResponse(body, status_code=refused.status)
        except OverBudget as over:
            body = {"errors": [{"message": over.message, "extensions": {"code": "RATE_LIMITED"}}]}
            return JSONResponse(body, status_code=429, headers=over.headers)
        filename = (
            f"{request.query_params.get('esco')}-{request.query_params.get('month')}-{kind}.csv"
        )
        return ExportResponse(
            chunks,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                **(spent[0].headers() if spent else {}),
            },
        )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def revision() -> Any:
        conn = await engine.connect()
        try:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except BaseException:
            await discard(conn)
            raise
        await conn.close()
        return current

    async def readyz(request: Request) -> JSONResponse:
        # Answers within FLOWS_READYZ_TIMEOUT_S whatever the database does (a frozen
        # server would otherwise hold the probe for as long as it is frozen).
        try:
            async with asyncio.timeout(settings.readyz_timeout_s):
                try:
                    current = await revision()
                except Exception as exc:
                    # A connection that died since it was pooled: once more, afresh.
                    if not faults.is_broken_connection(exc):
                        raise
                    current = await revision()
        except Exception as exc:  # any failure to answer means not ready
            logs.failure(
                log, logging.WARNING, "readiness check failed", exc, faults.classify(exc) or "ERROR"
            )
            return JSONResponse(
                {"status": "unavailable", "reason": "database"},
                503,
                headers={"Retry-After": str(faults.RETRY_AFTER_S)},
            )
        if current != expected_revision:
            return JSONResponse(
                {"status": "unavailable", "reason": "migrations", "revision": current}, 503
            )
        ready: dict[str, Any] = {"status": "ready", "revision": current}
        if replicas is not None:
            # Informative: without the standby the primary serves every read.
            ready["replica"] = replicas.status()
        return JSONResponse(ready)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A page of rows makes many short-lived objects, alive until the response is
        # built; with the default thresholds the collector ran for a third of a
        # dashboard request, walking them again and again (bench/README.md). Freeze
        # what start-up built, let the young generation grow to 50,000 objects, and
        # sweep the old one rarely: the objects of a request are freed by reference
        # counting, not by the collector.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 10, 100)
        first_pass = asyncio.Event()
        recovery = asyncio.create_task(_recover(billing_jobs, first_pass))
        # Normally done before the first request; a database that does not answer
        # yet does not hold the start-up up.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_pass.wait(), RECOVERY_WAIT_S)
        log.info("started", extra={"env": settings.env})
        await broker.start()
        if webhooks is not None:
            await webhooks.start()
        if replicas is not None:
            replicas.start()
        with _drain_on_exit_signals(cutoffs):
            try:
                yield
            finally:
                recovery.cancel()
                # Runs in progress: waited for, then rolled back and marked failed
                # (docs/billing-runs.md).
                await billing_jobs.shutdown()
                if webhooks is not None:
                    await webhooks.stop()
                await broker.stop()
                await authenticator.oidc.close()
                await graphql.admission.close()
                if replicas is not None:
                    await replicas.stop()
                await billing_engine.dispose()
                if parking is not None:
                    await parking.close()
                await engine.dispose()
                metrics.process_exited(os.getpid())  # its pool gauges leave the sums
                log.info("stopped")
                logs.flush()

    # Observed (metrics, traces) outside: refusals of every kind are counted.
    graphql_http = Observed(
        Bounded(Authenticated(graphql, authenticator, settings.graphiql), cutoffs)
    )
    routes: list[BaseRoute] = [
        Route("/graphql", graphql_http, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route(
            "/exports/{name}",
            # Bounded: a fault before the first row is a JSON 503; the whole export,
            # streaming included, has its own cap (a client that stops reading).
            Bounded(
                Authenticated(request_response(export), authenticator, False),
                cutoffs,
                settings.export_timeout_s,
            ),
            methods=["GET"],
        ),
        Route("/metrics", metrics.endpoint(settings)),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if settings.graphiql:
        # The files GraphiQL's page loads, from the package (no credentials, like the page).
        routes.append(Mount(graphiql.MOUNT, app=graphiql.assets()))
    app = FlowsApp(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.graphql = graphql_http
    # Outside the authentication: a 401 must carry CORS headers too, or the browser
    # hides it from the dashboard. Inside the security headers: preflights get them.
    app.add_middleware(CORSMiddleware, **cors_options(settings))
    app.add_middleware(RequestIdMiddleware)
    app.state.engine = engine
    app.state.broker = broker
    app.state.webhooks = webhooks
    app.state.cutoffs = cutoffs
    app.state.authenticator = authenticator
    app.state.billing_jobs = billing_jobs
    app.state.replicas = replicas
    app.state.parking = parking
    return app


@contextlib.contextmanager
def _drain_on_exit_signals(cutoffs: Cutoffs) -> Iterator[None]:
    """On SIGTERM/SIGINT uvicorn stops accepting, waits up to its graceful-shutdown
    timeout (FLOWS_SHUTDOWN_GRACE_S) and then cancels what still runs — which answers
    a plain-text 500. Chained to uvicorn's handler, the signal also brings every
    request's cutoff to just before that moment, so each is answered in JSON (its
    committed mutations reported, the one under way rolled back) before it could be
    cancelled. The lifespan runs inside uvicorn's signal capture."""
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if getattr(handler, "__name__", "") != "handle_exit":  # not under uvicorn
            continue

        def chained(signum: Any, frame: Any, handler: Any = handler) -> None:
            loop.call_soon_threadsafe(cutoffs.drain)
            handler(signum, frame)

        previous[sig] = handler
        signal.signal(sig, chained)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


RECOVERY_WAIT_S = 5.0
RECOVERY_RETRY_S = 5.0


async def _recover(billing_jobs: BillingJobs, first_pass: asyncio.Event) -> None:
    """Billing runs a crash or a restart left `running` are marked failed. The server
    starts without waiting for the database: until it answers, this tries again; and
    a run whose month's lock is still held (another process's, or a killed process's
    statement still finishing) is looked at again until it is no longer running."""
    while True:
        try:
            found = await billing_jobs.recover()
        except Exception as exc:
            log.warning(
                "interrupted billing runs not checked yet", extra={"error": type(exc).__name__}
            )
            await asyncio.sleep(RECOVERY_RETRY_S)
            continue
        first_pass.set()
        if found.marked:
            log.warning("interrupted billing runs marked failed", extra={"runs": len(found.marked)})
        if not found.busy:
            return
        await asyncio.sleep(RECOVERY_RETRY_S)


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` (serve --workers N): DATABASE_URL is set by the CLI."""
    settings = Settings.from_env()
    logs.configure()
    tracing.configure_from_env()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the server with `flows-graphql serve`")
    return create_app(settings, settings.database_url)
