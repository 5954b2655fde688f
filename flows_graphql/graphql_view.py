"""The /graphql endpoint: Strawberry's ASGI view with our context, the limits checked
before execution, masked errors, the per-request statement count, and the media type
and status codes of GraphQL-over-HTTP (docs/http.md)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, cast

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, GraphQLSchema, execute, specified_rules
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType
from strawberry.utils.operation import get_first_operation, get_operation_type

from . import faults, graphiql, logs, metrics, negotiation
from .auth.authenticate import Authenticator, ProviderUnavailable, Unauthenticated
from .auth.scopes import needs_read, read_refusal
from .auth.unlinked import allowed_for_unlinked
from .auth.viewer import ANONYMOUS, Viewer
from .caches import Bounded
from .config import Settings
from .context import Context
from .cutoff import BACKSTOP_S, Cutoff
from .db.engine import StatementCounter, current_counter
from .db.replica import Replicas
from .db.request import Parking, RequestDb
from .limits import Limits, TooComplex, check, document, has_unstorable_text, unstorable
from .live.broker import Broker
from .observe import Admission, OverBudget, operation_of
from .rules.clock import Today, london_today
from .services.billing_jobs import BillingJobs
from .trusted import (
    APP_ROLES,
    REQUIRED,
    DocumentRefused,
    Documents,
    Trusted,
    TrustedDocuments,
    parsed,
    requested_id,
    validated,
)
from .trusted import current as current_trusted

log = logging.getLogger("flows_graphql.errors")

# Error codes our own code raises on purpose; anything else is unexpected.
KNOWN_CODES = frozenset(
    {
        "INVALID",
        "NOT_FOUND",
        "FORBIDDEN",
        "QUERY_TOO_COMPLEX",
        "BAD_REQUEST",
        faults.UNAVAILABLE,
        faults.TIMEOUT,
        "RATE_LIMITED",
    }
)
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# Python exception details graphql-core appends to coercion errors, e.g. "[<class …>]".
PYTHON_DETAIL = re.compile(r"\s*\[<class [^\]]*\]")
# Request JSON deeper than this is refused; our variables need a handful of levels.
MAX_JSON_DEPTH = 64
# How long a read runs before its client's hang-up is watched for (_hang_up).
HANG_UP_WATCH_S = 0.05
# Distinct free texts whose verdicts a view keeps (as many as the parse cache).
FREE_TEXTS = 512
# graphql-core's default rules: the schema adds none (Strawberry's default too).
VALIDATION_RULES = tuple(specified_rules)
ALLOWED_OPERATIONS = {method: OperationType.from_http(method) for method in ("GET", "POST")}


class _Post:
    """The request adapter of a POST on the view's own path: the method is all that
    the hooks read of it."""

    method = "POST"


_POST = _Post()


def _not_json(constant: str) -> None:
    # Python's json reads NaN and Infinity, which JSON has not.
    raise ValueError(f"{constant} is not JSON")


def _nested_deeper(value: object, limit: int) -> bool:
    """Whether JSON nests lists/objects more than `limit` deep (iteratively: the value
    is hostile, and every later walk of it recurses)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


# The media type negotiated for the request being answered (None: nothing acceptable),
# set by `__call__` for the hooks Strawberry calls without the request.
media_type: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flows_media_type", default=negotiation.JSON
)
# The request's top-level JSON object (or GET's parameters) as decoded, for the fields
# Strawberry does not carry over (`documentId`): the first object decode_json returns.
_fields: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "flows_request_fields", default=None
)


class Refused(Exception):
    """A request refused before execution: answered with this status and code."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def _optional(data: dict[str, Any], name: str, kind: type, what: str) -> Any:
    """A request body's member `name`, of `kind` or null; else refused with Strawberry's
    own message (`parse_http_body`)."""
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise Refused(
            400,
            "BAD_REQUEST",
            f"The GraphQL operation's `{name}` must be {what} or null, if provided.",
        )
    return value


class CloseSocket(Exception):
    """`connection_init` answered by closing the socket with this code (docs/live-updates.md):
    1013 (try again later) for an outage, 4429 over the rate limit, 1011 for a bug.
    Strawberry closes every refusal with 4403 (forbidden), which would tell a client
    that retrying is pointless."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


# RFC 6455 §7.4.1 (IANA registry): the server is overloaded or unavailable for now.
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011
# graphql-ws's "too many requests", here: over the principal's rate limit.
RATE_LIMITED_CLOSE = 4429
# What opening a WebSocket costs of the rate limit: one request's least (a subscription
# then spends its document's cost, as over HTTP).
WS_CONNECT_COST = 1


