"""The HTTP edge's middleware: what one client may make the server hold or do (a request
body, the HTTP connection itself: headers, deadlines, connections per address, the Host
header, as a uvicorn protocol class, since the app sees a request only once its headers are
complete; and the requests an address may make each second), the headers between a cluster's
worker and its router, and ids written one way only.

Worker and router: `X-Accord-Worker: <n>` on every answer, so a client can see where a channel
lives (tests, the scaling chapter, curl -i); and the router's secret, without which a worker
does not believe `X-Forwarded-For`."""

import asyncio
import hmac
import http
import ipaddress
import json
import math
import re
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from accord_app.catalog.store import Catalog, CatalogError
from accord_app.chat.ratelimit import TokenBucket
from accord_app.web.errors import error_response

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Pure ASGI middleware: refuse bodies over `max_bytes` with a 413 error body.

    A declared Content-Length is checked before anything is read. A chunked body is counted as
    it arrives; the HTTPException raised from inside the endpoint's read goes through FastAPI's
    exception handlers like any other, so the client gets the usual JSON answer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"The request body is larger than {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "payload_too_large", self.message)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, detail=self.message)
            return message

        await self.app(scope, counting_receive, send)


# Tokens an address earns per second and may save up (the request budget's, RequestBudget
# below): a page load, a few dozen channel lists and histories, a burst of creations for a
# workshop's setup. Here because the penalty box lets held connections go at that pace.
REQUESTS_PER_SECOND = 20.0
REQUEST_BURST = 200

# --- The HTTP connection itself: what uvicorn's parser would otherwise take without limit. ---

# A browser's request headers are a few KiB (cookies included); 16 KiB is what nginx and
# h11 accept by default, and far below what would cost the server memory.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
# Seconds an address that sent headers over those limits waits in the penalty box (below).
HEADER_PENALTY_SECONDS = 1
# From a connection's first byte (or its opening) to a request's last header, and from the
# last header to the last byte of the body. A client on the slowest Wi-Fi sends a request in
# well under a second; these only cut off those who send a byte now and then to hold a socket.
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 20.0
# Open HTTP connections from one address, WebSockets not counted (they have their own cap once
# upgraded): a browser opens at most 6 per host, a workshop room behind one NAT a few dozen.
CONNECTIONS_PER_ADDRESS = 64
# Seconds an address that opened one connection over that cap waits in the penalty box: its
# next attempts are held unread (at most as many again; beyond, closed unanswered) rather than
# each answered at once, which a client reconnecting in a loop would repeat as fast as it can.
CAP_PENALTY_SECONDS = 1
# Hosts a browser may name in the Host header besides IP literals: a page whose own domain
# was rebound to 127.0.0.1 names its own domain, and is refused (DNS rebinding).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = BODY_TIMEOUT_SECONDS
    connections_per_address: int = CONNECTIONS_PER_ADDRESS
    # Names allowed in the Host header besides IP literals and LOOPBACK_NAMES.
    allowed_hosts: frozenset[str] = frozenset()
    # Peers exempt from the per-address cap: the cluster's router, which carries everyone's
    # requests on its own pool of connections.
    uncapped_peers: frozenset[str] = frozenset()
    # Seconds between two of an address's held connections let go when its box opens: what
    # its request budget takes to earn a token (RequestBudget's, below).
    release_interval: float = 1 / REQUESTS_PER_SECOND


def host_name(header: bytes) -> str | None:
    """The lower-case name or address of a Host header without its port; None if malformed."""
    try:
        text = header.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):  # [::1]:8787
        address, sep, rest = text[1:].partition("]")
        return address if sep and (rest == "" or rest[1:].isdigit()) else None
    name, _, port = text.partition(":")
    return name if port == "" or port.isdigit() else None


def host_allowed(header: bytes, allowed: frozenset[str]) -> bool:
    name = host_name(header)
    if name is None:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.rstrip(".") in LOOPBACK_NAMES or name.rstrip(".") in allowed
    return True  # an address cannot be rebound: only a domain name can


