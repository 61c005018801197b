"""The fleet backend: consumes the gateways' JetStream telemetry stream into PostgreSQL and
serves one operator view of every site (docs/fleet.md). No Modbus, no devices: it knows the
sites only through their envelopes."""
