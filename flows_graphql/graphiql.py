"""GraphiQL from the package: the page and the pinned build it loads, vendored into
`static/graphiql` by `tools/graphiql/vendor.mjs` (docs/http.md). Nothing comes from a
CDN, so GraphiQL works on a machine without internet."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

STATIC = Path(__file__).resolve().parent / "static" / "graphiql"
# Where the page finds them, relative to /graphql (see page.html).
MOUNT = "/graphql/assets"
# Ours, beside the vendored builds; they change with our releases, so they are
# revalidated rather than cached for a year.
OWN_FILES = frozenset({"flows-graphiql.js", "flows-graphiql.css"})
# The page's own policy: scripts and styles from this server only (no CDN, no inline
# script); GraphiQL sets inline styles and its CSS inlines fonts and icons as data: URLs;
# it talks to this origin alone.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_html() -> str:
    return (STATIC / "page.html").read_text(encoding="utf-8")


def manifest() -> dict[str, dict[str, object]]:
    """The vendored files: package, version, Subresource Integrity hash, size."""
    files: dict[str, dict[str, object]] = json.loads(
        (STATIC / "manifest.json").read_text(encoding="utf-8")
    )["files"]
    return files


def served_files() -> frozenset[str]:
    """Every file the asset route answers: the builds, their licences, and ours."""
    builds = set(manifest())
    licences = {f"{PurePosixPath(path).parts[0]}/LICENSE" for path in builds}
    return frozenset(builds | licences | OWN_FILES | {"THIRD_PARTY_LICENSES.txt"})


class Assets(StaticFiles):
    """Only the listed files (not page.html, not the manifest); the versioned builds
    are immutable, so a browser fetches them once."""

    def __init__(self) -> None:
        super().__init__(directory=STATIC)
        self.allowed = {os.path.normpath(path) for path in served_files()}

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in self.allowed:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = "@" in Path(full_path).relative_to(STATIC).parts[0]
        response.headers["cache-control"] = (
            "public, max-age=31536000, immutable" if versioned else "no-cache"
        )
        return response


def assets() -> ASGIApp:
    # 4 MB of JavaScript and CSS (fonts inlined) go as 1 MB gzipped.
    return GZipMiddleware(Assets(), minimum_size=1024, compresslevel=6)
