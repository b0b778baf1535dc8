"""Hibernatable WebSockets: sockets the runtime owns, so they outlive the actor instance.

The runtime, not the actor, runs each socket's receive loop. While the actor hibernates the loop
keeps waiting for frames (and answers the auto-response itself); a frame or a close wakes the
actor by queueing an event. Per-socket state that must survive lives in the attachment.

Sockets are reached through the small `Transport` protocol: the web layer adapts Starlette's
(and so FastAPI's) WebSocket to it (accord_app/chat/http/websocket.py), and MemoryTransport below
plays both ends in memory for tests and notebooks. A `DirectTransport` goes further: it calls
the runtime with what it receives instead of being read by a task, and takes frames without an
await (the fast path, accord_app/web/fast_websocket.py; MemoryDirectTransport in memory). The
runtime imports nothing of the web. In Cloudflare the sockets are held outside the isolate
entirely; here they live in the same process as the runtime.
"""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from accord_app.actors.errors import AttachmentTooLarge
from accord_app.actors.gates import InvalidTransition

MAX_ATTACHMENT_BYTES = 16 * 1024
MAX_TAGS = 10
# Frames waiting for one socket, in bytes (characters, for text). A client that stops reading
# lets them pile up. Past MAX_OUTBOX_BYTES, the socket must show progress (a frame sent) within
# SEND_STALL_SECONDS or it is disconnected; past HARD_OUTBOX_BYTES, at once. A healthy client
# may get a big burst when a commit releases many frames; a stuck one costs bounded memory and
# never slows the other members.
MAX_OUTBOX_BYTES = 2 * 1024 * 1024
HARD_OUTBOX_BYTES = 8 * MAX_OUTBOX_BYTES
SEND_STALL_SECONDS = 1.0
# The close code reported to the actor for such a client (RFC 6455: "policy violation").
CLOSE_TOO_SLOW = 1008
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

    def abort(self, code: int, reason: str) -> None:
        """Drop the connection without a closing handshake: the peer may not be reading.
        A pending or later receive() raises TransportClosed(code, reason)."""
        ...


