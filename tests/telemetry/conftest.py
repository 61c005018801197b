"""Fixtures for the telemetry tests live in brokers.py (importable by the tests too)."""

from brokers import mosquitto, mosquitto_auth, nats_server, tcp_proxy_factory

__all__ = ["mosquitto", "mosquitto_auth", "nats_server", "tcp_proxy_factory"]
