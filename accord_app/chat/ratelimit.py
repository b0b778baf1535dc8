"""Limits on what one client may ask of Accord: messages per connection and per client
address, connections per address (open at once, and opened per second), and refused frames in
a row.

The token bucket is pure and clock-agnostic (the caller passes `now`), so tests need no sleep.
Every frame a client sends costs tokens: messages, retries of a stored message, typing
notices, replays (more for long ones) and refused frames alike, so none of them can be used
to make the server work for free. A client is its IP address; behind the cluster's proxy, the
address the proxy reports. A production service would also limit per user, once it has users,
and keep the counters in one place for all its servers (in Accord's design: a rate-limiter
actor, as in Cloudflare's chat demo). Here each process counts for itself.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

# Gone clients' buckets kept before a sweep drops those that owe nothing any more.
SWEEP_AFTER = 1024


class Clock(Protocol):
    """Seconds that only go forward: the buckets' `now`."""

    def now(self) -> float: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


MONOTONIC = MonotonicClock()


@dataclass(frozen=True)
class ChatLimits:
    """The defaults suit people typing; load tests, whose clients all share one address, raise
    them (ACCORD_RATE_LIMIT, ACCORD_CLIENT_RATE_LIMIT, ACCORD_CLIENT_CONNECTIONS, ...)."""

    messages_per_second: float = 5.0  # per connection
    burst: int = 10
    client_messages_per_second: float = 20.0  # per client address, all its connections
    client_burst: int = 40
    client_connections: int = 100  # open at once from one address
    # New connections from one address: a handshake and a join cost the server far more than a
    # message, and 30 at once hold up everyone for a moment. Reconnecting tabs stay well within.
    client_connects_per_second: float = 2.0
    client_connect_burst: int = 10
    strikes: int = 20  # refused frames in a row before the connection is closed
    typing_interval: float = 2.0  # at most one typing notice relayed per socket per interval
    replay_messages_per_token: int = 100  # a replay costs 1 token, plus 1 per this many


@dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float  # most tokens the bucket holds
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many; False means: over the limit, try later."""
        self.refill(now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, as of the last take()."""
        return max(0.0, (1 - self.tokens) / self.rate)


@dataclass
class ClientLimits:
    """What each client address may still do, shared by all its connections in this process."""

    limits: ChatLimits
    connections: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    openings: dict[str, TokenBucket] = field(default_factory=dict)

    def connect(self, client: str, now: float) -> str | None:
        """Count a new connection; or say why it is refused (and count nothing)."""
        limits = self.limits
        if self.connections.get(client, 0) >= limits.client_connections:
            most = limits.client_connections
            return f"Too many connections from {client}: at most {most} at once."
        opening = self.openings.get(client)
        if opening is None:
            opening = TokenBucket(limits.client_connects_per_second, limits.client_connect_burst,
                                  -1, now)  # fmt: skip
            self.openings[client] = opening
        if not opening.take(now):
            wait = opening.retry_after()
            return f"Too many new connections from {client}: try again in {wait:.1f} s."
        self.connections[client] = self.connections.get(client, 0) + 1
        return None

    def connect_retry_after(self, client: str) -> float:
        """Seconds until the client may open a connection again, as of its last refusal for
        opening too many (0: it was not refused for that)."""
        opening = self.openings.get(client)
        return 0.0 if opening is None else opening.retry_after()

    def disconnect(self, client: str, now: float) -> None:
        left = self.connections.get(client, 0) - 1
        if left > 0:
            self.connections[client] = left
            return
        self.connections.pop(client, None)
        # A client that leaves owing tokens owes them when it comes back: reconnecting must not
        # wipe a debt. Buckets that are full again hold nothing worth keeping: this client's
        # go now, and those of clients gone for good once they outnumber the connected ones
        # (a sweep now and then, not a scan of every address on every disconnect).
        self._forget_settled([client], now)
        if len(self.buckets) + len(self.openings) > 2 * len(self.connections) + SWEEP_AFTER:
            self._forget_settled({*self.buckets, *self.openings} - self.connections.keys(), now)

    def _forget_settled(self, addresses: Iterable[str], now: float) -> None:
        for address in addresses:
            for buckets in (self.buckets, self.openings):
                bucket = buckets.get(address)
                if bucket is not None:
                    bucket.refill(now)
                    if bucket.tokens >= bucket.burst:
                        del buckets[address]

    def take(self, client: str, now: float, cost: float = 1.0) -> bool:
        """Spend from the client's bucket; False means: over the client's limit."""
        return self.bucket(client, now).take(now, cost)

    def charge(self, client: str, now: float, tokens: float) -> None:
        """Charge work already done; the client's bucket may go into debt."""
        bucket = self.bucket(client, now)
        bucket.refill(now)
        bucket.tokens -= tokens

    def retry_after(self, client: str) -> float:
        bucket = self.buckets.get(client)
        return 0.0 if bucket is None else bucket.retry_after()

    def bucket(self, client: str, now: float) -> TokenBucket:
        found = self.buckets.get(client)
        if found is None:
            limits = self.limits
            found = TokenBucket(limits.client_messages_per_second, limits.client_burst, -1, now)
            self.buckets[client] = found
        return found


@dataclass(slots=True)  # one per connection
class ConnectionBudget:
    """What one connection pays every frame from: its own bucket and its client's, together.
    The channel's actor spends from it for messages, the WebSocket protocol for the frames no
    handler sees (accord_app/chat/frame_guard.py), so a client cannot pick a kind of frame that is
    free."""

    bucket: TokenBucket
    clients: ClientLimits
    client: str
    clock: Clock = MONOTONIC

    @classmethod
    def open(
        cls, clients: ClientLimits, client: str, clock: Clock = MONOTONIC
    ) -> "ConnectionBudget":
        limits = clients.limits
        bucket = TokenBucket(limits.messages_per_second, limits.burst, -1, clock.now())
        return cls(bucket, clients, client, clock)

    def pay(self) -> bool:
        """One token from both buckets, or none from either."""
        now = self.clock.now()
        if not self.bucket.take(now):
            return False
        if not self.clients.take(self.client, now):
            self.bucket.tokens += 1  # not this connection's fault: give its token back
            return False
        return True
