"""Every GraphQL request observed: its metrics, its trace span and its rate limit.

`Observed` wraps /graphql (outside authentication, so refusals are counted too) and
records one `Operation` per request in the ASGI scope; the GraphQL view fills it in
(`Admission.admit`, the statement count, the error code) and `Observed` reports it
when the response is sent: metrics always, a span when tracing is on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from graphql import OperationDefinitionNode
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.types import ExecutionResult

from . import metrics, tracing
from .auth.viewer import Viewer
from .config import Settings
from .limits import Limits, Verdict, document
from .ratelimit import RateLimiter, Spend, create_limiter, principal

# The request header that asks for the cost of an operation without running it.
COST_ONLY_HEADER = "x-flows-cost-only"


@dataclass
class Operation:
    """What is known of one GraphQL request, filled in as it runs."""

    name: str | None = None
    type: str = "unknown"
    cost: int | None = None
    statements: int = 0
    error_code: str | None = None
    spend: Spend | None = None


STATE_KEY = "flows.operation"


def operation_of(scope: Scope) -> Operation:
    """The request's record (a fresh one when nothing observes the request)."""
    state = scope.setdefault("state", {})
    found: Operation | None = state.get(STATE_KEY)
    if found is None:
        found = state[STATE_KEY] = Operation()
    return found


def _error_code(body: bytes) -> str | None:
    try:
        errors = json.loads(body).get("errors") or []
        code = (errors[0].get("extensions") or {}).get("code")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return None
    return code if isinstance(code, str) else None


class Observed:
    """Around /graphql: counts and times every request by operation, status and error
    code, in a span when tracing is on. Refusals made before the GraphQL view runs
    (401, a malformed body) carry their code in a small JSON body, read back here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _wants_page(scope):
            # GraphiQL's page is no operation: neither counted nor traced.
            await self.app(scope, receive, send)
            return
        operation = Operation()
        scope.setdefault("state", {})[STATE_KEY] = operation
        started = time.perf_counter()
        status = 500
        error_body = bytearray()

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (
                message["type"] == "http.response.body"
                and status >= 400
                and len(error_body) < 16_384
            ):
                error_body.extend(message.get("body", b""))
            await send(message)

        span = None
        try:
            if tracing.tracer is None:
                await self.app(scope, receive, observe)
            else:
                with tracing.operation_span("graphql") as span:
                    await self.app(scope, receive, observe)
                    _describe(span, scope, operation, status, error_body)
        finally:
            code = operation.error_code
            if code is None and status >= 400:
                code = _error_code(bytes(error_body)) or "unknown"
            metrics.observe_request(
                operation.name, operation.type, status, code, time.perf_counter() - started
            )


def _wants_page(scope: Scope) -> bool:
    if scope.get("method") != "GET":
        return False
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"text/html" in accept


def _describe(span: Any, scope: Scope, operation: Operation, status: int, body: bytearray) -> None:
    """The operation span's name and attributes, once the response is known."""
    name = operation.name or ""
    if operation.type != "unknown":
        span.update_name(f"{operation.type} {name}".strip())
        span.set_attribute("graphql.operation.type", operation.type)
    if name:
        span.set_attribute("graphql.operation.name", name)
    viewer: Viewer | None = scope.get("state", {}).get("viewer")
    if viewer is not None:
        span.set_attribute("flows.role", viewer.role)
        scope_ids = viewer.esco_scope
        span.set_attribute(
            "flows.esco", "*" if scope_ids is None else ",".join(sorted(map(str, scope_ids)))
        )
    if operation.cost is not None:
        span.set_attribute("flows.cost", operation.cost)
    span.set_attribute("flows.sql_statements", operation.statements)
    span.set_attribute("http.response.status_code", status)
    code = operation.error_code or (_error_code(bytes(body)) if status >= 400 else None)
    if code:
        span.set_attribute("flows.error_code", code)
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, code))


class OverBudget(Exception):
    """Refused by the rate limit: answered 429 with `Retry-After`."""

    def __init__(self, spend: Spend, tier: str) -> None:
        super().__init__("rate limited")
        self.spend, self.tier = spend, tier
        wait = spend.retry_after()
        self.message = (
            f"This request costs {spend.requested} points and {spend.remaining} of "
            f"{spend.limit} are left until {spend.reset_at_iso}; retry in {wait} s."
        )
        self.headers = {**spend.headers(), "Retry-After": str(wait)}


class Admission:
    """The rate limit and the cost-only answer of the GraphQL view."""

    def __init__(self, settings: Settings, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        if limiter is None and settings.rate_limits.enabled:
            limiter = create_limiter(
                settings.rate_limits, settings.redis_url, settings.redis_prefix
            )
        self.limiter = limiter

    async def admit(
        self,
        request: Request | None,
        viewer: Viewer,
        query: str | None,
        operation_name: str | None,
        verdict: Verdict | None,
        limits: Limits,
        sub_response: Any,
    ) -> ExecutionResult | None:
        """Spend the operation's cost; an ExecutionResult when it is answered without
        running (the cost only), OverBudget when over the viewer's budget."""
        record = operation_of(request.scope) if request is not None else Operation()
        cost = verdict.cost if verdict is not None else 0
        record.cost = cost
        if verdict is not None:
            record.type = verdict.operation
            record.name = operation_name or _name_of(query, limits)
        cost_only = request is not None and request.headers.get(COST_ONLY_HEADER, "") in (
            "1",
            "true",
        )
        try:
            spend = await self.charge(viewer, 0 if cost_only else cost)
        except OverBudget as over:
            record.spend = over.spend
            record.error_code = "RATE_LIMITED"
            raise
        record.spend = spend
        if spend is not None:
            for header, value in spend.headers().items():
                sub_response.headers[header] = value
        if cost_only:
            return ExecutionResult(data=None, errors=None, extensions={"cost": _cost(cost, spend)})
        return None

    async def charge(self, viewer: Viewer, cost: int) -> Spend | None:
        """Spend `cost` points of the viewer's budget — a GraphQL request's, and as
        much for what reaches the API another way (a WebSocket's connection and each of
        its subscriptions, an export): OverBudget when over; None without limits."""
        if self.limiter is None:
            return None
        spend = await self.limiter.spend(viewer, cost)
        if not spend.allowed:
            tier = principal(viewer)[0]
            metrics.refused_by_rate_limit(tier)
            raise OverBudget(spend, tier)
        return spend

    def finish(self, request: Request | None, result: Any) -> None:
        """`extensions.cost` of an executed operation."""
        if request is None or not isinstance(result, ExecutionResult):
            return
        record = operation_of(request.scope)
        if record.cost is None:
            return
        result.extensions = {**(result.extensions or {}), "cost": _cost(record.cost, record.spend)}

    async def close(self) -> None:
        if self.limiter is not None:
            await self.limiter.close()


def _cost(requested: int, spend: Spend | None) -> dict[str, Any]:
    if spend is None:
        return {"requested": requested, "remaining": None, "limit": None, "resetAt": None}
    return {**spend.extension(), "requested": requested}


def _name_of(query: str | None, limits: Limits) -> str | None:
    """The name of a document's only operation (an anonymous one has none)."""
    if not query:
        return None
    doc = document(query, limits)
    if doc is None:
        return None
    operations = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) == 1 and operations[0].name is not None:
        return operations[0].name.value
    return None
