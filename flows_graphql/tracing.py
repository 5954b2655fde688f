"""OpenTelemetry traces: one span per GraphQL operation, a child span per SQL statement.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set:
then no tracer is installed and asyncpg is left uninstrumented, so tracing costs
nothing — the endpoint tests one module attribute per operation. When on, the
standard OTEL_* variables apply as the SDK reads them (OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER[_ARG], OTEL_EXPORTER_OTLP_HEADERS,
OTEL_BSP_*, OTEL_SDK_DISABLED …). Statements are traced by
`opentelemetry-instrumentation-asyncpg`, which wraps asyncpg's connection and prepared
statement methods: both SQLAlchemy's path and the loaders' direct one (db/direct.py)
end there. Fields get no span: a dashboard resolves thousands of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("flows_graphql.tracing")

# The tracer while tracing is on; None (the default) means off.
tracer: Any = None
_provider: Any = None


def enabled() -> bool:
    return tracer is not None


def wanted() -> bool:
    """Whether the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def install(provider: Any) -> None:
    """Trace with `provider` (a TracerProvider): operations and their statements."""
    global tracer, _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    _provider = provider
    tracer = provider.get_tracer("flows_graphql")


def uninstall(*, shutdown: bool = True) -> Any:
    """Tracing off again; returns the provider (still usable unless shut down)."""
    global tracer, _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    provider = _provider
    if provider is not None and shutdown:
        provider.shutdown()
    tracer = _provider = None
    return provider


def configure_from_env() -> bool:
    """Install the OTLP (HTTP/protobuf) exporter when the environment asks for it."""
    if not wanted():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        # Only the HTTP exporter is installed (no gRPC stack in the server's dependencies).
        log.warning(
            "OTLP protocol not available: exporting with http/protobuf",
            extra={"asked": protocol},
        )
    # From OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; our name when they give none.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "flows-graphql"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    install(provider)
    log.info("tracing on", extra={"exporter": "otlp"})
    return True


@contextlib.contextmanager
def operation_span(name: str) -> Iterator[Any]:
    """The span of one GraphQL operation (renamed and described as it goes)."""
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
        yield span
