"""Fixtures for the replicated log: a real NATS JetStream cluster of three servers on loopback,
for one test (the tests kill and pause its servers)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord_app.cluster.nats import NatsCluster


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", servers=3) as cluster:
        yield cluster
