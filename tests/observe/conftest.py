"""The site-runner fixtures of the gateway tests, for alert tests that run real cycles."""

from tests.control.conftest import audit, make_runner

__all__ = ["audit", "make_runner"]
