"""What an identity that nobody here knows yet may ask: who it is (`viewer`) and to
accept an invite — nothing else, not even the reference data every principal reads."""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

ALLOWED_ROOT_FIELDS = frozenset({"viewer", "acceptInvite", "__typename"})


def root_fields(document: DocumentNode, operation_name: str | None) -> set[str] | None:
    """The root fields the operation selects (through fragments too); None when the
    document names no such operation (validation answers then)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if len(chosen) != 1:
        return None
    names: set[str] = set()
    seen: set[str] = set()

    def collect(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                collect(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    seen.add(name)
                    collect(fragments[name].selection_set)

    collect(chosen[0].selection_set)
    return names


def allowed_for_unlinked(document: DocumentNode, operation_name: str | None) -> bool:
    fields = root_fields(document, operation_name)
    return fields is None or fields <= ALLOWED_ROOT_FIELDS