class Refused(Exception):
    """Raised inside a parser callback: the request is answered with this error and closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# The refusals that put the address in the penalty box, and for how long (its Retry-After).
_PENALTIES = {
    "headers_too_large": HEADER_PENALTY_SECONDS,
    "too_many_headers": HEADER_PENALTY_SECONDS,
    "too_many_connections": CAP_PENALTY_SECONDS,
}
_PHRASES = {status: http.HTTPStatus(status).phrase for status in (400, 408, 421, 429, 431)}
# Open connections per address, for each running server (tests run several in one process).
_open: "weakref.WeakKeyDictionary[ServerState, Counter[str]]" = weakref.WeakKeyDictionary()
# New connections per address held in the penalty box, unread, for each running server.
_held: "weakref.WeakKeyDictionary[ServerState, Counter[str]]" = weakref.WeakKeyDictionary()
# The key of the scope's extensions under which a request finds `penalize(seconds)`, which
# puts its connection's peer in the penalty box (RequestBudget calls it when it refuses).
PENALTY_EXTENSION = "accord.penalty"


class PenaltyBox:
    """Addresses refused for a while: each one's end, on the monotonic clock. A refusal costs
    the server a parse and an answer; while an address is in the box the server reads nothing
    from it (its connections are held, paused, until the end), so a flood of refused requests
    cannot crowd out everyone else's. Held, not closed: a client whose connection is closed
    connects again at once, and a storm of connections costs more than the answers did. When
    the box opens, its held connections go one at a time, at the pace its budget earns."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}
        self.turns: dict[str, float] = {}  # when each address's next held connection may go

    def hold(self, address: str, seconds: float, now: float) -> None:
        if len(self.until) >= _TRACKED_ADDRESSES:
            self.until = {held: end for held, end in self.until.items() if end > now}
        self.until[address] = max(self.until.get(address, now), now + seconds)

    def turn(self, address: str, now: float, interval: float) -> float:
        """When one of the address's held connections may go, once the box has opened: one
        per `interval` (what the address's budget earns a token in), the first at once. Let
        go together, they would land their requests at one instant, a burst that delays
        everyone else's answers."""
        if len(self.turns) >= _TRACKED_ADDRESSES:
            self.turns = {held: turn for held, turn in self.turns.items() if turn > now}
        turn = max(self.turns.get(address, now), now)
        self.turns[address] = turn + interval
        return turn

    def end(self, address: str, now: float) -> float | None:
        """When the address leaves the box; None if it is not in it."""
        end = self.until.get(address)
        if end is not None and end <= now:
            del self.until[address]
            return None
        return end


def _unboxed(seconds: float) -> None:
    """The penalty for a peer that is never boxed (a cluster's router)."""


# The penalty box of each running server.
_boxes: "weakref.WeakKeyDictionary[ServerState, PenaltyBox]" = weakref.WeakKeyDictionary()
# Connections refused by LimitedHttp, by code: this process's, for its metrics (the protocol
# runs before any app, so it cannot count in one).
REFUSED: Counter[str] = Counter()


class LimitedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on what one connection may hold: header size
    and count, header and body deadlines, open connections per address, the Host header.
    Each refusal is the API's JSON error, then the connection is closed. While its address is
    in the penalty box, a connection reads nothing: a new one from its opening, one that has
    just been answered 429 from that answer on."""

    limits: HttpLimits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.counted: str | None = None  # the address this connection counts against
        self.in_headers = True
        self.header_bytes = 0
        self.header_count = 0
        self.refusal: Refused | None = None
        self.held = False  # in the penalty box: what arrives waits in `waiting`, unparsed
        self.holding: str | None = None  # the address whose held connections count this one
        self.queued = False  # the box has opened: waiting for this connection's turn to go
        self.waiting = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.box_end() is None:
            self.admit()
            return
        # In the box: held unread until it opens, then admitted (or refused) as any other. Not
        # counted as open meanwhile, but as many again at most are held, or they would hold
        # files; past that, refused at once.
        address = self.client[0] if self.client else ""
        held_here = _held.setdefault(self.server_state, Counter())
        if held_here[address] >= self.limits.connections_per_address:
            self.refuse(self.over_cap())
            return
        REFUSED["penalty_box"] += 1  # counted, not logged: a log line costs more
        held_here[address] += 1
        self.holding = address
        self.after_box(self.leave_box)

    def admit(self) -> bool:
        """Count this connection against its address's cap and start its header deadline; or,
        over the cap, refuse it and put the address in the box."""
        address = self.client[0] if self.client else ""
        if address not in self.limits.uncapped_peers:
            open_here = _open.setdefault(self.server_state, Counter())
            if open_here[address] >= self.limits.connections_per_address:
                self.refuse(self.over_cap())
                return False
            open_here[address] += 1
            self.counted = address
        self.arm(self.limits.header_timeout)
        return True

    def over_cap(self) -> Refused:
        return Refused(
            429,
            "too_many_connections",
            f"This address already has {self.limits.connections_per_address} HTTP connections"
            " open; close some, or reuse them.",
        )

    def release(self) -> None:
        """This connection no longer counts as an open HTTP connection, nor waits for data."""
        self.arm(None)
        self.unhold()
        if self.counted is not None:
            _uncount(_open, self.server_state, self.counted)
            self.counted = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()
        super().connection_lost(exc)

    def penalize(self, seconds: float) -> None:
        """Put this connection's peer in the penalty box for `seconds`; not a peer exempt from
        the per-address cap (a cluster's router, which carries everyone's requests)."""
        self.penalty()(seconds)

    def penalty(self) -> Callable[[float], None]:
        """penalize(), for this connection's peer, without holding on to this object: a
        WebSocket keeps it for as long as it is open."""
        address = self.client[0] if self.client else ""
        if address in self.limits.uncapped_peers:
            return _unboxed
        box = _boxes.setdefault(self.server_state, PenaltyBox())
        return lambda seconds: box.hold(address, seconds, time.monotonic())

    def box_end(self) -> float | None:
        """When this connection's peer leaves the penalty box (time.monotonic()); None if it
        is not in it."""
        box = _boxes.get(self.server_state)
        if box is None or self.client is None:
            return None
        return box.end(self.client[0], time.monotonic())

    def after_box(self, then: Callable[[], None]) -> None:
        """Read nothing until this peer leaves the penalty box and its turn comes (the box's
        turn()), then call `then`. Checked again at each: another refusal may have kept the
        address in longer."""
        end = self.box_end()
        closing = self.transport.is_closing()
        if end is None and self.held and not self.queued and not closing and self.client:
            self.queued = True
            now = time.monotonic()
            box = _boxes[self.server_state]
            turn = box.turn(self.client[0], now, self.limits.release_interval)
            if turn > now:  # checked again then: the address may have been boxed meanwhile
                self.loop.call_later(turn - now, self.after_box, then)
                return
        if end is None or closing:
            self.held = self.queued = False
            then()
            waiting, self.waiting = self.waiting, b""
            if waiting and not self.transport.is_closing():
                self.data_received(waiting)
            return
        self.held, self.queued = True, False
        self.flow.pause_reading()
        self.loop.call_later(end - time.monotonic(), self.after_box, then)

    def unhold(self) -> None:
        """This connection is no longer held in the box (it left it, or closed)."""
        if self.holding is not None:
            _uncount(_held, self.server_state, self.holding)
            self.holding = None

    def leave_box(self) -> None:
        """A new connection held in the box: admitted now, as if it had just come."""
        self.unhold()
        if not self.transport.is_closing() and self.admit():
            self.flow.resume_reading()

    def on_response_complete(self) -> None:
        # Answered 429 (or its address was boxed meanwhile): nothing more is read, and no
        # request already read (pipelined) is started, until the box opens.
        self.after_box(super().on_response_complete)

    def handle_websocket_upgrade(self) -> None:
        self.release()  # a WebSocket is counted by the chat's own per-address cap
        super().handle_websocket_upgrade()
        # The WebSocket's frame guard (chat/frame_guard.py) boxes the address when it closes
        # the connection for flooding, and the chat route when it refuses a connection over
        # the address's rate: a flooder connecting again at once is then held here, unread,
        # instead of each attempt costing a handshake, a route and a refusal.
        guard = getattr(self.transport.get_protocol(), "frame_guard", None)
        if guard is not None:
            guard.penalize = self.penalty()

    def arm(self, seconds: float | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = None if seconds is None else self.loop.call_later(seconds, self.expire)

    def expire(self) -> None:
        self.deadline = None
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # too late for an error: the answer has begun
            return
        part = "headers" if self.in_headers else "body"
        self.refuse(
            Refused(408, "request_timeout", f"The request's {part} did not arrive in time.")
        )

    def data_received(self, data: bytes) -> None:
        if self.held:
            # uvloop starts reading after connection_made whatever it asked, and a read may be
            # under way: pause (again), and keep what came for later, up to what one request
            # may hold (beyond, it is refused anyway once read; closing now would only have
            # the client connect again at once).
            self.transport.pause_reading()
            room = self.limits.max_header_bytes + MAX_BODY_BYTES + 1 - len(self.waiting)
            if room > 0:
                self.waiting += data[:room]
            return
        if self.in_headers:
            end = data.find(b"\r\n\r\n")
            self.header_bytes += len(data) if end < 0 else end
            if self.header_bytes > self.limits.max_header_bytes:
                self.refuse(
                    Refused(
                        431,
                        "headers_too_large",
                        f"The request's headers are larger than {self.limits.max_header_bytes}"
                        " bytes.",
                    )
                )
                return
        super().data_received(data)  # a Refused raised by a callback comes back as a 400

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {PENALTY_EXTENSION: {"penalize": self.penalize}}
        self.in_headers = True
        self.header_count = 0
        if self.deadline is None:
            self.arm(self.limits.header_timeout)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.max_headers:
            raise self.refusing(
                Refused(
                    431,
                    "too_many_headers",
                    f"The request has over {self.limits.max_headers} headers.",
                )
            )
        if name.lower() == b"host" and not host_allowed(value, self.limits.allowed_hosts):
            raise self.refusing(
                Refused(
                    421,
                    "host_not_allowed",
                    "This server does not answer to that Host name; a page reaching it under"
                    " another name is refused (ACCORD_ALLOWED_HOSTS lists more names).",
                )
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.header_bytes = 0
        self.arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.arm(None)
        super().on_message_complete()

    def refusing(self, refusal: Refused) -> Refused:
        self.refusal = refusal
        return refusal

    def send_400_response(self, msg: str) -> None:
        """The parser's refusals (and ours, raised from its callbacks) in the API's shape."""
        self.refuse(
            self.refusal or Refused(400, "bad_request", "The request is not valid HTTP/1.1.")
        )

    def refuse(self, refusal: Refused) -> None:
        REFUSED[refusal.code] += 1
        self.arm(None)
        self.in_headers = False
        body = json.dumps({"message": refusal.message, "code": refusal.code}).encode()
        wait = ""
        penalty = _PENALTIES.get(refusal.code)
        if penalty is not None:
            # No browser sends such headers or opens so many connections: a script does, again
            # and again. Its next connections wait (the penalty box) instead of each costing a
            # parse and an answer.
            self.penalize(penalty)
            wait = f"retry-after: {penalty}\r\n"
        head = (
            f"HTTP/1.1 {refusal.status} {_PHRASES[refusal.status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{wait}"
            "connection: close\r\n\r\n"
        )
        if not self.transport.is_closing():
            self.transport.write(head.encode() + body)
            self.transport.close()


def _uncount(
    counts: "weakref.WeakKeyDictionary[ServerState, Counter[str]]", server: ServerState, key: str
) -> None:
    """One connection fewer for `key` in a server's counts; a key at zero is dropped."""
    counted = counts.get(server)
    if counted is not None:
        counted[key] -= 1
        if counted[key] <= 0:
            del counted[key]


