"""The Strawberry schema, assembled from the per-domain resolvers."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache

from .resolvers.community import CommunityQuery


@strawberry.type(description="Read the Flows graph.")
class Query(CommunityQuery):
    pass


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        extensions=[lambda: ParserCache(maxsize=512), lambda: ValidationCache(maxsize=512)],
    )


schema = build_schema()
