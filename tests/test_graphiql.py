"""GraphiQL from the package, with nothing from a CDN (docs/http.md).

The page and its assets as served (intact builds, their licences, caching, gzip, only
the listed files); and GraphiQL in a real headless Chromium (tests/node/graphiql.mjs)
against `serve --demo`: the page loads from our server alone, the Authorization header
typed into the Headers editor is sent, the README's dashboard query runs, and the
result pane shows exactly the API's answer.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows_graphql import graphiql
from flows_graphql.live.kinds import KINDS
from tests.support import live

README = live.ROOT / "README.md"
ASSET = re.compile(r'(?:src|href)="([^"]+)"(?: integrity="([^"]+)")?')


def readme_dashboard_query() -> str:
    """The README's dashboard query: the one its browser walkthrough runs."""
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    dashboards = [b for b in blocks if 'esco(code: "solarvale")' in b and "monthlyUsage" in b]
    assert len(dashboards) == 1, "README.md should hold the dashboard query, once"
    text: str = dashboards[0]
    return text


@pytest.fixture
def http(live_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        yield client


def page_assets(html: str) -> list[tuple[str, str | None]]:
    return [(url, integrity or None) for url, integrity in ASSET.findall(html) if url != "data:,"]


def test_the_page_loads_nothing_from_elsewhere(http):
    page = http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "unpkg" not in page.text and "cdn" not in page.text.lower()
    # Its own policy: scripts from this server only, and no inline script.
    assert page.headers["content-security-policy"] == graphiql.CSP
    assert "script-src 'self';" in graphiql.CSP and "<script>" not in page.text
    assets = page_assets(page.text)
    assert len(assets) == 6
    for url, _ in assets:
        # Relative to /graphql: served by us, also behind a path prefix.
        assert url.startswith("graphql/assets/"), url
        assert "//" not in url


def test_every_asset_is_served_intact(http):
    """The builds' integrity hashes (which the browser checks too) match what is served,
    and the manifest's record of each vendored file."""
    page = http.get("/graphql", headers={"accept": "text/html"}).text
    manifest = graphiql.manifest()
    checked = 0
    for url, integrity in page_assets(page):
        response = http.get(f"/{url}")
        assert response.status_code == 200, url
        if integrity is None:
            assert url.rsplit("/", 1)[-1] in graphiql.OWN_FILES
            assert response.headers["cache-control"] == "no-cache"
            continue
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
        record = manifest[url.removeprefix("graphql/assets/")]
        assert record["integrity"] == integrity and record["bytes"] == len(response.content)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        checked += 1
    # graphiql's JS and CSS, react, react-dom.
    assert checked == len(manifest) == 4


def test_the_pinned_versions(http):
    versions = {record["package"]: record["version"] for record in graphiql.manifest().values()}
    assert versions == {"graphiql": "3.8.3", "react": "18.2.0", "react-dom": "18.2.0"}
    lock = json.loads((live.ROOT / "tools" / "graphiql" / "package-lock.json").read_text())
    for record in graphiql.manifest().values():
        locked = lock["packages"][f"node_modules/{record['package']}"]
        assert locked["version"] == record["version"]
        assert locked["integrity"] == record["packageIntegrity"]


def test_assets_go_gzipped_to_who_accepts_it(http):
    url = "/graphql/assets/graphiql@3.8.3/graphiql.min.js"
    plain = http.get(url, headers={"accept-encoding": "identity"})
    zipped = http.get(url, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    # httpx decodes it; the bytes on the wire were a quarter of the file.
    assert zipped.content == plain.content
    assert len(gzip.compress(plain.content, 6)) < len(plain.content) / 3


def test_the_licences_are_served_and_shipped(http):
    for package in ("graphiql@3.8.3", "react@18.2.0", "react-dom@18.2.0"):
        licence = http.get(f"/graphql/assets/{package}/LICENSE")
        assert licence.status_code == 200 and "MIT License" in licence.text
    third_party = http.get("/graphql/assets/THIRD_PARTY_LICENSES.txt")
    assert third_party.status_code == 200
    for bundled in ("codemirror@", "markdown-it@", "@radix-ui/react-dialog@", "graphql@"):
        assert bundled in third_party.text


@pytest.mark.parametrize(
    "path",
    [
        "page.html",
        "manifest.json",
        "../graphiql.py",
        "..%2F..%2Fapp.py",
        "graphiql@3.8.3",
        "graphiql@3.8.3/",
        "nothing.js",
        "",
    ],
)
def test_only_the_listed_files_are_served(http, path):
    assert http.get(f"/graphql/assets/{path}").status_code == 404


def test_assets_are_read_only(http):
    url = "/graphql/assets/flows-graphiql.js"
    assert http.post(url, content=b"x").status_code == 405
    assert http.head(url).status_code == 200


async def test_no_graphiql_no_assets(settings, database_url, engine):
    """With GraphiQL off (production's default) its files are not served either."""
    from dataclasses import replace

    from flows_graphql.app import create_app

    app = create_app(replace(settings, env="production", graphiql=False), database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/graphql/assets/flows-graphiql.js")
    await app.state.engine.dispose()
    assert response.status_code == 404


def test_the_default_query_is_the_readme_dashboard():
    script = (graphiql.STATIC / "flows-graphiql.js").read_text(encoding="utf-8")
    assert readme_dashboard_query() in script


def test_package_data_covers_every_static_file():
    """pyproject's package-data patterns take every file GraphiQL needs into a wheel."""
    pyproject = (live.ROOT / "pyproject.toml").read_text()
    patterns = re.search(r"flows_graphql = \[(.*?)\]", pyproject, re.S)
    assert patterns is not None
    globs = re.findall(r'"([^"]+)"', patterns.group(1))
    package = live.ROOT / "flows_graphql"
    matched = set()
    for pattern in globs:
        matched |= {p for p in package.glob(pattern) if p.is_file()}
    files = {p for p in graphiql.STATIC.rglob("*") if p.is_file()}
    assert files and files <= matched, sorted(str(p) for p in files - matched)


# --- in a real browser ----------------------------------------------------------------


def chromium() -> str:
    found = os.environ.get("FLOWS_CHROMIUM") or shutil.which("chromium")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        live.missing("no Chromium installed (Debian: apt-get install -y chromium; .ci/run does)")
    return found


# The README's way to try a subscription without a WebSocket tool: GraphiQL itself. The
# demo's billing runs are in the log, so replaying from the start shows one at once.
SUBSCRIPTION = 'subscription { events(after: "0") { id type } }'


def test_graphiql_runs_the_readme_query_in_chromium(live_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWS_CHROMIUM", chromium())
    query = readme_dashboard_query()
    query_file = tmp_path / "dashboard.graphql"
    query_file.write_text(query, encoding="utf-8")
    subscription_file = tmp_path / "events.graphql"
    subscription_file.write_text(SUBSCRIPTION, encoding="utf-8")
    report = live.run_node(
        "graphiql.mjs",
        live_server.base_url,
        live_server.admin_token,
        str(query_file),
        str(tmp_path / "graphiql.png"),
        str(subscription_file),
    )

    # The page came from our server alone, whole, without a script error.
    assert report["title"] == "GraphiQL · flows-graphql"
    assert report["external"] == [] and report["failed"] == [], report
    assert report["pageErrors"] == []
    assert all(r.split()[1].startswith(live_server.base_url) for r in report["requests"])
    loaded = {r.split()[1].removeprefix(live_server.base_url) for r in report["requests"]}
    assert {f"/graphql/assets/{path}" for path in graphiql.manifest()} <= loaded
    # The page opens with the README's query, and the Headers tab open.
    assert query in report["defaultQuery"]
    assert report["headersTabOpen"] is True

    # The header, as typed into the Headers editor.
    authorization = f"Bearer {live_server.admin_token}"
    assert json.loads(report["headersText"]) == {"Authorization": authorization}
    # Before it, the schema request is refused (401); with it, nothing fails. (A script
    # or style the page's policy refused would show here too.)
    assert all(
        error.startswith("before header:") and "401" in error for error in report["consoleErrors"]
    ), report["consoleErrors"]
    sent = [r for r in report["graphqlRequests"] if r["phase"] == "with header"]
    assert sent and all(r["authorization"] == authorization for r in sent)
    assert all(r["status"] == 200 for r in sent)
    introspection, dashboard = sent[0], sent[-1]
    assert introspection["body"]["operationName"] == "IntrospectionQuery"
    assert dashboard["body"]["query"] == query

    # The result pane holds exactly the data the API answers for that query (what
    # `extensions` carry may differ per request).
    api = httpx.post(
        live_server.graphql_url,
        json={"query": query},
        headers={"Authorization": authorization},
        timeout=30,
    ).json()
    shown = json.loads(report["resultText"])
    assert "errors" not in shown and "errors" not in api
    assert shown["data"] == api["data"]
    esco = shown["data"]["esco"]
    assert esco["name"] == "Solarvale Community Energy"
    assert esco["customers"]["totalCount"] > 0 and esco["customers"]["nodes"]
    usage = esco["customers"]["nodes"][0]["accounts"][0]["account"]["property"]["supplyMeter"]
    assert usage["monthlyUsage"] and usage["monthlyUsage"][0]["costs"]["total"]
    # And a person sees it: the pane's rendered text (non-breaking spaces as spaces).
    visible = report["resultVisibleText"].replace("\xa0", " ")
    assert '"name": "Solarvale Community Energy"' in visible
    assert (tmp_path / "graphiql.png").stat().st_size > 10_000

    # The subscription went over graphql-transport-ws on the same path, its credentials
    # being the Headers editor's JSON, sent as connection_init's payload; the first
    # event of the log came back into the result pane.
    assert report["socketUrl"] == live_server.graphql_url.replace("http://", "ws://")
    frames = report["socketFrames"]
    assert frames[0] == {
        "type": "connection_init",
        "payload": {"Authorization": authorization},
    }, frames
    assert any(
        f.get("type") == "subscribe" and f["payload"]["query"] == SUBSCRIPTION for f in frames
    )
    event = json.loads(report["subscriptionText"])["data"]["events"]
    # (The pane shows the latest of the replayed events.)
    assert event["id"].isdigit() and event["type"] in KINDS, report["subscriptionText"]
