"""The docs stand alone and keep up with the code: no pointer outside the repository,
every error code and setting documented, the README's curl pasteable and working."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from flows_graphql.services.problems import ErrorCode
from tests.support import ROOT
from tests.support.api import bearer
from tests.support.net import serve

DOCS = sorted((ROOT / "docs").glob("*.md"))
PACKAGE = sorted((ROOT / "flows_graphql").rglob("*.py"))
# Codes of errors[].extensions.code that the endpoint and its neighbours answer with.
REQUEST_CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "INVALID",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_COMPLEX",
    "BAD_REQUEST",
    "NOT_ACCEPTABLE",
    "RATE_LIMITED",
    "UNAVAILABLE",
    "TIMEOUT",
    "INTERNAL",
}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_nothing_points_outside_the_repository():
    for path in [ROOT / "README.md", *DOCS, *PACKAGE]:
        # A clone has no ../shared: the domain and rules are docs/domain.md, docs/rules.md.
        assert "shared/" not in text(path), path


def _codes_in_code() -> set[str]:
    """Error codes the package writes literally: refusals and `extensions` codes."""
    found: set[str] = set()
    for path in PACKAGE:
        source = text(path)
        found |= set(re.findall(r'Refused\(\s*\d+,\s*"([A-Z_]+)"', source))
        found |= set(re.findall(r'"code":\s*"([A-Z_]+)"', source))
    return found


def test_every_error_code_is_in_the_catalogue():
    catalogue = text(ROOT / "docs" / "errors.md")
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", catalogue, flags=re.M))
    codes = {c.value for c in ErrorCode} | REQUEST_CODES | _codes_in_code()
    missing = sorted(codes - listed)
    assert not missing, f"error codes missing from docs/errors.md: {missing}"


def test_every_setting_is_documented():
    documented = text(ROOT / "README.md") + "".join(text(path) for path in DOCS)
    names = set(re.findall(r'"(FLOWS_[A-Z_]+)"', text(ROOT / "flows_graphql" / "config.py")))
    assert {"FLOWS_PORT", "FLOWS_REDIS_URL", "FLOWS_METRICS_TOKEN"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in documented)
    assert not missing, f"settings missing from README.md and docs/: {missing}"


def _blocks(path: Path) -> list[str]:
    """The fenced code blocks of a Markdown file."""
    blocks, current = [], None
    for line in text(path).splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _curl_lines(path: Path) -> list[str]:
    return [b for b in _blocks(path) if b.startswith("curl ")]


def test_curl_examples_are_one_pasteable_line():
    for path in [ROOT / "README.md", *DOCS]:
        for block in _curl_lines(path):
            command = block.splitlines()[0]
            assert not command.endswith("\\"), (path, command)
            assert command.count("'") % 2 == 0, (path, command)


def test_the_readme_curl_works(settings, database_url, engine, tmp_path):
    (readme_curl,) = _curl_lines(ROOT / "README.md")
    command = readme_curl.splitlines()[0]
    with serve(settings, database_url, tmp_path) as port:
        token = bearer(settings, "admin")["Authorization"].removeprefix("Bearer ")
        result = subprocess.run(
            ["bash", "-c", command.replace("localhost:8000", f"localhost:{port}")],
            env={**os.environ, "TOKEN": token},
            capture_output=True,
            text=True,
            timeout=30,
        )
        body = json.loads(result.stdout)
        assert body["data"]["viewer"]["role"] == "ADMIN", body
        assert body["extensions"]["cost"]["requested"] >= 1