def _over_reason(over: OverBudget) -> str:
    """A close reason (at most 123 bytes) for a connection over its rate limit."""
    return f"Rate limited: retry in {over.spend.retry_after()} s."


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are text frames; Strawberry would send our bytes
    (orjson) as binary ones, which strict clients (graphql-ws) cannot read."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        encoded = self.view.encode_json(message)
        text = encoded.decode() if isinstance(encoded, bytes) else encoded
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class SubscriptionsOnly(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws as we serve it: subscriptions only (queries and mutations
    go over HTTP, where their transaction, limits and masking live), each document
    checked against the same limits as an HTTP request before it runs, and a message
    of the wrong shape closing the socket with 4400 instead of failing the handler."""

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except CloseSocket as close:
            await self.websocket.close(code=close.code, reason=close.reason)

    async def handle_message(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.handle_invalid_message("A message is a JSON object with a `type`.")
            return
        if message["type"] == "subscribe":
            payload = message.get("payload")
            if (
                not isinstance(message.get("id"), str)
                or not isinstance(payload, dict)
                or not isinstance(payload.get("query"), str)
                or not isinstance(payload.get("variables") or {}, dict)
                or not isinstance(payload.get("operationName") or "", str)
            ):
                await self.handle_invalid_message(
                    "`subscribe` needs a string `id` and a `payload` with a string `query`."
                )
                return
            if self.connection_acknowledged:
                if message["id"] in self.operations:
                    await self.websocket.close(code=4409, reason="Subscriber already exists")
                    return
                refusal = await self._refusal(payload)
                if refusal is not None:
                    refused: Any = {"id": message["id"], "type": "error", "payload": [refusal]}
                    await self.send_message(refused)
                    return
        await super().handle_message(cast(Any, message))

    async def _refusal(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The error a `subscribe` is answered with instead of running, if any: the
        checks of an HTTP request, its rate limit included."""

        def error(code: str, text: str, **extra: Any) -> dict[str, Any]:
            return {"message": text, "extensions": {"code": code, **extra}}

        view: FlowsGraphQL = self.view  # type: ignore[assignment]
        query, variables = payload["query"], payload.get("variables")
        try:
            verdict = check(
                query, variables, payload.get("operationName"), view.limits, view.graphql_schema
            )
        except TooComplex as exc:
            return error("QUERY_TOO_COMPLEX", exc.message)
        if has_unstorable_text(query, variables, view.limits):
            return error(
                "INVALID", "Text may not contain a NUL character or an unpaired surrogate."
            )
        if verdict is not None and verdict.operation != "subscription":
            return error(
                "BAD_REQUEST",
                "Over WebSocket only subscriptions are served; send queries and mutations "
                "over HTTP.",
            )
        if verdict is not None and verdict.introspects and view.settings.production:
            return error("FORBIDDEN", "Introspection is for admins in production, over HTTP.")
        if verdict is not None:
            context: Context = self.context
            try:
                await view.admission.charge(context.viewer, verdict.cost)
            except OverBudget as over:
                return error("RATE_LIMITED", over.message, retryAfter=over.spend.retry_after())
        return None


class FlowsGraphQL(GraphQL[Context, None]):
    websocket_adapter_class = TextWebSocketAdapter
    graphql_transport_ws_handler_class = SubscriptionsOnly

    def __init__(
        self,
        schema: Any,
        *,
        settings: Settings,
        engine: AsyncEngine,
        today: Today = london_today,
        authenticator: Authenticator | None = None,
        broker: Broker | None = None,
        admission: Admission | None = None,
        billing_jobs: BillingJobs | None = None,
        trusted: TrustedDocuments | None = None,
        replicas: Replicas | None = None,
        parking: Parking | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        # Our own page, loading the GraphiQL build vendored into the package (no CDN).
        self._graphiql_html = graphiql.page_html()
        self.settings = settings
        # The limits tell connections and lists by their types.
        self.graphql_schema: GraphQLSchema = schema._schema
        self.engine = engine
        self.today = today
        self.authenticator = authenticator
        self.broker = broker
        # Open connections per principal, and how to end each of them at once.
        self.sockets: dict[str, set[asyncio.Event]] = {}
        self.billing_jobs = billing_jobs
        # A standby for queries (db/replica.py); None: everything on the primary.
        self.replicas = replicas
        # Finished reads' connections for the next reads (db/request.py); None: none.
        self.parking = parking
        self.limits = Limits(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            max_input_rows=settings.max_input_rows,
        )
        # Rate limits and the cost-only answer (observe.py).
        self.admission = admission or Admission(settings)
        # Operations registered by their sha256 (trusted.py); a bad manifest stops start-up.
        self.trusted = trusted or TrustedDocuments.from_manifest(settings.trusted_documents)
        # Free text's verdicts and checks by role, by its text (`_free_text`).
        self._texts: Bounded[str, Trusted] = Bounded(FREE_TEXTS)
        # Whether Strawberry's per-request pipeline may be left out (`_post`,
        # `_execute`): it is, as long as the schema uses none of what it is there for
        # (extensions but our Documents, directives, incremental delivery, streaming
        # transports, uploads). A schema that does takes Strawberry's way throughout.
        self.lean = (
            tuple(schema.extensions) == (Documents,)
            and not schema.directives
            and not schema.config.enable_experimental_incremental_execution
            and not self._stream_transport_map
            and not self.multipart_uploads_enabled
        )

    def encode_json(self, data: object) -> bytes:
        # orjson writes a dashboard's ~4,600 values in a fifth of json.dumps's time; text
        # it cannot encode (a lone surrogate echoed in an error) goes the standard way.
        try:
            return orjson.dumps(data)
        except (orjson.JSONEncodeError, TypeError):
            return json.dumps(data, separators=(",", ":")).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            length = 0
        accept = headers.get(b"accept")
        token = media_type.set(
            negotiation.response_media_type(None if accept is None else accept.decode("latin-1"))
        )
        trusted_token = current_trusted.set(None)
        try:
            if length > self.limits.max_body_bytes:
                raise Refused(400, "QUERY_TOO_COMPLEX", "The request body is too large.")
            if self.lean and scope["method"] == "POST" and _json(headers.get(b"content-type")):
                await self._post(scope, self._bounded(receive), send)
            else:
                await super().__call__(scope, self._bounded(receive), send)
        except Refused as refused:
            await self._refuse(refused, scope, receive, send)
        except TooComplex as exc:
            await self._refuse(Refused(400, "QUERY_TOO_COMPLEX", exc.message), scope, receive, send)
        except OverBudget as over:
            limited = Refused(429, "RATE_LIMITED", over.message, over.headers)
            await self._refuse(limited, scope, receive, send)
        finally:
            media_type.reset(token)
            current_trusted.reset(trusted_token)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry answers its own refusals (no query, an unknown operation, a
        mutation over GET, …) in plain text; ours are JSON with a code."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            code = "NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
            raise Refused(exc.status_code, code, exc.reason) from exc

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A JSON POST, answered as Strawberry's view (`GraphQL.__call__` and `run`)
        answers it, in its order — sub-response, context, body, execution, result,
        response — without its request adapters, content-type parsing and page checks,
        which cost a small request a tenth of its CPU."""
        request = Request(scope, receive)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        # The read transaction is ended (its ROLLBACK, the connection's return to the
        # pool) once the answer is sent rather than before it is built: the client
        # does not wait for a round trip that changes nothing it sees. Whatever
        # happens on the way — a refusal, a failure, the client gone, cancellation —
        # the `finally` ends it, and db/request.py drops a connection it could not end.
        context.close_after_answer = True
        try:
            try:
                data = self._request_data(self.parse_json(await _body(request)))
                result = await self.execute_operation(
                    request=request,
                    request_adapter=_POST,
                    request_data=data,
                    context=context,
                    root_value=None,
                    sub_response=sub_response,
                )
            except HTTPException as exc:
                code = "NOT_FOUND" if exc.status_code == 404 else "BAD_REQUEST"
                raise Refused(exc.status_code, code, exc.reason) from exc
            response_data = await self.process_result(request, result)
            await self.create_response(response_data, sub_response)(scope, receive, send)
        finally:
            await context.close()

    def _request_data(self, data: Any) -> GraphQLRequestData:
        """A decoded JSON body as the request's operation: Strawberry's checks and
        messages (`parse_http_body`), then ours (`_named`)."""
        if isinstance(data, list):
            raise Refused(400, "QUERY_TOO_COMPLEX", "Batched operations are not accepted.")
        query = _optional(data, "query", str, "a string")
        variables = _optional(data, "variables", dict, "an object")
        extensions = _optional(data, "extensions", dict, "an object")
        request_data = GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=data.get("operationName"),
            extensions=extensions,
            protocol="http",
        )
        return self._named(request_data, data)

    def _bounded(self, receive: Receive) -> Receive:
        """A body without Content-Length is counted as it arrives."""
        seen = 0
        limit = self.limits.max_body_bytes

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooComplex("The request body is too large.")
            return message

        return bounded

    async def _refuse(self, refused: Refused, scope: Scope, receive: Receive, send: Send) -> None:
        body = {"errors": [{"message": refused.message, "extensions": {"code": refused.code}}]}
        response = JSONResponse(
            body, status_code=refused.status, headers=refused.headers, media_type=_content_type()
        )
        await response(scope, receive, send)

    @property
    def graphql_ide_html(self) -> str:
        return self._graphiql_html

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(self._graphiql_html, headers={"content-security-policy": graphiql.CSP})

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        """GraphQL-over-HTTP's status codes: with `application/graphql-response+json` a
        response without `data` (a request error, see `process_result`) is a 400;
        `application/json` keeps 200 for every GraphQL response, as before."""
        response = super().create_response(response_data, sub_response)
        if media_type.get() == negotiation.GRAPHQL_RESPONSE:
            response.headers["content-type"] = _content_type()
            if isinstance(response_data, dict) and "data" not in response_data:
                response.status_code = 400
        return response

    def decode_json(self, data: str | bytes) -> object:
        """The body (or GET's `variables`) as JSON, or a 400 `BAD_REQUEST`: invalid
        UTF-8, integers of thousands of digits, nesting deep enough to exhaust the
        stack, or anything but an object (a list is a batch, refused later)."""
        try:
            # orjson reads a body in a fifth of the time; what it refuses (integers past
            # 64 bits, lone surrogates, deep nesting, …) gets the standard reading, so
            # the answer to any body is what it was.
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            try:
                value = json.loads(data, parse_constant=_not_json)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
                raise Refused(400, "BAD_REQUEST", "The request body is not valid JSON.") from exc
        if not isinstance(value, dict | list):
            raise Refused(400, "BAD_REQUEST", "The request body must be a JSON object.")
        if _nested_deeper(value, MAX_JSON_DEPTH):
            raise Refused(
                400, "BAD_REQUEST", f"The request's JSON is nested deeper than {MAX_JSON_DEPTH}."
            )
        fields = _fields.get()
        if fields is not None and not fields:
            fields.append(value)
        return value

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        fields = _fields.get()
        if fields is None or fields:
            return super().parse_query_params(params)
        fields.append(None)  # taken before decode_json sees GET's `variables`
        fields[0] = decoded = super().parse_query_params(params)
        return decoded

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a document runs it, whatever the Accept header says.
        params = request.query_params
        return (
            "documentId" not in params
            and "extensions" not in params
            and super().should_render_graphql_ide(request)
        )

    async def parse_http_body(self, request_adapter: Any) -> Any:
        """Malformed bodies and batches get a JSON error like every other refusal. A
        request naming a trusted document (`documentId`, APQ's `persistedQuery`) is
        given its text here."""
        box: list[Any] = []
        token = _fields.set(box)
        try:
            data = await super().parse_http_body(request_adapter)
        except HTTPException as exc:
            if "batch" in exc.reason.lower() or "operations" in exc.reason.lower():
                raise Refused(
                    400, "QUERY_TOO_COMPLEX", "Batched operations are not accepted."
                ) from exc
            raise Refused(exc.status_code, "BAD_REQUEST", exc.reason) from exc
        finally:
            _fields.reset(token)
        if isinstance(data, list):
            return data
        return self._named(data, box[0] if box else None)

    def _named(self, data: Any, fields: Any) -> Any:
        """The request's operation with the text of the trusted document it names, if
        any, and its `operationName` checked."""
        if isinstance(fields, Mapping):
            self._name_document(data, fields)
        name = data.operation_name
        if name is not None and (not isinstance(name, str) or unstorable(name)):
            raise Refused(400, "BAD_REQUEST", "`operationName` must be a name (a string).")
        return data

    def _name_document(self, data: Any, fields: Mapping[str, Any]) -> None:
        query = data.query if isinstance(data.query, str) else None
        try:
            hex_id = requested_id(fields, query)
        except DocumentRefused as refused:
            raise Refused(refused.status, refused.code, refused.message) from refused
        if hex_id is None:
            return
        trusted = self.trusted.get(hex_id)
        if trusted is not None:
            data.query = trusted.text
            current_trusted.set(trusted)
        elif query is None:
            # Unknown: nothing is registered from requests (APQ's registration by a
            # client would let any client add documents), only from the manifest.
            raise Refused(404, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        # A query with the hash of an unknown document is free text.

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        # Set by the Authenticated wrapper; GraphiQL's page needs no viewer. A
        # WebSocket's viewer comes with its `connection_init` (on_ws_connect).
        state = request.scope.get("state", {})
        viewer: Viewer = state.get("viewer", ANONYMOUS)
        context = Context(
            request=request if isinstance(request, Request) else None,
            settings=self.settings,
            viewer=viewer,
            db=RequestDb(self.engine, viewer.esco_scope, self.parking),
            today=self.today,
            broker=self.broker,
            socket=request if isinstance(request, WebSocket) else None,
            # Set by app.Bounded: the request's cutoff (cutoff.py).
            cutoff=state.get("cutoff") or Cutoff(None),
            billing_jobs=self.billing_jobs,
        )
        if isinstance(request, WebSocket):
            # One context for the socket's life: closed when the socket ends (_websocket).
            request.scope["flows.context"] = context
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Credentials come in `connection_init`'s payload, as the HTTP headers would:
        `{"Authorization": "Bearer …"}` or `{"X-API-Key": "…"}`. Refused → close 4403;
        an outage → close 1013 (try again later)."""
        assert context.socket is not None and self.authenticator is not None
        params = context.connection_params or {}
        headers = {
            str(k).lower(): v for k, v in params.items() if isinstance(v, str) and len(v) < 8192
        }
        try:
            viewer = await self.authenticator.viewer(headers)
        except Unauthenticated as exc:
            log.info("subscription refused", extra={"reason": exc.message})
            raise ConnectionRejectionError({"message": exc.message}) from exc
        except ProviderUnavailable as exc:
            log.warning("identity provider unavailable", extra={"error": exc.message})
            raise CloseSocket(
                TRY_AGAIN_LATER, "The identity provider is unavailable; try again shortly."
            ) from exc
        except Exception as exc:
            raise _init_failed(exc) from exc
        if viewer.role == "unlinked":
            raise ConnectionRejectionError(
                {"message": "Signed in, but not linked to a customer or to staff access yet."}
            )
        if needs_read(viewer):
            raise ConnectionRejectionError({"message": "This API key lacks the `read` scope."})
        try:
            # A connection counts as a request against the principal's rate limit.
            await self.admission.charge(viewer, WS_CONNECT_COST)
        except OverBudget as over:
            raise CloseSocket(RATE_LIMITED_CLOSE, _over_reason(over)) from over
        except Exception as exc:
            raise _init_failed(exc) from exc
        principal = f"{viewer.role}:{viewer.sub}"
        if len(self.sockets.get(principal, ())) >= self.settings.ws_max_connections:
            raise ConnectionRejectionError({"message": "Too many open connections."})
        state = context.socket.scope
        state["flows.principal"] = principal
        state["flows.credentials"] = headers
        state["flows.viewer"] = viewer
        self.sockets.setdefault(principal, set()).add(state["flows.ended"])
        try:
            await context.renew(viewer)
        except Exception as exc:
            raise _init_failed(exc) from exc
        # UNSET: an ack without a payload (a null payload is not valid for strict clients).
        return UNSET

    def end_principal(self, principal: str) -> None:
        """End every connection of a principal (a revoked key, a revoked grant)."""
        for ended in self.sockets.get(principal, ()):
            ended.set()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """graphql-transport-ws, with what the protocol leaves to the server: a ping
        every `ws_ping_seconds`, the connection closed when the client has said
        nothing for `ws_idle_seconds` or its credentials stop being valid."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        ended = asyncio.Event()
        scope["flows.ended"] = ended

        async def listening() -> Message:
            nonlocal heard
            message = await receive()
            heard = loop.time()
            return message

        async def closing(code: int, reason: str) -> None:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": reason})

        async def watch() -> None:
            checked = loop.time()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), self.settings.ws_ping_seconds)
                if ended.is_set():
                    await closing(4403, "Credentials revoked")
                    return
                now = loop.time()
                if now - heard > self.settings.ws_idle_seconds:
                    await closing(4408, "Idle timeout")
                    return
                credentials = scope.get("flows.credentials")
                if credentials is not None and self.authenticator is not None:
                    if now - checked >= self.settings.ws_recheck_seconds:
                        checked = now
                        try:
                            now_viewer = await self.authenticator.viewer(credentials)
                        except Unauthenticated:
                            await closing(4403, "Credentials no longer valid")
                            return
                        except Exception as exc:  # an outage: keep the socket, ask later
                            log.warning(
                                "subscriber's credentials not rechecked",
                                extra={"error": type(exc).__name__},
                            )
                        else:
                            # A revoked grant or an unlinked identity answers with less
                            # (or other) rights, not a refusal: the socket ends either way.
                            if now_viewer != scope.get("flows.viewer"):
                                await closing(4403, "Credentials changed")
                                return
                    with contextlib.suppress(Exception):
                        await send({"type": "websocket.send", "text": '{"type":"ping"}'})

        watcher = asyncio.create_task(watch())
        try:
            await super().__call__(scope, listening, send)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            principal = scope.get("flows.principal")
            if principal is not None:
                sockets = self.sockets.get(principal, set())
                sockets.discard(ended)
                if not sockets:
                    self.sockets.pop(principal, None)
            context = scope.get("flows.context")
            if context is not None:
                # The snapshot of a subscription's last event, or of nothing: given back.
                await context.close()

    async def execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        data = kwargs["request_data"]
        context: Context = kwargs["context"]
        # Read by process_result, which is given only the request.
        context.executing = False
        if context.request is not None:
            context.request.scope["flows.context"] = context
        if media_type.get() is None:
            raise Refused(
                406,
                "NOT_ACCEPTABLE",
                f"Responses are {negotiation.GRAPHQL_RESPONSE} or {negotiation.JSON}; "
                "the Accept header allows neither.",
                {"Accept": f"{negotiation.GRAPHQL_RESPONSE}, {negotiation.JSON}"},
            )
        if isinstance(data.query, str):
            viewer = context.viewer
            trusted = current_trusted.get()
            if (
                trusted is None
                and self.settings.require_trusted_documents
                and viewer.role in APP_ROLES
            ):
                # The registered text sent as text is the registered document.
                trusted = self.trusted.of_text(data.query)
                if trusted is None:
                    raise Refused(REQUIRED.status, REQUIRED.code, REQUIRED.message)
                data.query = trusted.text
                current_trusted.set(trusted)
            # Free text is worked out once per text too, like a trusted document.
            record = trusted if trusted is not None else self._free_text(data.query)
            verdict = record.verdict(
                data.variables, data.operation_name, self.limits, self.graphql_schema
            )
            # Queries have no userErrors: such text is refused here. Mutations answer it
            # with a user error (their services check it, resolvers/mutation.py backs
            # them up).
            if (
                verdict is not None
                and verdict.operation == "query"
                and has_unstorable_text(data.query, data.variables, self.limits)
            ):
                raise Refused(
                    400,
                    "INVALID",
                    "Text may not contain a NUL character or an unpaired surrogate.",
                )
            parsed = document(data.query, self.limits) if verdict is not None else None
            refusal = None
            if parsed is not None:
                refusal = record.memo(
                    ("read", needs_read(viewer)),
                    lambda: read_refusal(viewer, self.graphql_schema, parsed),
                )
            if refusal is not None:
                raise Refused(403, "FORBIDDEN", refusal)
            if (
                viewer.role == "unlinked"
                and parsed is not None
                and not allowed_for_unlinked(parsed, data.operation_name)
            ):
                raise Refused(
                    403,
                    "FORBIDDEN",
                    "Signed in, but not linked to a customer or to staff access yet: "
                    "only `viewer` and `acceptInvite` are allowed.",
                )
            if (
                verdict is not None
                and verdict.introspects
                and self.settings.production
                and viewer.role != "admin"
            ):
                raise Refused(403, "FORBIDDEN", "Introspection is for admins in production.")
            answered = await self.admission.admit(
                context.request,
                context.viewer,
                data.query,
                data.operation_name,
                verdict,
                self.limits,
                kwargs["sub_response"],
            )
            if answered is not None:
                return answered
            if self.replicas is not None and verdict is not None:
                context.db.route(self.replicas, viewer.actor, query=verdict.operation == "query")
            if verdict is not None and verdict.operation == "mutation":
                # Each mutation answers its own cutoff (resolvers/mutation.py); the
                # request's scope (app.Bounded) only stops what would not stop under them.
                context.cutoff.relax(BACKSTOP_S)
                return await self._execute_single(*args, **kwargs)
        # Reads are stopped at the cutoff (app.Bounded answers them), or soon after
        # their client hangs up: watched from HANG_UP_WATCH_S on, since a task of its
        # own for each request cost more than the reads it would save (most are
        # answered in a few milliseconds, long before a hang-up could be noticed).
        request = context.request
        watcher: list[asyncio.Future[None]] = []
        timer = (
            asyncio.get_running_loop().call_later(
                HANG_UP_WATCH_S,
                lambda: watcher.append(asyncio.ensure_future(_hang_up(request, context.cutoff))),
            )
            if request is not None
            else None
        )
        try:
            return await self._execute_single(*args, **kwargs)
        finally:
            if timer is not None:
                timer.cancel()
            for watching in watcher:
                watching.cancel()

    def _free_text(self, query: str) -> Trusted:
        """The record of a text sent as text: its verdicts and checks, kept with this
        view (its limits and schema), bounded like the parse cache."""
        found = self._texts.get(query)
        if found is None:
            found = self._texts[query] = Trusted("", query)
        return found

    async def _execute_single(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        try:
            if self.lean:
                method = kwargs["request_adapter"].method
                result = await self._execute(kwargs["request_data"], kwargs["context"], method)
            else:
                result = await super().execute_single(*args, **kwargs)
        except HTTPException as exc:
            # No query, no operation to pick, or one the method does not allow:
            # Strawberry answers these in plain text; ours are JSON like every refusal.
            method = kwargs["request_adapter"].method
            if isinstance(exc.__cause__, InvalidOperationTypeError) and method == "GET":
                # GraphQL-over-HTTP: a mutation over GET MUST be refused with 405.
                raise Refused(405, "BAD_REQUEST", exc.reason, {"Allow": "POST"}) from exc
            raise Refused(exc.status_code, "BAD_REQUEST", exc.reason) from exc
        self.admission.finish(kwargs["context"].request, result)
        return result

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        context: Context = kwargs["context"]
        if isinstance(kwargs["request_data"], list):
            raise Refused(400, "QUERY_TOO_COMPLEX", "Batched operations are not accepted.")
        counter = StatementCounter()
        token = current_counter.set(counter)
        result: Any
        try:
            if self.lean and not args:
                # Strawberry's dispatch: a batch (refused above) or a streaming
                # transport (none) aside, it is execute_single.
                result = await self.execute_single(**kwargs)
            else:
                result = await super().execute_operation(*args, **kwargs)
        finally:
            if not context.close_after_answer:
                await context.close()
            current_counter.reset(token)
            if context.request is not None:
                operation_of(context.request.scope).statements = counter.count
        if context.request is not None:
            metrics.observe_statements(operation_of(context.request.scope).name, counter.count)
        if self.settings.debug_sql and isinstance(result, ExecutionResult):
            result.extensions = {**(result.extensions or {}), "sqlStatements": counter.count}
        if isinstance(result, ExecutionResult):
            _fault_status(result, context, kwargs["sub_response"])
        return result

    async def _execute(
        self, data: GraphQLRequestData, context: Context, method: str
    ) -> ExecutionResult:
        """What Strawberry's `execute_single` and `Schema.execute` do for this schema,
        step for step and with their answers — no query, the operation and its type,
        parse and validation (once per document, trusted.py), graphql-core's
        execution with the schema's execution context, errors through the schema's
        `process_errors` — without the per-request extension runner, middleware
        manager and execution-context objects, a fifth of an empty query's CPU."""
        schema: Any = self.schema
        query = data.query
        if not query:
            raise HTTPException(400, "No GraphQL query found in the request") from (
                MissingQueryError()
            )
        try:
            try:
                found = parsed(query)
            except GraphQLError as syntax:
                return self._errors(PreExecutionError(data=None, errors=[syntax]))
            except Exception as exc:
                failed = GraphQLError(str(exc), original_error=exc)
                return self._errors(PreExecutionError(data=None, errors=[failed]))
            operation_name = data.operation_name
            if operation_name is None:
                first = get_first_operation(found.document)
                operation_name = first.name.value if first and first.name else None
            try:
                operation_type = get_operation_type(found.document, operation_name)
            except RuntimeError as error:
                cannot = CannotGetOperationTypeError(operation_name)
                raise HTTPException(400, cannot.as_http_error_reason()) from error
            if operation_type not in ALLOWED_OPERATIONS[method]:
                invalid = InvalidOperationTypeError(operation_type)
                raise HTTPException(400, invalid.as_http_error_reason(method)) from invalid
            errors = validated(found, schema._schema, VALIDATION_RULES)
            if errors:
                return self._errors(PreExecutionError(data=None, errors=errors))
            outcome: Any = execute(
                schema._schema,
                found.document,
                variable_values=data.variables,
                # Strawberry's: the first operation's, when the request names none.
                operation_name=operation_name,
                context_value=context,
                is_awaitable=cast(Any, optimized_is_awaitable),
                executor_class=schema.execution_context_class,
                operation_extensions=data.extensions,
            )
            if optimized_is_awaitable(outcome):
                outcome = await outcome
        except HTTPException:
            raise
        except Exception as exc:
            coerced = exc if isinstance(exc, GraphQLError) else None
            if coerced is None:
                coerced = GraphQLError(str(exc), original_error=exc)
            return self._errors(PreExecutionError(data=None, errors=[coerced]))
        if outcome.errors:
            schema._process_errors(outcome.errors, None)
        return ExecutionResult(data=outcome.data, errors=outcome.errors, extensions={})

    def _errors(self, result: PreExecutionError) -> ExecutionResult:
        """A result without execution, its errors through the schema's `process_errors`."""
        if result.errors:
            self.schema._process_errors(result.errors, None)
        result.extensions = {}
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Taken off the scope: it would keep the context and the request alive in a
        # cycle, for the cyclic collector to find.
        context = request.scope.pop("flows.context", None)
        executing = context is not None and context.executing
        if result.errors:
            result.errors = [self._mask(error, executing) for error in result.errors]
            operation_of(request.scope).error_code = (result.errors[0].extensions or {}).get("code")
        response = await super().process_result(request, result)
        if result.errors and not executing and media_type.get() == negotiation.GRAPHQL_RESPONSE:
            # Refused before execution (the document does not parse or validate, or
            # the variables do not coerce): a request error, which has no `data` entry
            # (GraphQL spec, "Response"). `application/json` keeps Strawberry's
            # `"data": null` for the clients that already read it.
            response.pop("data", None)
        return response

    def _mask(self, error: GraphQLError, executing: bool) -> GraphQLError:
        """Unexpected errors become `INTERNAL` with the request id (also in the log):
        no stack trace, SQL or internal name reaches a client. Database faults become
        `UNAVAILABLE` or `TIMEOUT` (faults.py), which a client may retry."""
        code = (error.extensions or {}).get("code")
        original = error.original_error
        if code in KNOWN_CODES or (isinstance(original, GraphQLError) and code):
            return error
        request_id = logs.request_id.get()
        fault = faults.classify(original) if original is not None else None
        if fault is not None and original is not None:
            logs.failure(log, logging.WARNING, "database fault", original, fault, path=error.path)
            return GraphQLError(
                faults.MESSAGES[fault],
                path=error.path,
                extensions={"code": fault, "requestId": request_id},
            )
        failed_in_execution = executing and not isinstance(original, GraphQLError | None)
        if error.path is None and not failed_in_execution:
            # Refused before execution: a document or variables that do not validate.
            message = PYTHON_DETAIL.sub("", error.message)
            if self.settings.production:
                message = SUGGESTION.sub("", message)
            return GraphQLError(
                message,
                nodes=error.nodes,
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
            )
        # A genuine bug: its traceback every time (two bugs may share an exception
        # type; only database faults, all alike during an outage, are rate-limited).
        log.error(
            "unexpected error in a resolver" if error.path else "unexpected error in execution",
            exc_info=(type(original), original, original.__traceback__) if original else None,
            extra={"path": error.path},
        )
        return GraphQLError(
            "Internal error.",
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )


def _init_failed(exc: Exception) -> CloseSocket:
    """How `connection_init` ends when checking it failed: no socket without a viewer.
    The database did not answer: try again later (never 4403, which says the
    credentials are refused); anything else is a bug, with a request id in the log."""
    code = faults.classify(exc)
    if code is None:
        request_id = logs.new_request_id()
        log.error("connection_init failed", exc_info=exc, extra={"requestId": request_id})
        return CloseSocket(INTERNAL_ERROR, f"Internal error ({request_id}).")
    log.warning("subscription refused", extra={"error": code})
    return CloseSocket(TRY_AGAIN_LATER, "The service is unavailable; try again shortly.")


async def _body(request: Request) -> bytes:
    """`request.body()`, read straight off `receive` (Starlette's goes through an async
    generator per request), and kept on the request as Starlette keeps it."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            request._is_disconnected = True
            raise ClientDisconnect()
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._stream_consumed = True
    request._body = body
    return body


def _json(content_type: bytes | None) -> bool:
    """A JSON body by its Content-Type, as Strawberry reads it when it is exactly that
    (with parameters or not); anything else takes Strawberry's own reading."""
    if content_type is None:
        return False
    return content_type == b"application/json" or content_type.startswith(b"application/json;")


def _content_type() -> str:
    return negotiation.CONTENT_TYPE[media_type.get() or negotiation.JSON]


def _fault_status(result: ExecutionResult, context: Context, sub_response: Any) -> None:
    """A request that met a database fault answers 503 with Retry-After when nothing of
    it was committed; when some mutation of it committed, 200 (the body says which
    mutation did what: repeating the whole request would repeat those), Retry-After
    still set."""
    codes = set(context.outcome.faults)
    for error in result.errors or ():
        code = (error.extensions or {}).get("code")
        if code in (faults.UNAVAILABLE, faults.TIMEOUT):
            codes.add(code)
        elif error.original_error is not None and code is None:
            fault = faults.classify(error.original_error)
            if fault is not None:
                codes.add(fault)
    if not codes:
        return
    sub_response.headers["Retry-After"] = str(faults.RETRY_AFTER_S)
    if not context.outcome.committed:
        sub_response.status_code = 503


async def _hang_up(request: Request, cutoff: Cutoff) -> None:
    """Cut a read when its client disconnects (the ASGI `http.disconnect` message):
    nobody would read its answer."""
    with contextlib.suppress(Exception):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                cutoff.cut_now("disconnected")
                return
