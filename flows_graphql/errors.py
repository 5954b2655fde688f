"""Errors a query can answer with; their code goes to `errors[].extensions.code`."""

from __future__ import annotations

from graphql import GraphQLError


def invalid_argument(message: str, argument: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "INVALID", "argument": argument})
