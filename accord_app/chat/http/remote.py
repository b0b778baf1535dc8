"""Calls to a channel's actor that may live in another worker or on another host.

A Durable Object is reached by name from anywhere; here, a call to an actor that another worker
hosts is a real HTTP request to the public API, through the cluster's router with the actor's
key, exactly as a client's would go: there is no second routing table to keep in step with
the proxy's. What a call across a network adds to a local one, this module says out loud:

- a **deadline**: a host that is down or cut off makes the call fail by then, not hang;
- **typed errors** that name the actor and the host that failed, so an answer that collects
  many calls can say which part is missing and why;
- **retries only where they are safe**: a GET, or a call that carries an idempotency key (the
  callee remembers it and answers a repeat with the first result), is tried again while the
  deadline allows; any other call is made once, since a lost reply does not mean the work was
  not done.

What a production system adds: connection pools per host, circuit breakers that stop calling
a host that keeps failing, and tracing across hops.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import httpx

from accord_app.cluster.placement import Placement
from accord_app.observe.metrics import Metrics

# Status codes that say "not done, try again": the proxy found no worker (502), or it was busy
# or its storage was unavailable (503). Anything else is an answer.
RETRYABLE_STATUS = {502, 503, 504}
RETRY_DELAYS = [0.05, 0.1, 0.2, 0.4, 0.8]


class RemoteCallError(Exception):
    """A call to another worker's actor failed; the message names the actor and the host."""

    code = "remote_call_failed"

    def __init__(self, key: str, host: str, reason: str) -> None:
        self.key, self.host, self.reason = key, host, reason
        super().__init__(f"The actor {key} on {host}: {reason}")


class CallTimedOut(RemoteCallError):
    code = "call_timed_out"


class HostUnreachable(RemoteCallError):
    code = "host_unreachable"


class CallRefused(RemoteCallError):
    """The callee answered with an error of its own (its JSON body's code and message)."""

    def __init__(self, key: str, host: str, status: int, code: str, message: str) -> None:
        super().__init__(key, host, f"{status} {code}: {message}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class RemoteActor:
    """The actor of `key`, hosted by `host` (for messages), reached through `router`."""

    router: httpx.AsyncClient
    key: str
    host: str
    metrics: Metrics | None = None  # counts each call, its outcome and latency

    @classmethod
    def placed(
        cls,
        router: httpx.AsyncClient,
        placement: Placement,
        key: str,
        metrics: Metrics | None = None,
    ) -> "RemoteActor":
        """The actor of `key`, on the worker that the placement (the proxy's rule) names."""
        owner = placement.owner(key)
        return cls(router, key, f"worker {owner} ({placement.addresses[owner - 1]})", metrics)

    async def call(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The JSON answer of `method path` (a path of the public API that names this actor's
        channel); a RemoteCallError once the deadline (time.monotonic()) has passed or the
        callee refused."""
        if self.metrics is None:
            return await self._call(method, path, deadline, json, idempotency_key)
        started = time.perf_counter()
        outcome = "cancelled"  # unless it ends otherwise: the caller gave up on it
        try:
            answer = await self._call(method, path, deadline, json, idempotency_key)
            outcome = "ok"
            return answer
        except RemoteCallError as error:
            outcome = OUTCOMES.get(type(error), "refused")
            raise
        finally:
            self.metrics.remote_call(outcome, time.perf_counter() - started)

    async def _call(
        self, method: str, path: str, deadline: float, json: Any, idempotency_key: str | None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        safe_to_repeat = method == "GET" or idempotency_key is not None
        delays = iter(RETRY_DELAYS if safe_to_repeat else [])
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CallTimedOut(self.key, self.host, "no answer before the deadline")
            try:
                # asyncio.timeout bounds the whole call. httpx's own `timeout=` bounds each step
                # (connect, each read, ...): a reply that trickles in a byte at a time would
                # never reach it, and the call would outlive its deadline.
                async with asyncio.timeout(left):
                    response = await self.router.request(method, path, json=json, headers=headers)
            except (TimeoutError, httpx.TimeoutException):
                raise CallTimedOut(self.key, self.host, "no answer before the deadline") from None
            except httpx.TransportError as error:
                failure: RemoteCallError = HostUnreachable(self.key, self.host, describe(error))
            else:
                if response.status_code < 400:
                    return response.json()
                failure = refusal(self.key, self.host, response)
                if response.status_code not in RETRYABLE_STATUS:
                    raise failure
            delay = next(delays, None)
            if delay is None or time.monotonic() + delay >= deadline:
                raise failure
            await asyncio.sleep(delay)


# The metrics' outcome of each failure (accord_app/observe/metrics.py, CALL_OUTCOMES).
OUTCOMES: dict[type[RemoteCallError], str] = {
    CallTimedOut: "timed_out",
    HostUnreachable: "unreachable",
    CallRefused: "refused",
}


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def refusal(key: str, host: str, response: httpx.Response) -> CallRefused:
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    if isinstance(body, dict) and {"code", "message"} <= set(body):
        return CallRefused(key, host, response.status_code, str(body["code"]), str(body["message"]))
    text = response.text[:200] or response.reason_phrase
    return CallRefused(key, host, response.status_code, "remote_error", text)
