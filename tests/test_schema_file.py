"""The committed schema.graphql is what the code serves, and everything in it is described."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
)

from flows_graphql import cli
from flows_graphql.schema import schema

ROOT = Path(__file__).resolve().parent.parent
SDL = ROOT / "schema.graphql"
# Built into GraphQL itself; their descriptions are the spec's.
SPEC_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def _types() -> list[GraphQLNamedType]:
    return [
        t
        for name, t in sorted(schema._schema.type_map.items())
        if not name.startswith("__") and name not in SPEC_SCALARS
    ]


def test_committed_schema_matches_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI would swap the root logging handlers (pytest's capture among them).
    monkeypatch.setattr(cli.logs, "configure", lambda *a, **k: None)
    out = tmp_path / "schema.graphql"
    assert cli.main(["export-schema", "-o", str(out)]) == 0
    exported = out.read_text()
    assert "type Query" in exported and "interface Node" in exported
    assert exported == SDL.read_text(), (
        "schema.graphql differs from the code: run `flows-graphql export-schema -o "
        "schema.graphql` and commit the result"
    )


def test_every_field_and_argument_is_described() -> None:
    missing: list[str] = []
    for t in _types():
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in t.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{t.name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if not (arg.description or "").strip():
                        missing.append(f"{t.name}.{field_name}({arg_name}:)")
        elif isinstance(t, GraphQLInputObjectType):
            for field_name, input_field in t.fields.items():
                if not (input_field.description or "").strip():
                    missing.append(f"{t.name}.{field_name}")
    assert len(_types()) > 50
    assert missing == [], f"fields and arguments without a description: {missing}"


def test_every_type_is_described() -> None:
    kinds = GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType | GraphQLEnumType
    missing = [
        t.name
        for t in _types()
        if isinstance(t, kinds | GraphQLScalarType) and not (t.description or "").strip()
    ]
    assert missing == [], f"types without a description: {missing}"
