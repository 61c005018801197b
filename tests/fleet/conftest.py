"""Fleet fixtures: one PostgreSQL cluster per test session (initdb takes seconds), a fresh
database per test, and the NATS JetStream server of the telemetry tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet.pg import PgCluster, pg_cluster
from tests.telemetry.brokers import nats_server

__all__ = ["nats_server"]


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def fleet_dsn(pg: PgCluster) -> str:
    """A fresh database on the session's cluster."""
    return pg.new_database()
