"""OpenTelemetry for telemetry publishing: spans go out over OTLP when an endpoint is
configured; otherwise the API's default provider makes every span a no-op."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bessai.errors import ConfigError

TRACER_NAME = "bessai.telemetry"


def tracer() -> trace.Tracer:
    # Looked up per use so a provider installed after import still takes effect.
    """The project's OpenTelemetry tracer (a no-op without an exporter)."""
    return trace.get_tracer(TRACER_NAME)


def configure_tracing(endpoint: str | None, *, service_name: str = "bessai") -> bool:
    """Install an OTLP/HTTP exporter for `endpoint`; returns False (no-op) without one."""
    if not endpoint:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError as exc:
        raise ConfigError(
            f"telemetry.otlp_endpoint = {endpoint!r} needs the OTLP exporter: "
            "pip install 'bessai[otlp]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return True
