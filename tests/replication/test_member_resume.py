"""The members that the kill rounds run (members.py) must never skip a seq, which is what they
check the server for. A replay comes in slices; what is written meanwhile reaches a member live
between two slices, with seqs above everything the replay has still to send. One app on
loopback, no cluster: a replay long enough for three slices while a member writes."""

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from members import Member
from websockets.asyncio.client import ClientConnection, connect

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.chat.channel import REPLAY_CHARS
from accord_app.chat.protocol import MAX_MESSAGE_CHARS
from accord_app.chat.ratelimit import ChatLimits
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath

pytestmark = pytest.mark.anyio
UNLIMITED = ChatLimits(messages_per_second=100_000, burst=100_000,
                       client_messages_per_second=100_000, client_burst=100_000)  # fmt: skip
BACKLOG = 3 * REPLAY_CHARS // MAX_MESSAGE_CHARS  # three slices' worth of long messages


@pytest.fixture(params=[path.value for path in WebSocketPath])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackgroundServer]:
    settings = replace(
        Settings(data_dir=tmp_path / "data", websocket=WebSocketPath(request.param)),
        chat_limits=UNLIMITED,
    )
    with BackgroundServer(create_app(settings), **uvicorn_options(settings)) as running:
        yield running


async def post(ws: ClientConnection, text: str) -> None:
    nonce = uuid.uuid4().hex
    await ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))
    while (frame := json.loads(await ws.recv())).get("nonce") != nonce:
        assert frame["type"] != "error", frame


async def test_a_member_catching_up_in_slices_while_others_write_gets_every_seq(
    server: BackgroundServer,
) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        server_id = http.post("/api/servers", json={"name": "Workshop"}).json()["id"]
        path = f"/api/servers/{server_id}/channels"
        channel_id = http.post(path, json={"name": "general"}).json()["id"]
    connect_url = f"{server.ws_url}{path}/{channel_id}/connect?username="
    async with connect(connect_url + "writer", compression=None, proxy=None) as writer:
        for number in range(BACKLOG):  # all at once: a few group commits
            text = f"{number:05} " + "x" * (MAX_MESSAGE_CHARS - 6)
            await writer.send(json.dumps({"type": "message", "message": text}))
        acks = 0
        while acks < BACKLOG:
            frame = json.loads(await writer.recv())
            assert frame["type"] != "error", frame
            acks += frame["type"] == "ack"

        async def write_live() -> None:
            for number in range(10_000):
                await post(writer, f"live {number}")
                await asyncio.sleep(0.002)

        live = asyncio.create_task(write_live())
        member = Member(connect_url + "reader", "reader", random.Random(1))
        try:
            await member.catch_up()  # from after_seq=0, slice after slice
        finally:
            live.cancel()
            await asyncio.gather(live, return_exceptions=True)
    newest = max(member.seen)
    assert newest > BACKLOG, "no live message came during the catch-up: nothing tested"
    missing = sorted(set(range(1, newest + 1)) - set(member.seen))
    assert not missing, f"{len(missing)} seqs skipped, from {missing[0]} to {missing[-1]}"
