"""Modbus TCP proxy: re-serves a site's device, as the gateway reads it, to other clients (Home
Assistant, evcc, monitoring), with writes through the safety verdict (docs/proxy.md)."""

from bessai.proxy.server import ProxyServer

__all__ = ["ProxyServer"]
