"""Canaries for the private internals of our dependencies that the code relies on.

The fast paths (breadth_first.py, execution.py, db/direct.py, graphql_view.py) reach into
graphql-core, Strawberry and SQLAlchemy below their public APIs. pyproject.toml pins
those packages to the ranges these tests were last green on; when an upgrade moves an
internal, the test of that internal fails here, naming what to check, instead of a
dashboard failing somewhere deep in a request.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from sqlalchemy import Integer, column, select, table
from sqlalchemy.dialects import postgresql

UPGRADE = "an upgrade of {package} (now {version}) moved an internal that {user} relies on: {what}"


def _fail(package: str, user: str, what: str) -> str:
    return UPGRADE.format(package=package, version=version(package), user=user, what=what)


def test_graphql_core_collect_fields() -> None:
    """breadth_first.py collects fields itself, as graphql-core 3.3's executor does."""
    from graphql.execution import collect_fields as module

    assert hasattr(module, "FieldDetails"), _fail(
        "graphql-core", "breadth_first.py", "collect_fields.FieldDetails is gone"
    )
    parameters = list(inspect.signature(module.collect_fields).parameters)
    assert parameters[:6] == [
        "schema",
        "fragments",
        "variable_values",
        "runtime_type",
        "operation",
        "hide_suggestions",
    ], _fail("graphql-core", "breadth_first.applies", f"collect_fields{parameters}")
    assert "node" in getattr(module.FieldDetails, "_fields", ()), _fail(
        "graphql-core", "breadth_first.py", "FieldDetails.node"
    )


def test_graphql_core_executor_members() -> None:
    """breadth_first.Walk reads these members of graphql-core's executor."""
    from graphql.execution import Executor

    members = (
        "schema",
        "fragments",
        "variable_values",
        "operation",
        "hide_suggestions",
        "abort_signal",
        "is_awaitable",
        "middleware_manager",
        "field_resolver",
        "type_resolver",
        "build_resolve_info",
        "collect_subfields",
        "build_response",
        "execute_operation",
    )
    source = inspect.getsource(Executor)
    missing = [m for m in members if not hasattr(Executor, m) and f"self.{m}" not in source]
    assert not missing, _fail("graphql-core", "breadth_first.Walk", f"executor lacks {missing}")


def test_strawberry_raw_info() -> None:
    """fields.projection reads graphql-core's info through Strawberry's `_raw_info`."""
    from strawberry.types.info import Info

    assert "_raw_info" in inspect.signature(Info).parameters or hasattr(Info, "_raw_info"), _fail(
        "strawberry-graphql", "fields.projection", "Info._raw_info"
    )


def test_strawberry_view_hooks() -> None:
    """graphql_view.FlowsGraphQL overrides these hooks of Strawberry's async view."""
    from strawberry.http.async_base_view import AsyncBaseHTTPView

    for hook in ("execute_single", "execute_operation", "process_result", "parse_http_body"):
        assert inspect.iscoroutinefunction(getattr(AsyncBaseHTTPView, hook, None)), _fail(
            "strawberry-graphql", "graphql_view.py", f"AsyncBaseHTTPView.{hook}"
        )
    parameters = inspect.signature(AsyncBaseHTTPView.execute_single).parameters
    # sub_response: the response whose headers observe.Admission sets (X-RateLimit-*).
    for name in ("request_data", "context", "sub_response"):
        assert name in parameters, _fail(
            "strawberry-graphql", "graphql_view.execute_single", f"keyword {name!r}"
        )


def test_strawberry_body_and_refusal_hooks() -> None:
    """graphql_view.FlowsGraphQL reads bodies through `decode_json` (called by
    `parse_json`, which catches only JSONDecodeError) and turns the HTTPException that
    `run` raises for Strawberry's own refusals into JSON (its ASGI `__call__` would
    answer plain text)."""
    from strawberry.asgi import GraphQL
    from strawberry.http.base import BaseView

    assert "self.decode_json(" in inspect.getsource(BaseView.parse_json), _fail(
        "strawberry-graphql", "graphql_view.decode_json", "BaseView.parse_json"
    )
    assert "await self.run(" in inspect.getsource(GraphQL.__call__), _fail(
        "strawberry-graphql", "graphql_view.run", "GraphQL.__call__ no longer calls run"
    )
    assert list(inspect.signature(GraphQL.run).parameters) == [
        "self",
        "request",
        "context",
        "root_value",
    ], _fail("strawberry-graphql", "graphql_view.run", "GraphQL.run's parameters")


