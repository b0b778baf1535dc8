"""Who a worker believes the client is: the address Caddy reports in X-Forwarded-For, but only
on requests that carry the router's secret. A process that connects to a worker's port itself
(or reaches a host through the gateway) is the address it comes from, whatever it writes."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_client import Running
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from accord_app.chat.sharding import Sharding
from accord_app.cluster import Cluster
from accord_app.lab.loadtest import LIFTED_LIMITS

pytestmark = pytest.mark.anyio


@pytest.fixture
def one_connection_each(tmp_path: Path) -> Iterator[Running]:
    """Two workers that let each client address hold one WebSocket at a time."""
    env = {**LIFTED_LIMITS, "ACCORD_CLIENT_CONNECTIONS": "1"}
    with (
        Cluster(2, Sharding.CHANNEL, tmp_path / "data", port=0, env=env) as cluster,
        httpx.Client(base_url=cluster.url, timeout=10, trust_env=False) as http,
    ):
        yield Running(cluster, http)


def connect_as(url: str, source: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Any:
    return connect(
        url,
        compression=None,
        proxy=None,
        open_timeout=5,
        additional_headers=headers,
        local_addr=(source, 0),
    )


async def test_x_forwarded_for_is_believed_from_the_router_alone(
    one_connection_each: Running,
) -> None:
    running = one_connection_each
    [channel] = running.create_channels(1)
    worker = running.cluster.worker_url(running.owner(channel))
    url = running.ws_url(channel, "ada", worker)
    # Straight to the worker, each connection claims another address: both are 127.0.0.1.
    async with connect_as(url, headers={"X-Forwarded-For": "10.9.9.8"}):
        forged = {"X-Forwarded-For": "10.9.9.9", "X-Accord-Router": "a guess"}
        with pytest.raises(InvalidStatus) as refused:
            async with connect_as(running.ws_url(channel, "bob", worker), headers=forged):
                pass
        assert refused.value.response.status_code == 429
    # Through the router, two members from two addresses are two clients, each believed.
    async with (
        connect_as(running.ws_url(channel, "cy"), "127.0.0.2"),
        connect_as(running.ws_url(channel, "di"), "127.0.0.3"),
    ):
        pass
