"""Strawberry types, one module per domain."""

# Register the GraphQL enums (with their descriptions) before any type module uses
# them: a type naming a plain model enum first would register it undescribed.
from . import enums as _enums  # noqa: F401
