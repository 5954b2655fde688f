"""OpenTelemetry: one span per operation, a child span per SQL statement (both the
SQLAlchemy path and the loaders' direct asyncpg one), none per field; nothing at all
when tracing is off."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flows_graphql import tracing
from flows_graphql.config import RateLimits
from tests.support.api import asgi_client, bearer, gql
from tests.support.factories import build_esco

DASHBOARD = """
query Dashboard($code: String!) {
  esco(code: $code) {
    name
    customers(first: 20) {
      nodes {
        email
        accounts { account { property { supplyMeter {
          serial circuits { type } monthlyUsage(from: "2024-01-01") { month costs { total } }
        } } } }
      }
    }
  }
}"""


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()


def tree(exporter: InMemorySpanExporter):
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.kind == SpanKind.SERVER]
    assert len(roots) == 1, [s.name for s in finished]
    root = roots[0]
    children = [s for s in finished if s is not root]
    return root, children


async def test_one_span_per_operation_with_a_child_per_statement(client, raw, settings, spans):
    esco = await build_esco(raw, "tr", customers=3, months=2)
    # The first request opens the pool's connection (the dialect's own queries, the
    # role switch: children of that request's span too); the next one reuses it.
    await gql(client, DASHBOARD, {"code": "tr"})
    spans.clear()
    body = await gql(client, DASHBOARD, {"code": "tr"})
    assert "errors" not in body, body
    assert len(body["data"]["esco"]["customers"]["nodes"]) == 3
    root, children = tree(spans)

    assert root.name == "query Dashboard"
    attrs = dict(root.attributes or {})
    assert attrs["graphql.operation.name"] == "Dashboard"
    assert attrs["graphql.operation.type"] == "query"
    assert attrs["flows.role"] == "admin" and attrs["flows.esco"] == "*"
    assert attrs["flows.cost"] == body["extensions"]["cost"]["requested"] > 100
    assert attrs["flows.sql_statements"] == body["extensions"]["sqlStatements"]
    assert "flows.error_code" not in attrs
    assert root.status.status_code != StatusCode.ERROR

    # Every other span is a PostgreSQL statement, a child of the operation: the
    # snapshot's BEGIN (with the ROLLBACK of the first request's read, parked for this
    # one: db/request.Parking) and each loader's batched SELECT — no span for any of the
    # hundreds of fields. This read's own ROLLBACK comes with the next one's BEGIN, or
    # on its own in no request's trace.
    assert all(s.kind == SpanKind.CLIENT for s in children), [s.name for s in children]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in children)
    assert all(s.context.trace_id == root.context.trace_id for s in children)
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in children]
    assert re.match(r"(ROLLBACK; )?BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", statements[0])
    if settings.behind_pooler:
        # Nothing is parked behind a pooler: the read ends with its own ROLLBACK.
        assert statements[-1] == "ROLLBACK"
        statements.pop()
    assert not any(s.startswith("ROLLBACK") for s in statements[1:])
    selects = [s for s in statements if s.startswith("SELECT")]
    # Counted statements are the BEGIN and the SELECTs.
    assert len(selects) + 1 == attrs["flows.sql_statements"]
    assert any("monthly_usage" in s for s in selects)
    assert esco.code == "tr"


async def test_the_loaders_direct_reads_are_traced(client, raw, spans):
    """db/direct.py fetches on the asyncpg connection itself, past SQLAlchemy."""
    await build_esco(raw, "td", customers=2, months=1)
    spans.clear()
    await gql(client, DASHBOARD, {"code": "td"})
    _, children = tree(spans)
    fetches = [s for s in children if "meters" in str((s.attributes or {}).get("db.statement"))]
    assert fetches, [s.attributes for s in children]


async def test_an_error_code_marks_the_span(client, settings, spans):
    body = await gql(client, "query Bad { regions { nope } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    root, children = tree(spans)
    assert root.attributes["flows.error_code"] == "GRAPHQL_VALIDATION_FAILED"
    assert root.status.status_code == StatusCode.ERROR
    assert children == []  # refused before any statement


async def test_a_rate_limited_request_is_one_span_with_its_code(
    settings, database_url, engine, spans
):

    from flows_graphql.app import create_app

    tight = dataclasses.replace(settings, rate_limits=RateLimits(operator=3))
    app = create_app(tight, database_url)
    esco = "00000000-0000-0000-0000-000000000001"
    headers = bearer(settings, "operator", sub="traced", escos=[esco])
    async with asgi_client(app, headers) as http:
        response = await http.post("/graphql", json={"query": "query R { regions { code } }"})
    await app.state.engine.dispose()
    assert response.status_code == 429
    root, children = tree(spans)
    assert root.name == "query R"
    assert root.attributes["flows.error_code"] == "RATE_LIMITED"
    assert root.attributes["flows.role"] == "operator"
    assert root.attributes["flows.esco"] == esco
    assert root.attributes["http.response.status_code"] == 429
    assert children == []


async def test_off_means_no_tracer_and_asyncpg_untouched(client):
    assert tracing.tracer is None and not tracing.enabled()
    # The instrumentation wraps asyncpg's methods only while tracing is on.
    assert not hasattr(asyncpg.Connection.fetch, "__wrapped__")
    body = await gql(client, "{ regions { code } }")
    assert len(body["data"]["regions"]) == 14


def test_tracing_is_wanted_only_with_an_otlp_endpoint(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert not tracing.wanted()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.wanted()


def test_serve_exports_over_otlp_with_the_standard_variables(
    settings, database_url, engine, tmp_path
):
    """A real server process, an OTLP/HTTP receiver of ours on loopback: the spans
    arrive, under the service name OTEL_SERVICE_NAME gave."""
    import http.server
    import threading
    import time

    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from tests.support.net import serve

    received: list[ExportTraceServiceRequest] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces":
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append(message)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
        "OTEL_SERVICE_NAME": "flows-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with serve(settings, database_url, tmp_path, env=otel, dropped=("OTEL_",)) as port:
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "query Regions { regions { code } }"},
            headers=bearer(settings, "admin"),
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 20
        names: list[str] = []
        while time.monotonic() < deadline and "query Regions" not in names:
            time.sleep(0.2)
            spans_seen = [
                (resource, span)
                for message in list(received)
                for resource in message.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            names = [span.name for _, span in spans_seen]
        assert "query Regions" in names, names
        resource = next(r for r, s in spans_seen if s.name == "query Regions").resource
        service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
        assert service == "flows-under-test"
        root = next(s for _, s in spans_seen if s.name == "query Regions")
        children = [s for _, s in spans_seen if s.parent_span_id == root.span_id]
        assert any(s.name == "SELECT" for s in children), [s.name for s in children]
        receiver.shutdown()
