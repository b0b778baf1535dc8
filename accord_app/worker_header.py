"""The headers between a cluster worker and its router: `X-Accord-Worker: <n>` on every answer,
so a client can see where a channel lives (tests, the scaling chapter, curl -i); and the
router's secret, without which a worker does not believe `X-Forwarded-For`."""

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-accord-worker"
# The cluster makes up a secret at each start, gives it to its workers (ACCORD_ROUTER_SECRET)
# and has Caddy add it to every request it forwards. Any local process can connect to a
# worker's port, and anything that reaches a host through the gateway comes from the router's
# address: the source address proves nothing, the secret does.
ROUTER_SECRET_HEADER = "X-Accord-Router"
_SECRET = ROUTER_SECRET_HEADER.lower().encode()
_FORWARDED = b"x-forwarded-for"
# Sent with the secret by a worker's own calls to other workers (through the router): they
# are the cluster's work for a client who already paid, not a client's requests.
INTERNAL_HEADER = "X-Accord-Internal"
_INTERNAL = INTERNAL_HEADER.lower().encode()


def is_internal(scope: Scope) -> bool:
    """Whether the request is a worker's call to another (RouterOnlyForwarding has removed
    the header from any request whose secret did not match)."""
    return any(name == _INTERNAL for name, _ in scope["headers"])


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


class RouterOnlyForwarding:
    """Pure ASGI middleware: drops `X-Forwarded-For` from a request that does not carry the
    router's secret (so the client is the peer itself), `X-Accord-Internal` unless it holds
    the secret, and the router's header from every request (so the app, its logs and its
    errors never hold the secret)."""

    def __init__(self, app: ASGIApp, secret: str | None) -> None:
        self.app = app
        self.secret = None if secret is None else secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope["headers"]
            dropped = {_SECRET}
            if not self.carries_secret(headers, _SECRET):
                dropped.add(_FORWARDED)
            if not self.carries_secret(headers, _INTERNAL):
                dropped.add(_INTERNAL)
            kept = [(name, value) for name, value in headers if name not in dropped]
            scope = {**scope, "headers": kept}
        await self.app(scope, receive, send)

    def carries_secret(self, headers: list[tuple[bytes, bytes]], header: bytes) -> bool:
        given = [value for name, value in headers if name == header]
        return (
            self.secret is not None
            and len(given) == 1
            and hmac.compare_digest(given[0], self.secret)
        )
