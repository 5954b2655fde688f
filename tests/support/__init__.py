"""What the tests share: the world they build (factories.py, seed.py), how they call
the API (api.py), statement counts, keys and servers. Test modules import from here,
never from one another; conftest.py registers the shared fixtures once."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Tables whose rows the migrations seed; every other table starts each test empty.
SEEDED_TABLES = {"regions"}
