"""What the hosts tests share besides fixtures (test modules cannot import a conftest)."""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_client import Running

from accord_app.chat.sharding import Sharding
from accord_app.cluster import Cluster
from accord_app.cluster.hosts import Hosts, namespaces_unavailable
from accord_app.lab.loadtest import LIFTED_LIMITS

HOSTS = 3
HOST_PORT = 8000  # every host has its own address, and so every port free
HTTP_TIMEOUT = 10.0
LINK_DELAY = 0.05  # seconds, each way, on the slowed link


def need_namespaces() -> None:
    """Skip without network namespaces, with the reason; in CI (root) fail instead."""
    reason = namespaces_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the hosts tests need network namespaces: {reason}")
        pytest.skip(reason)


def start(folder: Path, hosts: Hosts) -> Iterator[Running]:
    # Clients here take every message at once: no test is about the rate limit.
    with (
        Cluster(
            len(hosts.members), Sharding.CHANNEL, folder, port=0, env=LIFTED_LIMITS, hosts=hosts
        ) as cluster,
        httpx.Client(base_url=cluster.url, timeout=HTTP_TIMEOUT, trust_env=False) as http,
    ):
        yield Running(cluster, http)
