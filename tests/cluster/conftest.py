"""Fixtures for the cluster tests: real worker processes behind the real Caddy, on loopback.

A cluster takes a second or two to start (each worker imports the app), so the routing tests
share one cluster per sharding mode; the tests that kill workers start their own.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_client import Running

from accord_app.chat.sharding import Sharding
from accord_app.cluster import Cluster
from accord_app.lab.loadtest import ADMIN_HEADERS, LIFTED_LIMITS

HTTP_TIMEOUT = 10.0


def start(tmp_path: Path, workers: int, mode: Sharding | str) -> Iterator[Running]:
    # Workers in these tests take every message at once: no test is about the rate limit.
    with (
        Cluster(workers, mode, tmp_path / "data", port=0, env=LIFTED_LIMITS) as cluster,
        httpx.Client(
            base_url=cluster.url, headers=ADMIN_HEADERS, timeout=HTTP_TIMEOUT, trust_env=False
        ) as http,
    ):
        yield Running(cluster, http)


@pytest.fixture(scope="module", params=[mode.value for mode in Sharding])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Two workers behind Caddy, in each sharding mode; shared by a module's tests."""
    yield from start(tmp_path_factory.mktemp("cluster"), 2, request.param)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Running]:
    """Three workers with channel sharding, for this test alone (it may kill some)."""
    yield from start(tmp_path, 3, Sharding.CHANNEL)
