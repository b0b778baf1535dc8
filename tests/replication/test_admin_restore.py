"""The admin endpoint that restores a channel to a time or a bookmark: the app on a real
uvicorn with its log on a real 3-server NATS cluster."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from accord_app import Settings, create_app
from accord_app.cluster.nats import NatsCluster
from accord_app.lab.server import BackgroundServer

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-admin-token"


def serve(settings: Settings) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    with (
        BackgroundServer(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http,
    ):
        yield server, http


@pytest.fixture
def replicated_app(
    nats_cluster: NatsCluster, tmp_path: Path
) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    settings = Settings(
        port=0, data_dir=tmp_path / "data", replication=nats_cluster.url, admin_token=TOKEN
    )
    yield from serve(settings)


def new_channel(http: httpx.Client) -> str:
    server = http.post("/api/servers", json={"name": "Workshop"})
    assert server.status_code == 201, server.text
    server_id = server.json()["id"]
    channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"}).json()
    return f"/api/servers/{server_id}/channels/{channel['id']}"


async def test_a_channel_restored_to_a_time_then_undone(
    replicated_app: tuple[BackgroundServer, httpx.Client],
) -> None:
    server, http = replicated_app
    path = new_channel(http)
    url = server.url.replace("http://", "ws://") + f"{path}/connect?username=ada"
    async with connect(url, proxy=None) as ws:
        for number in range(1, 4):
            await ws.send(
                json.dumps({"type": "message", "message": f"m{number}", "nonce": f"{number}"})
            )
            while json.loads(await ws.recv())["type"] != "ack":
                pass
            if number == 2:
                between = time.time()  # after m2's ack, before m3 was sent
        auth = {"Authorization": f"Bearer {TOKEN}"}
        answer = http.post(f"{path}/restore", json={"time": between}, headers=auth)
        assert answer.status_code == 200, answer.text
        with pytest.raises(Exception) as closed:
            while True:
                await ws.recv()
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 1012
    texts = [m["message"] for m in http.get(f"{path}/messages").json()]
    assert texts == ["m2", "m1"]
    undo = http.post(f"{path}/restore", json={"bookmark": answer.json()["undo"]}, headers=auth)
    assert undo.status_code == 200, undo.text
    assert [m["message"] for m in http.get(f"{path}/messages").json()] == ["m3", "m2", "m1"]


async def test_restore_needs_the_token_and_a_good_bookmark(
    replicated_app: tuple[BackgroundServer, httpx.Client],
) -> None:
    _, http = replicated_app
    path = new_channel(http)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = http.post(f"{path}/restore", json={"time": 0}, headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = http.post(f"{path}/restore", json={"bookmark": "12"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_bookmark"
    both = http.post(f"{path}/restore", json={"bookmark": "1", "time": 1}, headers=auth)
    assert both.status_code == 400 and both.json()["code"] == "invalid_restore"
    old = http.post(f"{path}/restore", json={"time": time.time() - 40 * 86400}, headers=auth)
    assert old.status_code == 400 and "older than the log keeps" in old.json()["message"]


def test_without_a_token_there_is_no_restore_endpoint(tmp_path: Path) -> None:
    for _, http in serve(Settings(port=0, data_dir=tmp_path / "data")):
        path = new_channel(http)
        assert http.post(f"{path}/restore", json={"time": 0}).status_code in (404, 405)
    for _, http in serve(Settings(port=0, data_dir=tmp_path / "other", admin_token=TOKEN)):
        path = new_channel(http)
        answer = http.post(
            f"{path}/restore", json={"time": 0}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 409 and answer.json()["code"] == "not_replicated"
