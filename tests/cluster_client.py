"""A client for a running cluster, shared by the cluster's tests and the hosts' tests: the
cluster and an HTTP client for its proxy, and what tests ask of them."""

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from accord_app.actors import ids
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster import Cluster
from accord_app.cluster.placement import Placement

RECV_TIMEOUT = 5.0


@dataclass
class Channel:
    server_id: str
    channel_id: str

    @property
    def path(self) -> str:
        return f"/api/servers/{self.server_id}/channels/{self.channel_id}"


@dataclass
class Running:
    """A started cluster with an HTTP client for its proxy, and what tests ask of it."""

    cluster: Cluster
    http: httpx.Client

    @property
    def mode(self) -> Sharding:
        return self.cluster.sharding

    def placement(self) -> Placement:
        return Placement(self.cluster.addresses, 1)

    def owner(self, channel: Channel) -> int:
        return self.placement().owner(shard_key(self.mode, channel.server_id, channel.channel_id))

    def create_server(self, name: str = "Workshop") -> str:
        response = self.http.post("/api/servers", json={"name": name})
        assert response.status_code == 201, response.text
        server_id: str = response.json()["id"]
        return server_id

    def create_channels(self, count: int, server_id: str | None = None) -> list[Channel]:
        server_id = server_id or self.create_server()
        channels = []
        for number in range(count):
            response = self.http.post(
                f"/api/servers/{server_id}/channels", json={"name": f"channel-{number}"}
            )
            assert response.status_code == 201, response.text
            channels.append(Channel(server_id, response.json()["id"]))
        return channels

    def one_servers_channels_on_every_worker(self, at_least: int) -> list[Channel]:
        """At least `at_least` channels of one new server, more until every worker hosts one
        (12 channels miss one of 3 workers about once in 50 runs)."""
        channels = self.create_channels(at_least)
        while {self.owner(channel) for channel in channels} != set(
            range(1, self.cluster.workers + 1)
        ):
            assert len(channels) < 200, "200 channels and still a worker without any"
            channels += self.create_channels(1, channels[0].server_id)
        return channels

    def channels_on_every_worker(self, per_worker: int = 1) -> dict[int, list[Channel]]:
        """Channels (each in its own server, so every mode spreads them) until every worker
        hosts `per_worker` of them."""
        found: dict[int, list[Channel]] = {n: [] for n in range(1, self.cluster.workers + 1)}
        for _ in range(200):
            if all(len(channels) >= per_worker for channels in found.values()):
                return found
            [channel] = self.create_channels(1)
            found[self.owner(channel)].append(channel)
        raise AssertionError(f"200 channels and still a worker without any: {found}")

    def ws_url(self, channel: Channel, username: str, base: str | None = None) -> str:
        base = (base or self.cluster.url).replace("http://", "ws://")
        return f"{base}{channel.path}/connect?username={username}"

    def actor_file(self, channel: Channel, host: int | None = None) -> Path:
        """Where the channel's actor keeps its messages (see Namespace.storage_path), in the
        folder of its worker (or of worker `host`: every host has a folder of its own)."""
        key = shard_key(self.mode, channel.server_id, channel.channel_id)
        actor_hex = ids.id_from_name("channels", key).hex
        data_dir = self.cluster.worker_data_dir(host or self.owner(channel))
        folder = data_dir / "actors" / "channels" / actor_hex[:2] / actor_hex[2:4]
        return folder / f"{actor_hex}.sqlite3"

    # Client-side helpers (test modules cannot import conftest reliably).
    @staticmethod
    def connect(url: str) -> Any:
        return connect(url, compression=None, proxy=None, open_timeout=5)

    @staticmethod
    async def recv_json(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = await ws.recv()
        assert isinstance(data, str), data
        frame: dict[str, Any] = json.loads(data)
        return frame

    @staticmethod
    async def recv_until(ws: ClientConnection, kind: str) -> dict[str, Any]:
        """The next frame of type `kind`, skipping presence and other members' news."""
        while True:
            frame = await Running.recv_json(ws)
            if frame["type"] == kind:
                return frame
