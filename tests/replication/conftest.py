"""Fixtures for the replicated log: a real NATS JetStream cluster of three servers on loopback,
for one test (the tests kill and pause its servers), and the replicated chat cluster (three
hosts, each with a worker and a NATS server, behind Caddy)."""

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cluster_client import Running
from replica_tools import CLUSTER_LOG_TIMEOUT

from accord_app.cluster import Cluster
from accord_app.cluster.hosts import loopback_hosts
from accord_app.cluster.nats import NatsCluster
from accord_app.cluster.ports import free_port
from accord_app.lab.loadtest import LIFTED_LIMITS


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", servers=3) as cluster:
        yield cluster


@pytest.fixture
def replicated(tmp_path: Path, new_catalog_url: Callable[[], str]) -> Iterator[Running]:
    hosts = loopback_hosts([free_port("127.0.0.1") for _ in range(3)])
    env = {**LIFTED_LIMITS, "ACCORD_REPLICATION_TIMEOUT": CLUSTER_LOG_TIMEOUT}
    cluster = Cluster(
        3,
        data_dir=tmp_path / "data",
        port=0,
        hosts=hosts,
        env=env,
        catalog_url=new_catalog_url(),  # the session's PostgreSQL, not one per test
        replicated=True,
    )
    with (
        cluster,
        httpx.Client(base_url=cluster.url, timeout=10.0, trust_env=False) as http,
    ):
        yield Running(cluster, http)
