"""The /graphql endpoint: Strawberry's ASGI view with our context and request lifecycle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from .auth.viewer import ANONYMOUS, Viewer
from .config import Settings
from .context import Context
from .db.engine import StatementCounter, current_counter
from .db.request import RequestDb
from .rules.clock import Today, london_today


class FlowsGraphQL(GraphQL[Context, None]):
    def __init__(
        self, schema: Any, *, settings: Settings, engine: AsyncEngine, today: Today = london_today
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
        )
        self.settings = settings
        self.engine = engine
        self.today = today

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        # Set by the Authenticated wrapper; GraphiQL's page needs no viewer.
        viewer: Viewer = request.scope.get("state", {}).get("viewer", ANONYMOUS)
        return Context(
            request=request if isinstance(request, Request) else None,
            settings=self.settings,
            viewer=viewer,
            db=RequestDb(self.engine, viewer.esco_scope),
            today=self.today,
        )

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        context: Context = kwargs["context"]
        counter = StatementCounter() if self.settings.debug_sql else None
        token = current_counter.set(counter)
        try:
            result = await super().execute_operation(*args, **kwargs)
        finally:
            await context.close()
            current_counter.reset(token)
        if counter is not None:
            for one in result if isinstance(result, list) else [result]:
                if isinstance(one, ExecutionResult):
                    one.extensions = {**(one.extensions or {}), "sqlStatements": counter.count}
        return result
