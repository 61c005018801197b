"""The components of the Flower app bundle: bessai's apps, re-exported."""

from bessai.federated.flower import client_app, server_app

__all__ = ["client_app", "server_app"]
