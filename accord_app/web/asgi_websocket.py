"""uvicorn's own WebSocket protocol (the ASGI path, ACCORD_WS=asgi), with one change: a
request that is not a valid WebSocket upgrade (no Sec-WebSocket-Key, a version other than 13)
is refused in the API's JSON error shape, as on the fast path, instead of websockets' plain
text."""

from http import HTTPStatus

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from accord_app.web.fast_websocket import json_error


class AsgiWebSocket(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        refused = self.conn.accept(event)
        if refused.status_code == 101:
            super().handle_connect(event)  # accepts it again: a hash of the key, nothing more
            return
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
