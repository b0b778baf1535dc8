"""Hibernatable WebSockets: sockets the runtime owns, so they outlive the actor instance.

The runtime, not the actor, runs each socket's receive loop. While the actor hibernates the loop
keeps waiting for frames (and answers the auto-response itself); a frame or a close wakes the
actor by queueing an event. Per-socket state that must survive lives in the attachment.

Sockets are reached through the small `Transport` protocol, with an adapter for Starlette's (and
so FastAPI's) WebSocket and an in-memory one for tests and notebooks. In Cloudflare the sockets
are held outside the isolate entirely; here they live in the same process as the runtime.
"""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketState

from accord_app.actors.errors import AttachmentTooLarge

MAX_ATTACHMENT_BYTES = 16 * 1024
MAX_TAGS = 10
# Sent when a socket's actor cannot take more events (RFC 6455: "Try Again Later").
CLOSE_TRY_AGAIN_LATER = 1013


class TransportClosed(Exception):
    """The peer closed the socket (raised by Transport.receive)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code} {reason!r}")
        self.code = code
        self.reason = reason


class Transport(Protocol):
    """What the runtime needs from a WebSocket connection."""

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def receive(self) -> str | bytes:
        """The next message; raises TransportClosed once the peer has closed."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class StarletteTransport:
    """A Starlette/FastAPI WebSocket (already accepted) as a Transport.

    An endpoint must not return while the socket is open, or Starlette closes it:

        transport = StarletteTransport(websocket)
        await rooms.get(room_id).join(transport, name)
        await transport.wait_closed()
    """

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._closed = asyncio.Event()

    async def send_text(self, data: str) -> None:
        await self.websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.websocket.send_bytes(data)

    async def receive(self) -> str | bytes:
        message = await self.websocket.receive()
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

    async def wait_closed(self) -> None:
        await self._closed.wait()


class MemoryTransport:
    """Both ends of a WebSocket in memory: the runtime uses the Transport methods, a test plays
    the client with the `client_*` ones."""

    def __init__(self) -> None:
        self._to_server: asyncio.Queue[str | bytes | TransportClosed] = asyncio.Queue()
        self._to_client: asyncio.Queue[str | bytes | TransportClosed] = asyncio.Queue()
        self.close_code: int | None = None

    async def send_text(self, data: str) -> None:
        self._to_client.put_nowait(data)

    async def send_bytes(self, data: bytes) -> None:
        self._to_client.put_nowait(data)

    async def receive(self) -> str | bytes:
        item = await self._to_server.get()
        if isinstance(item, TransportClosed):
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code = code
            self._to_client.put_nowait(TransportClosed(code, reason))

    def client_send(self, data: str | bytes) -> None:
        self._to_server.put_nowait(data)

    def client_close(self, code: int = 1000, reason: str = "") -> None:
        self._to_server.put_nowait(TransportClosed(code, reason))

    async def client_receive(self) -> str | bytes:
        """The next frame the server sent; raises TransportClosed once it closed."""
        item = await self._to_client.get()
        if isinstance(item, TransportClosed):
            raise item
        return item


class HibernatableWebSocket:
    """A socket accepted by an actor. `send` and `close` go through the actor's output gate:
    a frame leaves only once the writes made before it are durable."""

    __slots__ = (
        "_attachment",
        "_gate",
        "_outbox",
        "_pump",
        "closing",
        "receiver",
        "tags",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        tags: Sequence[str],
        gate: Callable[["HibernatableWebSocket", str | bytes | TransportClosed], None],
    ) -> None:
        if len(tags) > MAX_TAGS or not all(isinstance(tag, str) for tag in tags):
            raise ValueError(f"a WebSocket takes at most {MAX_TAGS} tags, all strings")
        self.transport = transport
        self.tags = tuple(tags)
        self.closing = False  # the actor closed it; its receive loop ends without an event
        self.receiver: asyncio.Task[None] | None = None
        self._gate = gate
        self._attachment: str | None = None
        self._outbox: deque[str | bytes | TransportClosed] = deque()
        self._pump: asyncio.Task[None] | None = None

    def serialize_attachment(self, value: Any) -> None:
        """Keep a JSON-serialisable value with the socket (≤ 16 KiB); it survives hibernation."""
        encoded = json.dumps(value, separators=(",", ":"))
        if len(encoded.encode()) > MAX_ATTACHMENT_BYTES:
            raise AttachmentTooLarge(
                f"a WebSocket attachment is at most {MAX_ATTACHMENT_BYTES} bytes of JSON,"
                f" this one is {len(encoded.encode())}: keep the rest in storage"
            )
        self._attachment = encoded

    def deserialize_attachment(self) -> Any:
        return None if self._attachment is None else json.loads(self._attachment)

    def send(self, data: str | bytes) -> None:
        """Queue a frame; it is sent once the writes before it are durable, in order."""
        if not self.closing:
            self._gate(self, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the server side (after the frames sent before). No close event follows."""
        if not self.closing:
            self.closing = True
            self._gate(self, TransportClosed(code, reason))

    def deliver(self, frame: str | bytes | TransportClosed) -> None:
        """Hand a released frame to the transport, keeping the order frames were sent in."""
        self._outbox.append(frame)
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._send_outbox())

    async def _send_outbox(self) -> None:
        try:
            while self._outbox:
                frame = self._outbox.popleft()
                # A peer that went away makes sends fail; its receive loop reports the close.
                with contextlib.suppress(Exception):
                    if isinstance(frame, TransportClosed):
                        await self.transport.close(frame.code, frame.reason)
                    elif isinstance(frame, str):
                        await self.transport.send_text(frame)
                    else:
                        await self.transport.send_bytes(frame)
        finally:
            self._pump = None

    def __repr__(self) -> str:
        return f"<HibernatableWebSocket tags={list(self.tags)}>"
