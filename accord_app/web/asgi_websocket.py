"""The ASGI path's WebSocket protocol: uvicorn's own, with every frame paid for.

uvicorn (0.54, `ws="auto"`) serves WebSockets with WebSocketsSansIOProtocol, over websockets'
sans-I/O ServerProtocol, which answers pings and collects fragments before the app hears of
them: no ASGI event says a ping came, so no handler can charge for it. uvicorn's `ws=` option,
which takes a protocol class, is the hook: this subclass changes only what happens between a
read and the events uvicorn acts on.

- Each read is parsed in slices (PARSE_SLICE, chat/frame_guard.py), and parsing stops while
  messages wait for the app (uvicorn's own rule to pause reading, applied to the read in hand
  too) and once the connection is closing: a read full of tiny frames does not become
  thousands of queued messages.
- Each parsed batch goes through the connection's FrameGuard (chat/frame_guard.py): pings,
  unasked pongs and fragments pay from the connection's budget; refused pings get no pong;
  the guard's close reaches the app as a websocket.disconnect with its code, as a protocol
  error does.
- A request that is not a valid WebSocket upgrade (no Sec-WebSocket-Key, a version other than
  13) is refused in the API's JSON error shape, as on the fast path, instead of websockets'
  plain text.

The methods overridden (data_received, receive, handle_events, handle_ping, handle_connect),
the ones called (handle_*, handle_parser_exception) and read_paused are not uvicorn's public
API: pyproject.toml pins the range tested, and tests/test_frame_floods.py fails loudly if they
change.
"""

from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from accord_app.chat.frame_guard import FRAME_GUARD, PARSE_SLICE, FrameGuard
from accord_app.web.fast_websocket import json_error


class AsgiWebSocket(WebSocketsSansIOProtocol):
    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any], **kw: Any
    ) -> None:
        super().__init__(config, server_state, app_state, **kw)
        self.frame_guard = FrameGuard(self._fail)
        # The last read, parsed up to _parsed_to: the rest waits while the app has messages.
        self._unparsed = b""
        self._parsed_to = 0

    def data_received(self, data: bytes) -> None:
        self._unparsed = self._unparsed[self._parsed_to :] + data
        self._parsed_to = 0
        self._parse()

    def _parse(self) -> None:
        while self._parsed_to < len(self._unparsed) and not self.read_paused:
            if self.transport.is_closing():
                self._unparsed, self._parsed_to = b"", 0  # what follows is not for us
                return
            start = self._parsed_to
            self._parsed_to = start + PARSE_SLICE
            self.conn.receive_data(self._unparsed[start : self._parsed_to])
            if self.conn.parser_exc is not None:
                self.handle_parser_exception()
                return
            self.handle_events()
        if self._parsed_to >= len(self._unparsed):
            self._unparsed, self._parsed_to = b"", 0

    async def receive(self) -> Any:
        message = await super().receive()  # reading resumes once the app has taken them all
        if not self.read_paused:
            self._parse()  # what the last read left first: it came before anything new
        return message

    def handle_connect(self, event: Request) -> None:
        refused = self.conn.accept(event)
        if refused.status_code != 101:
            self._refuse(refused)
            return
        super().handle_connect(event)  # accepts it again: a hash of the key, nothing more
        scope: Any = getattr(self, "scope", None)  # set only for an upgrade it accepts
        if scope is not None:  # the app's task has not started yet: it sees the guard
            scope["extensions"][FRAME_GUARD] = {"guard": self.frame_guard}

    def handle_events(self) -> None:
        screened = self.frame_guard.screen(
            self.conn.events_received(),
            self.conn.data_to_send(),
            writable=self.writable.is_set(),
            closing=self.close_sent,
            awaited_pong=self.pending_ping_payload,
        )
        if screened.writes:  # the pongs paid for, the close echo: before what the events do
            self.transport.write(b"".join(screened.writes))
        for event in screened.events:
            if isinstance(event, Request):
                self.handle_connect(event)
            elif isinstance(event, Frame):
                self._handle_frame(event)
        if screened.close is not None:
            self._fail(*screened.close)

    def _handle_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CONT:
            self.handle_cont(frame)
        elif frame.opcode is Opcode.TEXT:
            self.handle_text(frame)
        elif frame.opcode is Opcode.BINARY:
            self.handle_bytes(frame)
        elif frame.opcode is Opcode.PONG:
            self.handle_pong(frame)
        elif frame.opcode is Opcode.CLOSE:
            self.handle_close(frame)
        # A ping's pong, if paid for, left with the writes above.

    def handle_ping(self) -> None:
        """uvicorn's would write whatever the parser queued, refused pongs included."""

    def _fail(self, code: int, reason: str) -> None:
        """Close for a frame the guard refused, at once, as uvicorn does for a protocol error:
        the close frame, the app told (websocket.disconnect with this code), TCP closed."""
        if self.close_sent and not self.transport.is_closing():
            self.transport.close()  # our close went first; the peer floods instead of answering
        if self.close_sent or self.conn.state is not State.OPEN:
            return
        self.conn.fail(code, reason)
        self.handle_parser_exception()

    def _refuse(self, refused: Response) -> None:
        """A bad upgrade, answered in the API's JSON error shape, then closed."""
        reason = (refused.body or b"").decode("utf-8", "replace").strip()
        status, headers, body = json_error(
            refused.status_code, reason, "invalid_websocket_handshake"
        )
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        phrase = HTTPStatus(status).phrase
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.conn.send_response(Response(status, phrase, Headers(headers), body))
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
