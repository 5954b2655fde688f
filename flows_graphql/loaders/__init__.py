"""Per-request dataloaders, one module per domain, named after the SQL path they batch."""

from .base import Loaders

__all__ = ["Loaders"]
