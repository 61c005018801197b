"""Telemetry that loses nothing: envelope, durable outbox, forwarder, sinks, metrics, health.

The gateway cycle uses `TelemetryPipeline` (see pipeline.py); everything else is reachable
from here for tools and tests."""

from bessai.telemetry.config import (
    LakeSinkConfig,
    MqttSinkConfig,
    NatsSinkConfig,
    TelemetryConfig,
    load_telemetry_config,
)
from bessai.telemetry.envelope import SCHEMA_VERSION, Envelope, EnvelopeModel, Record
from bessai.telemetry.health import TelemetryHealth
from bessai.telemetry.metrics import TelemetryCollector, render
from bessai.telemetry.outbox import AppendResult, Outbox, OutboxStats
from bessai.telemetry.pipeline import TelemetryPipeline

__all__ = [
    "SCHEMA_VERSION",
    "AppendResult",
    "Envelope",
    "EnvelopeModel",
    "LakeSinkConfig",
    "MqttSinkConfig",
    "NatsSinkConfig",
    "Outbox",
    "OutboxStats",
    "Record",
    "TelemetryCollector",
    "TelemetryConfig",
    "TelemetryHealth",
    "TelemetryPipeline",
    "load_telemetry_config",
    "render",
]
