"""A token bucket: `rate` messages a second on average, bursts of up to `burst`.

Pure and clock-agnostic (the caller passes `now`), so tests need no sleeping. The bucket lives in
the connection's state; a client that opens ten sockets gets ten buckets. Production chat
services also limit per user and per IP, which needs a shared counter (in Accord's design: a
rate-limiter actor, as in Cloudflare's chat demo).
"""

from dataclasses import dataclass


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

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False means: over the limit, try later."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, as of the last take()."""
        return max(0.0, (1 - self.tokens) / self.rate)