@runtime_checkable
class DirectTransport(Transport, Protocol):
    """A Transport the runtime drives by callbacks, with no task per socket: it hands over each
    message it receives (and holds the next until the turn that one started has ended), and
    takes frames to send without an await. The fast WebSocket path is one
    (accord_app/web/fast_websocket.py); Transport alone is enough for the runtime to work."""

    def listen(
        self,
        on_frame: Callable[[str | bytes], "asyncio.Future[None] | None"],
        on_close: Callable[[TransportClosed], None],
    ) -> None:
        """From now on, hand each message to on_frame (the next one waits until the future it
        returns is done) and the close to on_close: an Inbox does it."""
        ...

    def stop_listening(self) -> None: ...

    @property
    def writable(self) -> bool:
        """False while the peer is not keeping up: frames then wait in the Outbox."""
        ...

    def on_writable(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` when writable turns True again."""
        ...

    def write_frame(self, frame: "str | bytes | TransportClosed") -> None: ...


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

    def abort(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self._to_server.put_nowait(TransportClosed(code, reason))
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


OnFrame = Callable[[str | bytes], "asyncio.Future[None] | None"]
OnClose = Callable[[TransportClosed], None]


class Inbox:
    """What a DirectTransport received, on its way to the runtime's callbacks, in order: each
    message once the turn that the one before started has ended, then the close. Bookkeeping
    only, like the Outbox; once enough wait here the transport should stop reading, so a client
    that sends faster than its actor works is slowed down (back-pressure)."""

    __slots__ = ("_on_close", "_on_frame", "_turn", "_unread", "on_idle")

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self._unread: deque[str | bytes | TransportClosed] | None = None  # None while empty
        self._turn: asyncio.Future[None] | None = None  # the last message's turn, until it ends
        self._on_frame: OnFrame | None = None
        self._on_close: OnClose | None = None
        self.on_idle = on_idle  # called once nothing waits any more: read again

    @property
    def listening(self) -> bool:
        return self._on_frame is not None

    def __len__(self) -> int:
        """Messages waiting for their turn."""
        return len(self._unread) if self._unread else 0

    def listen(self, on_frame: OnFrame, on_close: OnClose) -> None:
        self._on_frame, self._on_close = on_frame, on_close
        self._hand_over()

    def stop_listening(self) -> None:
        self._on_frame = self._on_close = None

    def push(self, item: str | bytes | TransportClosed) -> None:
        if self._unread is None and self._turn is None and self._on_frame is not None:
            self._give(item)  # the common case: nothing before it
            return
        if self._unread is None:
            self._unread = deque()
        self._unread.append(item)

    def _give(self, item: str | bytes | TransportClosed) -> None:
        if isinstance(item, TransportClosed):
            if self._on_close is not None:
                self._on_close(item)
            return
        assert self._on_frame is not None
        turn = self._on_frame(item)
        if turn is not None and not turn.done():
            self._turn = turn
            turn.add_done_callback(self._turn_ended)

    def _turn_ended(self, _: "asyncio.Future[None]") -> None:
        self._turn = None
        self._hand_over()

    def _hand_over(self) -> None:
        while self._unread and self._turn is None and self._on_frame is not None:
            self._give(self._unread.popleft())
        if self._unread is not None and not self._unread:
            self._unread = None
            if self.on_idle is not None:
                self.on_idle()


class MemoryDirectTransport(MemoryTransport):
    """MemoryTransport as a DirectTransport: the runtime is called with each message the client
    sends, one turn at a time, and frames are taken at once while `writable`. A test plays a
    peer whose buffer is full with `writable = False`, and drains it with `client_drained()`."""

    def __init__(self) -> None:
        super().__init__()
        self.writable = True
        self.inbox = Inbox()
        self._on_writable: Callable[[], None] | None = None

    def listen(self, on_frame: OnFrame, on_close: OnClose) -> None:
        self.inbox.listen(on_frame, on_close)

    def stop_listening(self) -> None:
        self.inbox.stop_listening()

    def on_writable(self, callback: Callable[[], None] | None) -> None:
        self._on_writable = callback

    def write_frame(self, frame: str | bytes | TransportClosed) -> None:
        if isinstance(frame, TransportClosed):
            self.close_code = frame.code if self.close_code is None else self.close_code
        self._to_client.put_nowait(frame)

    def abort(self, code: int, reason: str) -> None:
        super().abort(code, reason)
        self.inbox.push(TransportClosed(code, reason))

    def client_send(self, data: str | bytes) -> None:
        self.inbox.push(data)

    def client_close(self, code: int = 1000, reason: str = "") -> None:
        self.inbox.push(TransportClosed(code, reason))

    def client_drained(self) -> None:
        """The peer read what it had: frames may come again."""
        self.writable = True
        if self._on_writable is not None:
            self._on_writable()


class Outbox:
    """The frames released for one socket, in order, until the transport takes them, and the
    verdict on a peer that stops reading (the limits above). Bookkeeping only, like the gates:
    HibernatableWebSocket does the sending and the timing. A cut-off is for good: frames after
    a gap would be worse than none (the client resumes where it stopped)."""

    __slots__ = ("_frames", "cut_off", "queued_bytes", "sent")

    def __init__(self) -> None:
        # None while empty: an empty deque still holds a 760-byte block, and sockets outlive
        # their actors' instances.
        self._frames: deque[str | bytes | TransportClosed] | None = None
        self.queued_bytes = 0  # characters, for text
        self.sent = 0  # frames taken by the transport: the measure of progress
        self.cut_off = False

    def __len__(self) -> int:
        return len(self._frames) if self._frames else 0

    @property
    def backlogged(self) -> bool:
        """Over MAX_OUTBOX_BYTES: the peer must show progress, or `stalled` cuts it off."""
        return self.queued_bytes > MAX_OUTBOX_BYTES

    def push(self, frame: str | bytes | TransportClosed) -> bool:
        """Queue a released frame (or the close). False: it took the queue past
        HARD_OUTBOX_BYTES, so the peer is cut off and everything queued is dropped."""
        if self.cut_off:
            raise InvalidTransition("Outbox.push() after the cut-off: nothing more is sent")
        if not isinstance(frame, TransportClosed):
            self.queued_bytes += len(frame)
            if self.queued_bytes > HARD_OUTBOX_BYTES:
                self._cut()
                return False
        if self._frames is None:
            self._frames = deque()
        self._frames.append(frame)
        return True

    def pop(self) -> str | bytes | TransportClosed | None:
        """The next frame for the transport (None: nothing waits). It stops counting now."""
        if not self._frames:
            return None
        frame = self._frames.popleft()
        if not self._frames:
            self._frames = None
        if not isinstance(frame, TransportClosed):
            self.queued_bytes -= len(frame)
        return frame

    def frame_sent(self) -> None:
        self.sent += 1

    def stalled(self, sent_before: int) -> bool:
        """A look at the peer, SEND_STALL_SECONDS after `sent` was `sent_before`. True: still
        backlogged and no frame taken since, so it is cut off."""
        if self.backlogged and self.sent == sent_before:
            self._cut()
            return True
        return False

    def _cut(self) -> None:
        self.cut_off = True
        self._frames = None
        self.queued_bytes = 0


class HibernatableWebSocket:
    """A socket accepted by an actor. `send` and `close` go through the actor's output gate:
    a frame leaves only once the writes made before it are durable."""

    __slots__ = (
        "_attachment",
        "_direct",
        "_on_send",
        "_outbox",
        "_pump",
        "_watchdog",
        "closing",
        "receiver",
        "tags",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        tags: Sequence[str],
        on_send: Callable[["HibernatableWebSocket", str | bytes | TransportClosed], None],
    ) -> None:
        """`on_send(ws, frame)` hands each frame (or the close) to the actor's output gate,
        which calls `deliver(frame)` once the writes before it are durable."""
        if len(tags) > MAX_TAGS or not all(isinstance(tag, str) for tag in tags):
            raise ValueError(f"a WebSocket takes at most {MAX_TAGS} tags, all strings")
        self.transport = transport
        self.tags = tuple(tags)
        self.closing = False  # the actor closed it; its receive loop ends without an event
        self.receiver: asyncio.Task[None] | None = None
        self._on_send = on_send
        self._attachment: str | None = None
        self._outbox = Outbox()
        # Frames go straight to a DirectTransport; to any other, a task sends them (the pump).
        self._direct = transport if isinstance(transport, DirectTransport) else None
        self._pump: asyncio.Task[None] | None = None  # sends the outbox while it has frames
        self._watchdog: asyncio.TimerHandle | None = None  # looks at a backlogged peer's progress

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
            self._on_send(self, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the server side (after the frames sent before). No close event follows."""
        if not self.closing:
            self.closing = True
            self._on_send(self, TransportClosed(code, reason))

    def deliver(self, frame: str | bytes | TransportClosed) -> None:
        """Hand a released frame to the transport, keeping the order frames were sent in."""
        if self._outbox.cut_off:
            return  # for good (see Outbox)
        direct = self._direct
        if direct is not None and not self._outbox and direct.writable:
            direct.write_frame(frame)  # the common case: no queue, no task, no await
            self._outbox.frame_sent()
            return
        if not self._outbox.push(frame):
            self._drop_slow_peer()
            return
        loop = asyncio.get_running_loop()
        if direct is not None:
            direct.on_writable(self._write_outbox)
        elif self._pump is None:
            self._pump = loop.create_task(self._send_outbox())
        if self._outbox.backlogged and self._watchdog is None:
            self._watchdog = loop.call_later(
                SEND_STALL_SECONDS, self._check_progress, self._outbox.sent
            )

    def _check_progress(self, sent_before: int) -> None:
        self._watchdog = None
        if self._outbox.stalled(sent_before):
            self._drop_slow_peer()
        elif self._outbox.backlogged:  # slow but moving: look again later
            self._watchdog = asyncio.get_running_loop().call_later(
                SEND_STALL_SECONDS, self._check_progress, self._outbox.sent
            )

    def _drop_slow_peer(self) -> None:
        """The outbox cut the peer off: stop sending and drop the connection. Its receive loop
        then ends like any close, so the actor's close handler runs."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if self._direct is not None:
            self._direct.on_writable(None)
        self.transport.abort(CLOSE_TOO_SLOW, "send queue full: the client is not reading")

    def _write_outbox(self) -> None:
        """The DirectTransport can take frames again: hand it what waited."""
        assert self._direct is not None
        while self._direct.writable and (frame := self._outbox.pop()) is not None:
            self._direct.write_frame(frame)
            self._outbox.frame_sent()

    async def _send_outbox(self) -> None:
        try:
            while (frame := self._outbox.pop()) is not None:
                # A peer that went away makes sends fail; its receive loop reports the close.
                with contextlib.suppress(Exception):
                    if isinstance(frame, TransportClosed):
                        await self.transport.close(frame.code, frame.reason)
                        if self.receiver is not None:  # nothing more to read from it
                            self.receiver.cancel()
                    elif isinstance(frame, str):
                        await self.transport.send_text(frame)
                    else:
                        await self.transport.send_bytes(frame)
                self._outbox.frame_sent()
        finally:
            self._pump = None

    def __repr__(self) -> str:
        return f"<HibernatableWebSocket tags={list(self.tags)}>"
