"""Kill -9 under load, restart on the same data: nothing acked (or even seen) is lost.

The app runs as `python -m accord_app` in a subprocess. Clients send as fast as the server
takes their messages and record every ack and every message they receive; the server is
SIGKILLed mid-load and started again on the same data dir and port. An ack, and a broadcast,
leave only once the write is durable, so each of them must be in the history afterwards, with
the seqs still gap-free from 1, and a client resuming from its last seen seq gets the rest.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from accord_app.chat.sharding import Sharding
from accord_app.cluster.ports import free_port
from accord_app.lab.loadtest import LIFTED_LIMITS

if TYPE_CHECKING:
    from conftest import Wire

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1"
CLIENTS = ("ada", "bob", "cy")
IN_FLIGHT = 32  # unacked messages per client
LOAD_SECONDS = 0.8  # of load before the kill
START_TIMEOUT = 15.0
FIELDS = ("id", "seq", "timestamp", "username", "message")
# Every sharding mode on the fast path (the default), and the ASGI path in one: how a socket is
# written does not depend on which actor hosts the channel.
SERVERS = [*(f"{mode.value}-fast" for mode in Sharding), "channel-asgi"]


class AppProcess:
    """`python -m accord_app` on a fixed port and data dir; its output goes to a log file."""

    def __init__(self, data_dir: Path, port: int, mode: str, websocket: str) -> None:
        self.data_dir, self.port, self.mode, self.websocket = data_dir, port, mode, websocket
        self.url = f"http://{HOST}:{port}"
        self.log = data_dir.parent / f"server-{mode}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = (
            os.environ | LIFTED_LIMITS | {"ACCORD_SHARDING": self.mode, "ACCORD_WS": self.websocket}
        )
        command = [sys.executable, "-m", "accord_app", "--host", HOST, "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--data-dir", str(self.data_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=1.0, trust_env=False) as http:
            while True:
                assert self.process.poll() is None, f"the app exited: {self.log.read_text()}"
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/api").status_code == 200:
                        return
                assert time.monotonic() < deadline, f"no answer: {self.log.read_text()}"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(params=SERVERS)
def app_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppProcess]:
    mode, websocket = request.param.split("-")
    app = AppProcess(tmp_path / "data", free_port(), mode, websocket)
    try:
        yield app
    finally:
        app.stop()


def history(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    """Every message of the channel, oldest first, paged back with before=."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        response = http.get(f"{path}/messages", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        if not page:
            return list(reversed(rows))
        assert [row["seq"] for row in page] == sorted((row["seq"] for row in page), reverse=True)
        rows += page
        params["before"] = page[-1]["seq"]


async def test_acked_messages_survive_a_kill_under_load(
    app_process: AppProcess, wire: "type[Wire]"
) -> None:
    app = app_process
    app.start()
    with httpx.Client(base_url=app.url, timeout=10.0, trust_env=False) as http:
        server_id = http.post("/api/servers", json={"name": "Load"}).json()["id"]
        channel_id = http.post(
            f"/api/servers/{server_id}/channels", json={"name": "general"}
        ).json()["id"]
    path = f"/api/servers/{server_id}/channels/{channel_id}"

    def uri(name: str, **params: Any) -> str:
        return f"ws://{HOST}:{app.port}{path}/connect?{urlencode({'username': name, **params})}"

    acks: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
    joined = asyncio.Barrier(len(CLIENTS) + 1)

    async def client(name: str) -> None:
        window = asyncio.Semaphore(IN_FLIGHT)
        with contextlib.suppress(ConnectionClosed, OSError):
            async with wire.connect(uri(name)) as ws:
                assert (await wire.recv_json(ws))["type"] == "presence"
                await joined.wait()

                async def writer() -> None:
                    number = 0
                    while True:
                        await window.acquire()
                        await ws.send(f"{name} {number}")
                        number += 1

                writing = asyncio.create_task(writer())
                try:
                    async for data in ws:
                        frame = json.loads(data)
                        if frame["type"] == "ack":
                            acks[name].append({key: frame[key] for key in FIELDS})
                            window.release()
                        elif frame["type"] == "message":
                            seen[name].append({key: frame[key] for key in FIELDS})
                finally:
                    writing.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
                        await writing

    clients = asyncio.gather(*(client(name) for name in CLIENTS))
    async with asyncio.timeout(10):
        await joined.wait()
    await asyncio.sleep(LOAD_SECONDS)
    app.kill()
    async with asyncio.timeout(10):
        await clients  # every connection ends with the process
    all_acks = [ack for name in CLIENTS for ack in acks[name]]
    assert len(all_acks) >= 50, "too little load before the kill to prove anything"

    app.start()  # same data dir, same port
    with httpx.Client(base_url=app.url, timeout=10.0, trust_env=False) as http:
        rows = history(http, path)
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    by_seq = {row["seq"]: row for row in rows}
    for ack in all_acks:
        assert by_seq.get(ack["seq"]) == ack, f"acked but lost: {ack}"
    for name in CLIENTS:
        # A broadcast is as durable as an ack: whatever a member saw is stored.
        assert seen[name] == rows[: len(seen[name])], name
        # Each client's acked messages are stored in the order it sent them, none skipped.
        mine = [row["message"] for row in rows if row["username"] == name]
        assert mine[: len(acks[name])] == [f"{name} {n}" for n in range(len(acks[name]))]
        assert mine == [f"{name} {n}" for n in range(len(mine))]

    # A client resuming from the last seq it saw receives everything after it, then live.
    last_seen = seen["ada"][-1]["seq"] if seen["ada"] else 0
    async with wire.connect(uri("ada", after_seq=last_seen)) as ada:
        assert await wire.recv_json(ada) == {"type": "presence", "members": ["ada"]}
        replayed = await wire.recv_frames(ada, len(rows) - last_seen)
        assert [{key: f[key] for key in FIELDS} for f in replayed] == rows[last_seen:]
        assert {f["type"] for f in replayed} <= {"message"}
        assert await wire.recv_json(ada) == {
            "type": "resumed",
            "after_seq": last_seen,
            "last_seq": len(rows),
            "more": False,
        }
        ack, _ = await wire.send_and_confirm(ada, "after the restart")
        assert ack["seq"] == len(rows) + 1
