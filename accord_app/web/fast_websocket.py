"""The fast WebSocket path: a WebSocket protocol for uvicorn's `ws=` option, made for the runtime.

On the ASGI path (chat/http/websocket.py, the one chapters 05-06 teach) every frame is one
`websocket.send` message: one await, one write() system call, and every open socket keeps a
task waiting in the framework's call chain. With hundreds of members per broadcast that is
most of the server's time and memory (benchmarks/fanout.py measures both paths). Here:

- The handshake still goes through the ASGI app, so FastAPI routes it and refuses with the
  API's JSON errors before the upgrade, exactly as on the ASGI path. Once the endpoint has
  accepted, it takes this object from the scope (the DIRECT_TRANSPORT extension) as the
  socket's Transport and returns: no task waits per socket.
- websockets' ServerProtocol is the sans-I/O core: it parses frames and keeps the closing
  handshake's state. This class only moves bytes between it and the asyncio transport.
- It pushes what it receives to the runtime's callbacks (DirectTransport in actors/sockets.py)
  instead of being read, and takes frames to send without an await.
- Everything sent to a socket during one turn of the event loop leaves in one write(): a
  commit that releases forty frames for a member costs one system call, not forty.
- A text frame sent to every member of a broadcast is encoded once (FrameCache).

The road not taken: websockets' own server (`websockets.serve`, whose `broadcast()` also
encodes once) cannot serve the HTTP API on the same port: its `process_request` hook refuses
request bodies and closes after every response.

The parts of uvicorn this relies on are not public API (how it builds a `ws=` protocol, its
server_state.connections and shutdown()); pyproject.toml pins the range that the tests ran, and
tests/test_fast_websocket.py fails loudly if they change. Of websockets it uses only the public
sans-I/O API (state, close_exc, receive_eof, ...), with the major version capped.
"""

import asyncio
import json
import logging
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from accord_app.actors import Inbox, OnClose, OnFrame, TransportClosed

# The ASGI scope extension under which the endpoint finds this object as its Transport.
DIRECT_TRANSPORT = "accord.direct_transport"
# How long the peer has to answer our close frame before the connection is dropped.
CLOSE_TIMEOUT_SECONDS = 5.0
logger = logging.getLogger("uvicorn.error")
# ServerProtocol logs every connection at DEBUG: one shared logger, not one per socket.
protocol_logger = logging.getLogger("websockets.server")


