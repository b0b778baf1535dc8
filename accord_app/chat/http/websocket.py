"""Starlette's (and so FastAPI's) WebSocket as the actor runtime's Transport.

The adapter lives with the web layer, not in the runtime: the runtime knows sockets only by
the Transport protocol, so it runs (and is tested) without a web framework at all. Served
with the fast WebSocket path (accord_app/web/fast_websocket.py), the connection itself is the
Transport instead, and `accept` hands that one over.
"""

import asyncio
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from accord_app.actors import TransportClosed
from accord_app.web.fast_websocket import DIRECT_TRANSPORT, FastWebSocket


class StarletteTransport:
    """A Starlette/FastAPI WebSocket (already accepted) as a Transport.

    An endpoint must not return while the socket is open, or Starlette closes it:

        transport = StarletteTransport(websocket)
        await rooms.get(room_id).join(transport, name)
        await transport.wait_closed()
    """

    def __init__(self, websocket: WebSocket, client: str = "local") -> None:
        self.websocket = websocket
        self.client = client  # who is at the other end, as the web layer tells it
        self._closed = asyncio.Event()
        self.receiving = False  # set once the runtime reads it: the actor took the socket
        self._aborted: asyncio.Future[TransportClosed] = asyncio.get_running_loop().create_future()

    async def send_text(self, data: str) -> None:
        await self.websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.websocket.send_bytes(data)

    async def receive(self) -> str | bytes:
        self.receiving = True
        receiving = asyncio.ensure_future(self.websocket.receive())
        waiting: set[asyncio.Future[Any]] = {receiving, self._aborted}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not receiving.done():
            receiving.cancel()
            raise self._aborted.result()
        message = receiving.result()
        if message["type"] == "websocket.disconnect":
            self._closed.set()
            raise TransportClosed(message.get("code", 1000), message.get("reason") or "")
        text: str | None = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)
        finally:
            self._closed.set()

    def abort(self, code: int, reason: str) -> None:
        # ASGI offers no way to reset a connection. Ending the endpoint (wait_closed returns)
        # makes uvicorn close it; the bytes already in its buffer still wait for the peer.
        if not self._aborted.done():
            self._aborted.set_result(TransportClosed(code, reason))
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def accept(websocket: WebSocket, client: str) -> StarletteTransport | FastWebSocket:
    """Complete the upgrade; the socket as a Transport for the runtime. On the fast path it
    outlives the endpoint, which returns at once; on the ASGI path the endpoint must wait
    (StarletteTransport.wait_closed)."""
    direct = websocket.scope.get("extensions", {}).get(DIRECT_TRANSPORT)
    await websocket.accept()
    if direct is None:
        return StarletteTransport(websocket, client=client)
    transport: FastWebSocket = direct["transport"]
    transport.client = client
    return transport
