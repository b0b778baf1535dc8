"""One end-to-end check: a FastAPI app behind a real uvicorn on 127.0.0.1, the websockets
client library, and an actor that hibernates between messages."""

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

import httpx
from fastapi import FastAPI, WebSocket
from websockets.sync.client import connect

from accord_app.actors import (
    Actor,
    ActorContext,
    HibernatableWebSocket,
    Namespace,
    Runtime,
    Transport,
)
from accord_app.chat.http.websocket import StarletteTransport
from accord_app.lab.server import BackgroundServer


class Echo(Actor):
    built: ClassVar[list[str]] = []
    left: ClassVar[list[str]] = []
    left_event: ClassVar[threading.Event] = threading.Event()

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        Echo.built.append(ctx.id.hex)

    async def join(self, transport: Transport, name: str) -> None:
        self.ctx.accept_websocket(transport).serialize_attachment(name)

    async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
        seen = (self.storage.get("seen") or 0) + 1
        self.storage.put("seen", seen)
        ws.send(f"{ws.deserialize_attachment()} #{seen}: {data!s}")

    async def websocket_close(self, ws: HibernatableWebSocket, code: int, reason: str) -> None:
        Echo.left.append(ws.deserialize_attachment())
        Echo.left_event.set()


def make_app(data_dir: Path) -> FastAPI:
    echoes: list[Namespace[Echo]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(data_dir, idle_timeout=0.05)
        echoes.append(runtime.namespace("echo", Echo))
        yield
        await runtime.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/awake")
    async def awake() -> int:  # read on the server's loop, where the runtime lives
        return echoes[0].live_count

    @app.websocket("/echo/{name}")
    async def echo(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        transport = StarletteTransport(websocket)
        await echoes[0].get(echoes[0].id_from_name("one")).join(transport, name)
        await transport.wait_closed()  # the runtime owns the socket; keep the handler alive

    return app


def wait_until_asleep(server: BackgroundServer) -> None:
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/awake", trust_env=False).json() != 0:
        assert time.monotonic() < deadline, "the actor never hibernated"
        time.sleep(0.02)


def test_real_websocket_survives_hibernation_and_runs_close(tmp_path: Path) -> None:
    Echo.built.clear()
    Echo.left.clear()
    Echo.left_event.clear()
    with (
        BackgroundServer(make_app(tmp_path)) as server,
        connect(f"{server.ws_url}/echo/ada", open_timeout=5) as client,
    ):
        client.send("hi")
        assert client.recv(timeout=5) == "ada #1: hi"
        wait_until_asleep(server)  # the actor left memory; the socket stays open
        client.send("again")
        assert client.recv(timeout=5) == "ada #2: again"
        assert len(Echo.built) == 2, "woken again: a new instance, its storage kept"
        wait_until_asleep(server)
        client.close()
        assert Echo.left_event.wait(5)
    assert Echo.left == ["ada"]