def http_protocol(limits: HttpLimits) -> type[LimitedHttp]:
    """The protocol class to give uvicorn (its `http` option) for these limits."""
    return type("LimitedHttp", (LimitedHttp,), {"limits": limits})


# --- Requests per client address: every HTTP request pays from its address's budget. ---

# What a request costs: a read 1; a write 2 (it is fsync'ed); a question to every channel of a
# server 1 + its number of channels, one actor call each (capped at the burst, so it can be paid).
WRITE_COST = 2
_SPANNING = re.compile(r"^/api/servers/([^/]+)/(activity|announcements)$")
_TRACKED_ADDRESSES = 10_000  # beyond this many, addresses whose budget is full are forgotten


@dataclass(frozen=True)
class RequestLimits:
    per_second: float = REQUESTS_PER_SECOND
    burst: int = REQUEST_BURST
    # Open HTTP connections from one address (HttpLimits.connections_per_address).
    connections: int = CONNECTIONS_PER_ADDRESS

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and self.burst >= 1):
            raise ValueError(
                "ACCORD_CLIENT_REQUEST_RATE must be above 0 and ACCORD_CLIENT_REQUEST_BURST at"
                f" least 1, not {self.per_second:g} and {self.burst}"
            )
        if self.connections < 1:
            raise ValueError(
                f"ACCORD_CLIENT_HTTP_CONNECTIONS must be at least 1, not {self.connections}"
            )


