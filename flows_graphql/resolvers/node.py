"""Root queries: `viewer`, `node(id:)` and `nodes(ids:)`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, cast

import strawberry
from sqlalchemy import select

from ..context import Context
from ..loaders.community import ESCOS
from ..loaders.customers import CustomerById
from ..types.community import Esco
from ..types.customers import Customer
from ..types.node import Node, resolve_node
from ..types.viewer import Role

Info = strawberry.Info[Context, None]


@strawberry.type(description="The principal the request runs as.")
class Viewer:
    role: Role = strawberry.field(description="The principal's role.")
    subject: str = strawberry.field(description="The token's subject (or API key id).")
    issuer: str | None = strawberry.field(
        description="The identity provider that signed the token (null for the server's "
        "own tokens and API keys)."
    )
    email: str | None = strawberry.field(
        description="The e-mail the identity provider says is verified (null otherwise)."
    )
    customer_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The ESCOs in the viewer's scope, by code.")
    async def escos(self, info: Info) -> list[Esco]:
        loaders = info.context.loaders
        stmt = loaders.restrict(select(ESCOS).order_by(ESCOS.c.code), ESCOS, "id")
        return list(await info.context.db.rows(stmt, loaders.bind({})))

    @strawberry.field(description="The viewer's own customer record (customers only).")
    async def customer(self, info: Info) -> Customer | None:
        if self.customer_id is None:
            return None
        return cast(
            Customer | None, await info.context.loaders.get(CustomerById).load(self.customer_id)
        )


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Who the request runs as.")
    def viewer(self, info: Info) -> Viewer:
        viewer = info.context.viewer
        return Viewer(
            role=Role(viewer.role),
            subject=viewer.sub,
            issuer=viewer.issuer,
            email=viewer.email,
            customer_id=viewer.customer_id,
        )

    @strawberry.field(description="Any object by its global id; null when missing or out of scope.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id.")],
    ) -> Node | None:
        return await resolve_node(info.context.loaders, id)  # type: ignore[return-value]

    @strawberry.field(
        description="Objects by global id, in the order asked; null for each missing one."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")],
    ) -> list[Node | None]:
        # gather: loads of the same type batch into one statement.
        found = await asyncio.gather(*(resolve_node(info.context.loaders, i) for i in ids))
        return list(found)  # type: ignore[arg-type]
