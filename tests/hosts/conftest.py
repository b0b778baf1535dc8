"""Fixtures for the hosts tests: three network namespaces on a bridge, and a cluster whose
workers are hosts in them (real processes, real Caddy, a real PostgreSQL catalog).

Namespaces need Linux and root: elsewhere these tests are skipped with the reason, and in CI
(which runs as root) they fail instead. Every namespace, link and process is removed at
teardown, whatever the test did.
"""

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_client import Running
from host_tools import HOST_PORT, HOSTS, LINK_DELAY, need_namespaces, start

from accord_app.cluster.hosts import HostNetwork
from accord_app.lab.relay import DelayRelay


@pytest.fixture
def network() -> Iterator[HostNetwork]:
    need_namespaces()
    with HostNetwork(HOSTS) as made:
        yield made


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A folder for a cluster, outside pytest's own: PostgreSQL runs as another user, who must
    be let through the folders above its files, and every pytest session that starts (another
    run's, on a shared machine) takes that right away from pytest's folders."""
    folder = Path(tempfile.mkdtemp(prefix="accord-hosts-"))
    folder.chmod(0o711)  # mkdtemp's 0700 would keep that user out, and the kit leaves it be
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def on_hosts(data_dir: Path, network: HostNetwork) -> Iterator[Running]:
    """A cluster of three hosts, each in its namespace, for this test alone (it may kill or
    cut off some)."""
    yield from start(data_dir, network.hosts(HOST_PORT))


@pytest.fixture
def slow_host_2(data_dir: Path, network: HostNetwork) -> Iterator[Running]:
    """The same, with a delay relay on the path from the proxy to host 2: the proxy dials the
    relay, at the gateway, which dials host 2 (and placement hashes the relay's address)."""
    hosts = network.hosts(HOST_PORT)
    host, port = hosts.members[1].listen.rsplit(":", 1)
    with DelayRelay((hosts.gateway, 0), (host, int(port)), LINK_DELAY) as relay:
        slowed = dataclasses.replace(hosts.members[1], dial=relay.address)
        members = (hosts.members[0], slowed, *hosts.members[2:])
        yield from start(data_dir, dataclasses.replace(hosts, members=members))