class RequestBudget:
    """Pure ASGI middleware: each HTTP request costs tokens from its client address's bucket
    (see the costs above); one it cannot pay is answered 429 rate_limited with Retry-After.
    `GET /api`, the health check, is free, and so are the cluster's own calls between its
    workers (marked by the router's secret, see accord_app/web/middleware.py). The buckets are
    this process's: each worker of a cluster keeps its own."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RequestLimits,
        catalog: Catalog,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.catalog = catalog
        self.on_refused = on_refused  # the metrics count each refusal
        self.buckets: dict[str, TokenBucket] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/api" or is_internal(scope):
            await self.app(scope, receive, send)
            return
        cost = min(await self.cost(scope), self.limits.burst)
        client = client_address(HTTPConnection(scope))
        now = time.monotonic()
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= _TRACKED_ADDRESSES:
                self.forget_rested(now)
            bucket = TokenBucket(self.limits.per_second, self.limits.burst, updated=now)
            self.buckets[client] = bucket
        if bucket.take(now, cost):
            await self.app(scope, receive, send)
            return
        wait = math.ceil((cost - bucket.tokens) / self.limits.per_second)
        message = (
            f"Too many requests from {client}: this one costs {cost:g} of the"
            f" {self.limits.per_second:g} a second this address earns; try again in {wait} s."
        )
        penalty = scope.get("extensions", {}).get(PENALTY_EXTENSION)
        if penalty is not None:
            # Its next requests would be refused too until then: LimitedHttp reads none of
            # them before (the penalty box).
            penalty["penalize"](wait)
        response = error_response(429, "rate_limited", message, {"retry-after": str(wait)})
        self.on_refused()
        await response(scope, receive, send)

    async def cost(self, scope: Scope) -> float:
        spanning = _SPANNING.match(scope["path"])
        if spanning is not None:
            try:
                server_id = str(uuid.UUID(spanning[1]))
                channels = await run_in_threadpool(self.catalog.count_channels, server_id)
            except (ValueError, CatalogError):
                channels = 0  # the route answers its own 400 or 503
            return 1 + channels
        return WRITE_COST if scope["method"] in {"POST", "PUT", "PATCH", "DELETE"} else 1

    def forget_rested(self, now: float) -> None:
        for client, bucket in list(self.buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.burst:
                del self.buckets[client]


# --- The headers between a cluster's worker and its router. ---

_WORKER = b"x-accord-worker"
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
                headers = [*message.get("headers", []), (_WORKER, self.value)]
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


def client_address(connection: HTTPConnection) -> str:
    """Who is asking: the peer's IP address, or, behind the cluster's proxy (a worker reached
    from loopback, or from the router's address when hosts are network namespaces), the
    address the proxy saw, which it puts last in X-Forwarded-For. The header is believed from
    that proxy only: anyone else could write anything in it."""
    peer = connection.client.host if connection.client else "unknown"
    settings = connection.app.state.settings
    forwarded = connection.headers.get("x-forwarded-for")
    proxies = ("127.0.0.1", "::1", settings.router_host)
    if settings.worker is not None and peer in proxies and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip()
    return peer


# --- Ids in the path, written one way only. ---

# Where ids stand in the API's paths: /api/servers/{server_id}/channels/{channel_id}/...
_ID_SEGMENTS = {3: "server_id", 5: "channel_id"}


def non_canonical_id(path: str) -> tuple[str, str] | None:
    """(field, canonical form) of the first id in `path` that is a UUID written another way
    (upper case, no hyphens, braces, urn:uuid:); None if there is none."""
    parts = path.split("/")
    if parts[1:3] != ["api", "servers"]:
        return None
    if len(parts) > 4 and parts[4] != "channels":
        parts = parts[:4]  # only the server's id is an id on its other paths
    for index, name in _ID_SEGMENTS.items():
        if index >= len(parts):
            break
        try:
            canonical = str(uuid.UUID(parts[index]))
        except ValueError:
            continue  # not a UUID at all: the route answers its own 400 or 404
        if parts[index] != canonical:
            return name, canonical
    return None


class CanonicalIds:
    """Pure ASGI middleware: an id in the path must be written as the API writes it, a UUID in
    lower case with hyphens, or it is a 400. The cluster's proxy routes a channel by the text
    of its ids; if the app read "ABC…" as "abc…", the two would disagree on its worker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = non_canonical_id(scope["path"]) if scope["type"] in ("http", "websocket") else None
        if found is None:
            await self.app(scope, receive, send)
            return
        name, canonical = found
        message = (
            f"The {name} in the path must be a UUID written in lower case with hyphens,"
            f" such as {canonical}."
        )
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await error_response(400, f"invalid_{name}", message)(scope, receive, send)
