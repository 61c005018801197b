"""Modbus layer: register-profile schema and loader, codec, read planner, async client."""
