"""The command line as the tests run it: `python -m flows_graphql.cli` in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.support import ROOT, live


def run(
    *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    base = live.environment("DATABASE_URL")
    if env and "DATABASE_URL" in env:
        # A database of the test's choosing: the suite's server past the pooler is not
        # its server.
        base.pop("FLOWS_DATABASE_DIRECT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flows_graphql.cli", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