class FrameCache:
    """The last text frame encoded, kept for the next socket. A broadcast hands the same str
    object to each member in a row (the output gate releases them in the order they were sent),
    so one entry is enough: the frame is encoded once, then reused for every member.
    Identity (`is`), not equality: comparing long texts would cost what encoding costs."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[str, bytes] = ("", b"")

    def text_frame(self, text: str) -> bytes:
        last = self._last  # one read: another thread's server may replace it meanwhile
        if last[0] is text:
            return last[1]
        data = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        self._last = (text, data)
        return data


frame_cache = FrameCache()


class FastWebSocket(asyncio.Protocol):
    """One WebSocket connection, from the upgrade request to the closed TCP connection.

    uvicorn creates it when an HTTP request asks to upgrade, with the keyword arguments below.
    It is also the connection's Transport for the actor runtime (send, close, abort) and a
    DirectTransport (listen, write_frame, writable, on_writable)."""

    __slots__ = (
        "_app_state",
        "_close_timer",
        "_closed_callback",
        "_config",
        "_connections",
        "_default_headers",
        "_fragments",
        "_handshake",
        "_inbox",
        "_loop",
        "_on_writable",
        "_paused",
        "_pending_response",
        "_ping_payload",
        "_ping_timer",
        "_reading_paused",
        "_reported",
        "_tasks",
        "_transport",
        "_unsent",
        "client",
        "conn",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._app_state = app_state
        self._connections = server_state.connections
        self._tasks = server_state.tasks
        self._default_headers = server_state.default_headers
        self._loop = _loop or asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.conn = ServerProtocol(max_size=config.ws_max_size, logger=protocol_logger)
        self.client = "local"  # who is at the other end, as the web layer tells it
        # The handshake: the upgrade request and the answer the app will accept or replace.
        self._handshake: tuple[Request, Response] | None = None
        self._pending_response: tuple[int, list[tuple[str, str]], bytes] | None = None
        # Received, on its way to the runtime (listen()): one turn at a time.
        self._inbox = Inbox(on_idle=self._read_again)
        self._on_writable: Callable[[], None] | None = None
        self._closed_callback: Callable[[], None] | None = None
        self._unsent: list[bytes] | None = None  # written at the end of this loop turn
        self._reported = False  # the runtime was told the socket closed
        self._reading_paused = False  # ws_max_queue messages wait for their turns
        self._paused = False  # the TCP write buffer is over its high-water mark
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None  # the ping in flight
        self._fragments: list[bytes] | None = None  # a fragmented message, its opcode first
        self._close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not derive from asyncio's classes.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._take_events()

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        self._take_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._stop_timers()
        self._paused = False
        self._received(self._how_it_closed())
        self._transport = None
        if self._closed_callback is not None:
            callback, self._closed_callback = self._closed_callback, None
            callback()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._on_writable is not None:
            self._on_writable()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close as its own WebSocket protocols do (1012, "service
        restart"), telling the runtime first, as they tell the app. The close frame leaves with
        what was queued before it, but the peer's answer is not awaited: uvicorn waits for every
        connection to end, and one silent client would hold the restart for the close timeout."""
        if self.conn.state is State.OPEN:
            self._received(TransportClosed(1012, "server shutting down"))
            self._send_close(1012, "server shutting down")
            self._flush()
            if self._transport is not None:
                self._transport.close()
        elif self._transport is not None and self.conn.state is State.CONNECTING:
            self._transport.close()

    # -- DirectTransport: what the runtime uses ------------------------------------------------

    def listen(self, on_frame: OnFrame, on_close: OnClose) -> None:
        """From now on, hand each received message to on_frame, and the close to on_close.
        While a turn that on_frame returned runs, the next frames wait (and reading stops)."""
        self._inbox.listen(on_frame, on_close)

    def stop_listening(self) -> None:
        self._inbox.stop_listening()

    @property
    def receiving(self) -> bool:
        """listen() was called: the runtime took the socket."""
        return self._inbox.listening

    @property
    def writable(self) -> bool:
        """False while the peer does not keep up: frames then wait in the runtime's outbox,
        where its slow-consumer rules see them."""
        return not self._paused

    def on_writable(self, callback: Callable[[], None] | None) -> None:
        self._on_writable = callback

    def write_frame(self, frame: str | bytes | TransportClosed) -> None:
        """Queue a frame (or the close) for this loop turn's single write."""
        if isinstance(frame, TransportClosed):
            self._reported = True  # the runtime closes it: it knows, and hears no close event
            self._send_close(frame.code, frame.reason)
            return
        if self.conn.state is not State.OPEN:
            return  # closing or closed: like a send to a peer that went away
        if isinstance(frame, str):
            self._queue(frame_cache.text_frame(frame))
        else:
            self._queue(Frame(Opcode.BINARY, frame).serialize(mask=False))

    # -- Transport: the runtime's awaitable interface ------------------------------------------

    async def send_text(self, data: str) -> None:
        self.write_frame(data)

    async def send_bytes(self, data: bytes) -> None:
        self.write_frame(data)

    async def receive(self) -> str | bytes:
        raise RuntimeError("FastWebSocket pushes frames to listen()'s callbacks: not read")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The web layer's close (a join that failed, say): the runtime, if it took the socket,
        hears it like a peer's, or its actor would keep a ghost member."""
        if self.conn.state is State.OPEN:
            self._received(TransportClosed(code, reason))
        self._send_close(code, reason)

    def abort(self, code: int, reason: str) -> None:
        self._received(TransportClosed(code, reason))
        self._unsent = None
        if self._transport is not None:
            self._transport.abort()

    # -- for the web layer ---------------------------------------------------------------------

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the TCP connection is gone (now, if it is)."""
        if self._transport is None:
            callback()
        else:
            self._closed_callback = callback

    # -- receiving -----------------------------------------------------------------------------

    def _take_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, Request):
                self._start_handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        # Pongs, the close echo, a failure's close frame. After a protocol error that ends
        # with b"": the connection closes, and connection_lost tells the runtime how.
        self._queue_protocol_output()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            if self._ping_payload is not None and bytes(frame.data) == self._ping_payload:
                self._ping_payload = None
                self._schedule_ping()
        elif frame.opcode is Opcode.CLOSE:
            close = Close.parse(bytes(frame.data))  # ServerProtocol checked it already
            self._received(TransportClosed(close.code, close.reason))
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY) and frame.fin:
            self._message(frame.opcode, bytes(frame.data))
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            self._fragment(frame)

    def _fragment(self, frame: Frame) -> None:
        # Rare from browsers; ServerProtocol checks the fragments' order and total size.
        if frame.opcode is not Opcode.CONT:
            self._fragments = [bytes([frame.opcode])]
        assert self._fragments is not None
        self._fragments.append(bytes(frame.data))
        if frame.fin:
            opcode, *parts = self._fragments
            self._fragments = None
            self._message(Opcode(opcode[0]), b"".join(parts))

    def _message(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.BINARY:
            self._received(data)
            return
        try:
            text = data.decode()
        except UnicodeDecodeError as error:
            # The sentence uvicorn's own protocols log, so that the app's log filter
            # (errors.QuietBadUtf8) keeps a flood of them to one line.
            logger.warning("Invalid UTF-8 sequence received from client.")
            self.conn.fail(1007, f"invalid UTF-8 at position {error.start}")
            self._queue_protocol_output()
            self._received(TransportClosed(1007, "invalid UTF-8"))
            return
        self._received(text)

    def _received(self, item: str | bytes | TransportClosed) -> None:
        """Hand a message or the close to the runtime, in order, one turn at a time."""
        if isinstance(item, TransportClosed):
            if self._reported:
                return
            self._reported = True
        self._inbox.push(item)
        # Back-pressure: past uvicorn's ws_max_queue (32) messages waiting for their turns,
        # as its own protocols do, stop reading until the actor has caught up. Not at the
        # first one: pausing and resuming costs two system calls, and turns are short.
        transport = self._transport
        full = len(self._inbox) >= self._config.ws_max_queue and not self._reading_paused
        if full and transport is not None and not transport.is_closing():
            self._reading_paused = True
            transport.pause_reading()

    def _how_it_closed(self) -> TransportClosed:
        """The close, from websockets' public close_exc: the peer's close frame, or ours after
        a protocol error, or 1006 (no close frame at all)."""
        self.conn.receive_eof()  # idempotent: the stream has ended, so the state is CLOSED
        if self.conn.state is not State.CLOSED:  # the handshake never finished
            return TransportClosed(1006, "")
        closed = self.conn.close_exc
        frame = closed.rcvd or closed.sent
        return (
            TransportClosed(1006, "")
            if frame is None
            else TransportClosed(frame.code, frame.reason)
        )

    def _read_again(self) -> None:
        transport = self._transport
        if self._reading_paused and transport is not None and not transport.is_closing():
            self._reading_paused = False
            transport.resume_reading()

    # -- sending -------------------------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        if self._unsent is None:
            self._unsent = [data]
            self._loop.call_soon(self._flush)
        else:
            self._unsent.append(data)

    def _queue_protocol_output(self) -> None:
        for data in self.conn.data_to_send():
            if data:
                self._queue(data)
            elif self._transport is not None:  # b"": the server closes the TCP connection
                self._flush()
                self._transport.close()

    def _flush(self) -> None:
        unsent, self._unsent = self._unsent, None
        if unsent and self._transport is not None and not self._transport.is_closing():
            self._transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))

    def _send_close(self, code: int, reason: str) -> None:
        if self.conn.state is not State.OPEN:
            return
        self.conn.send_close(code, reason)
        self._queue_protocol_output()
        self._stop_timers()
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_SECONDS, self._drop)
        self._read_again()  # to hear the peer's answer to our close

    def _drop(self) -> None:
        self._close_timer = None
        if self._transport is not None:
            self._transport.abort()

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self._config.ws_ping_interval
        if interval and self.conn.state is State.OPEN:
            self._ping_timer = self._loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.conn.state is not State.OPEN:
            return
        self._ping_payload = os.urandom(4)
        self.conn.send_ping(self._ping_payload)
        self._queue_protocol_output()
        timeout = self._config.ws_ping_timeout
        if timeout:
            self._ping_timer = self._loop.call_later(timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        self._ping_timer = None
        if self._ping_payload is None or self.conn.state is not State.OPEN:
            return
        self._received(TransportClosed(1011, "keepalive ping timeout"))
        self.conn.fail(1011, "keepalive ping timeout")
        self._queue_protocol_output()
        self._flush()
        if self._transport is not None:
            self._transport.close()

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._close_timer = None

    # -- the handshake, through the ASGI app ---------------------------------------------------

    def _start_handshake(self, request: Request) -> None:
        response = self.conn.accept(request)
        if response.status_code != 101:  # not a valid WebSocket upgrade: websockets says why
            reason = (response.body or b"").decode("utf-8", "replace").strip()
            self._respond(*json_error(response.status_code, reason, "invalid_websocket_handshake"))
            return
        self._handshake = (request, response)
        task = self._loop.create_task(self._run_app(self._scope(request)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _scope(self, request: Request) -> dict[str, Any]:
        assert self._transport is not None
        raw_path, _, query = request.path.partition("?")
        root = self._config.root_path
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if self._transport.get_extra_info("sslcontext") else "ws",
            "server": _address(self._transport.get_extra_info("sockname")),
            "client": _address(self._transport.get_extra_info("peername")),
            "root_path": root,
            "path": root + unquote(raw_path),
            "raw_path": (root + raw_path).encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": [
                (name.lower().encode("ascii"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": [
                token.strip()
                for header in request.headers.get_all("Sec-WebSocket-Protocol")
                for token in header.split(",")
            ],
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}, DIRECT_TRANSPORT: {"transport": self}},
        }

    async def _run_app(self, scope: dict[str, Any]) -> None:
        app: Any = self._config.loaded_app
        connected = False

        async def receive() -> dict[str, Any]:
            nonlocal connected
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            raise RuntimeError(
                "on the fast WebSocket path the endpoint takes the socket as a Transport from"
                f" scope['extensions'][{DIRECT_TRANSPORT!r}]; it cannot receive through ASGI"
            )

        try:
            await app(scope, receive, self._asgi_send)
        except Exception:
            logger.exception("Exception in ASGI application")
            self._refuse(500, "Something went wrong on the server.", "internal_error")
            return
        if self._handshake is not None:
            logger.error("the WebSocket endpoint returned without accepting or refusing")
            self._refuse(500, "Something went wrong on the server.", "internal_error")
        elif self.conn.state is State.OPEN and not self.receiving:
            # Accepted, then nobody took the socket: nothing would ever read it.
            self._send_close(1011, "the server did not take the connection")

    async def _asgi_send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept" and self._handshake is not None:
            _, response = self._handshake
            self._handshake = None
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in [*self._default_headers, *message.get("headers", [])]
            ]
            if message.get("subprotocol"):
                headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            del response.headers["Date"]  # uvicorn's default headers bring their own
            response.headers.update(headers)
            self.conn.send_response(response)
            self._queue_protocol_output()
            self._schedule_ping()
        elif kind == "websocket.close" and self._handshake is not None:
            self._refuse(403, "The server refused this WebSocket.", "websocket_refused")
        elif kind == "websocket.close":
            await self.close(message.get("code", 1000), message.get("reason") or "")
        elif kind == "websocket.http.response.start" and self._handshake is not None:
            self._pending_response = (message["status"], _decoded(message), b"")
        elif kind == "websocket.http.response.body" and self._pending_response is not None:
            status, headers, body = self._pending_response
            self._pending_response = (status, headers, body + message.get("body", b""))
            if not message.get("more_body", False):
                self._pending_response = None
                self._respond(status, headers, body + message.get("body", b""))
        else:
            raise RuntimeError(
                f"the fast WebSocket path cannot send {kind!r} here: after the handshake, the"
                " endpoint sends through the Transport in"
                f" scope['extensions'][{DIRECT_TRANSPORT!r}]"
            )

    def _refuse(self, status: int, message: str, code: str) -> None:
        """An error in the API's JSON shape instead of the upgrade."""
        if self._handshake is not None:
            self._respond(*json_error(status, message, code))

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """An HTTP answer instead of the upgrade (the API's JSON errors come this way)."""
        self._handshake = None
        response_headers = Headers(headers)
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:  # a status the standard library does not name
            phrase = ""
        self.conn.send_response(Response(status, phrase, response_headers, body))
        self._queue_protocol_output()  # ends with b"": the connection closes


def json_error(status: int, message: str, code: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """An answer in the API's error shape (accord_app/errors.py), for _respond()."""
    body = json.dumps({"message": message, "code": code}).encode()
    return status, [("Content-Type", "application/json")], body


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) else None


def _decoded(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in message["headers"]]
