"""`X-Accord-Worker: <n>` on every answer of a cluster worker, so a client can see where a
channel lives (tests, the scaling chapter, curl -i)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-accord-worker"
# The messages that start an answer: an HTTP response, a WebSocket accepted or refused.
_ANSWER_STARTS = {"http.response.start", "websocket.accept", "websocket.http.response.start"}


class WorkerHeader:
    """Pure ASGI middleware: adds the header to HTTP responses and WebSocket handshakes alike
    (Starlette's BaseHTTPMiddleware sees only HTTP)."""

    def __init__(self, app: ASGIApp, worker: int) -> None:
        self.app = app
        self.value = str(worker).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] in _ANSWER_STARTS:
                headers = [*message.get("headers", []), (HEADER, self.value)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)
