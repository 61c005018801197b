"""The running product: `bessai run` wires the gateway, its devices (or embedded simulators),
the telemetry pipeline, metrics and alerts, and the HTTP server, and stops them in order."""