def test_strawberry_execution_context() -> None:
    """execution.py subclasses Strawberry's execution context and reuses its check."""
    from strawberry.execution import optimized_is_awaitable
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

    assert callable(optimized_is_awaitable)
    assert "execute_operation" in vars(StrawberryGraphQLCoreExecutionContext.__mro__[1]) or hasattr(
        StrawberryGraphQLCoreExecutionContext, "execute_operation"
    ), _fail("strawberry-graphql", "execution.py", "StrawberryGraphQLCoreExecutionContext")


def test_strawberry_schema_core() -> None:
    """execution.install walks the graphql-core schema behind Strawberry's (`_schema`)."""
    from graphql import GraphQLSchema

    from flows_graphql.schema import schema

    assert isinstance(getattr(schema, "_schema", None), GraphQLSchema), _fail(
        "strawberry-graphql", "execution.install", "Schema._schema"
    )


def test_strawberry_definitions_in_extensions() -> None:
    """execution.install finds Strawberry's definitions of the types and fields in the
    graphql-core schema's `extensions`, and reads these members of them."""
    from flows_graphql.schema import schema
    from flows_graphql.types.node import RowType

    graphql_type = schema._schema.type_map["Customer"]
    definition = graphql_type.extensions.get("strawberry-definition")
    assert isinstance(getattr(definition, "origin", None), type), _fail(
        "strawberry-graphql", "execution.install", "type extensions' definition.origin"
    )
    assert issubclass(definition.origin, RowType)
    field = graphql_type.fields["email"].extensions.get("strawberry-definition")
    for member in ("base_resolver", "metadata", "python_name", "extensions"):
        assert hasattr(field, member), _fail(
            "strawberry-graphql", "execution.install", f"field definition lacks {member}"
        )
    resolver = graphql_type.fields["esco"].extensions["strawberry-definition"].base_resolver
    for member in (
        "arguments",
        "signature",
        "self_parameter",
        "root_parameter",
        "info_parameter",
        "wrapped_func",
    ):
        assert hasattr(resolver, member), _fail(
            "strawberry-graphql", "execution._direct", f"StrawberryResolver lacks {member}"
        )


def test_sqlalchemy_compiled_internals() -> None:
    """db/direct.py runs compiled statements on asyncpg with SQLAlchemy's own processors."""
    rows = table("t", column("a", Integer), column("b", Integer))
    compiled = select(rows.c.a).where(rows.c.b == 1).compile(dialect=postgresql.asyncpg.dialect())
    for internal in ("_result_columns", "_bind_processors", "positiontup", "binds"):
        assert hasattr(compiled, internal), _fail("SQLAlchemy", "db/direct.py", internal)
    assert [c.keyname for c in compiled._result_columns] == ["a"], _fail(
        "SQLAlchemy", "db/direct.py", "_result_columns entries lost .keyname"
    )


def test_sqlalchemy_queue_pool_wait() -> None:
    """metrics.instrument_pool counts the requests waiting in QueuePool._do_get."""
    from sqlalchemy.pool import AsyncAdaptedQueuePool

    assert callable(getattr(AsyncAdaptedQueuePool, "_do_get", None)), _fail(
        "SQLAlchemy", "metrics.instrument_pool", "QueuePool._do_get"
    )


@pytest.mark.parametrize(
    ("package", "low", "high"),
    [("graphql-core", (3, 3), (3, 4)), ("SQLAlchemy", (2, 1), (2, 2))],
)
def test_pinned_ranges(package: str, low: tuple[int, int], high: tuple[int, int]) -> None:
    """The installed versions are inside the ranges pyproject.toml states."""
    found = tuple(int(part) for part in version(package).split(".")[:2])
    assert low <= found < high, _fail(package, "pyproject.toml", "outside the pinned range")
