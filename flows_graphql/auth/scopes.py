"""What a partner key may read, checked once per request before anything runs.

A key with `read` reads its ESCO like an operator. Without it, a key may not run
queries at all, and in a mutation's payload it may select only the payload's own
fields and the leaves (scalars, enums) of the objects directly in it — the written
object's own fields, and the user errors. Any object field below that (a usage row's
`meter`, a payment's `customer`, …) leads to other rows and needs `read`.

The whole document is checked against the schema before execution, fragments
included, so a refused request writes nothing and no resolver has to remember the
rule: the answer is HTTP 403 `FORBIDDEN` naming the fields (docs/privacy.md). The
scopes that allow each mutation at all (`usage:write`, `payments:write`) are the
services' role checks, answered as user errors.
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    is_leaf_type,
    visit,
)

from .viewer import Viewer

READ = "read"


def needs_read(viewer: Viewer) -> bool:
    return viewer.role == "partner" and READ not in viewer.scopes


class _Reach(Visitor):
    """Collects `Type.field` of every object field selected outside a payload."""

    def __init__(self, type_info: TypeInfo, allowed_parents: frozenset[str]) -> None:
        super().__init__()
        self.type_info = type_info
        self.allowed_parents = allowed_parents
        self.refused: list[str] = []

    def enter_field(self, node: FieldNode, *_: object) -> None:
        definition = self.type_info.get_field_def()
        parent = self.type_info.get_parent_type()
        if definition is None or parent is None:
            return  # not in the schema: validation reports it
        if is_leaf_type(get_named_type(definition.type)):
            return
        if parent.name not in self.allowed_parents:
            self.refused.append(f"{parent.name}.{node.name.value}")


def refused_without_read(schema: GraphQLSchema, document: DocumentNode) -> list[str] | None:
    """For a key without `read`: None when the document may run; else the fields that
    need `read` (empty for a query, which needs it as a whole)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if any(op.operation != OperationType.MUTATION for op in operations):
        return []
    mutation = schema.mutation_type
    if mutation is None:
        return []
    payloads = frozenset(get_named_type(f.type).name for f in mutation.fields.values())
    type_info = TypeInfo(schema)
    reach = _Reach(type_info, payloads | {mutation.name})
    visit(document, TypeInfoVisitor(type_info, reach))
    return sorted(set(reach.refused)) or None


def read_refusal(viewer: Viewer, schema: GraphQLSchema, document: DocumentNode) -> str | None:
    """Why the viewer may not run this document (None: it may)."""
    if not needs_read(viewer):
        return None
    refused = refused_without_read(schema, document)
    if refused is None:
        return None
    if not refused:
        return "This API key lacks the `read` scope."
    return (
        "This API key lacks the `read` scope, which these fields need (they lead to "
        f"other rows than the one written): {', '.join(refused)}."
    )
