"""One end-to-end check: a FastAPI app behind a real uvicorn on 127.0.0.1, the websockets
client library, and an actor that hibernates between messages."""

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

from fastapi import FastAPI, WebSocket
from websockets.sync.client import connect

from accord_app.actors import (
    Actor,
    HibernatableWebSocket,
    Namespace,
    Runtime,
    StarletteTransport,
    Transport,
)
from accord_app.lab.server import BackgroundServer


class Echo(Actor):
    left: ClassVar[list[str]] = []
    left_event: ClassVar[threading.Event] = threading.Event()

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

    @app.websocket("/echo/{name}")
    async def echo(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        transport = StarletteTransport(websocket)
        await echoes[0].get(echoes[0].id_from_name("one")).join(transport, name)
        await transport.wait_closed()  # the runtime owns the socket; keep the handler alive

    return app


def test_real_websocket_survives_hibernation_and_runs_close(tmp_path: Path) -> None:
    with (
        BackgroundServer(make_app(tmp_path)) as server,
        connect(f"{server.ws_url}/echo/ada", open_timeout=5) as client,
    ):
        client.send("hi")
        assert client.recv(timeout=5) == "ada #1: hi"
        time.sleep(0.2)  # the actor hibernates; the socket stays open
        client.send("again")
        assert client.recv(timeout=5) == "ada #2: again"
        time.sleep(0.2)
        client.close()
        assert Echo.left_event.wait(5)
    assert Echo.left == ["ada"]
