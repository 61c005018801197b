"""Observability: Prometheus metrics, health, status display."""
