"""A chat member that behaves as the web frontend does (accord_app/static/js/socket.js), so a
test can see what a person would through a host's death or a cut link.

It sends a message with a nonce every `interval` seconds; after a drop it reconnects with
?after_seq= the last seq up to which it has seen every one (not the newest: live messages
arrive between the slices of a replay, above what the replay has still to send), and sends
again every message that was not acked (a nonce is stored once, so a retry of a message that
was stored but whose ack was lost is safe).
A heartbeat (WebSocket pings) notices a link that went silent, which closes nothing. It keeps
a record of everything: acks and when they came, the seqs it saw, how each connection ended,
and the statuses of the reconnections that were refused.
"""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

RETRY_SECONDS = 0.2
OPEN_TIMEOUT = 5.0
# A ping each half second; a pong later than 2 s means the link is gone (2 cores under load
# can be slow to answer, never that slow), and so is a close handshake that takes as long.
PING_INTERVAL = 0.5
PING_TIMEOUT = 2.0


@dataclass
class Member:
    url: str  # the channel's connect URL, with ?username=
    interval: float
    texts: dict[str, str] = field(default_factory=dict)  # nonce -> text, in sending order
    first_sent: dict[str, float] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # nonce -> ack frame
    acked_at: dict[str, float] = field(default_factory=dict)  # nonce -> time.perf_counter()
    seen: dict[int, str] = field(default_factory=dict)  # seq -> id of every message frame
    drops: list[str] = field(default_factory=list)  # how each connection ended
    refusals: list[int] = field(default_factory=list)  # HTTP statuses of refused connects
    error_frames: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0

    @property
    def unacked(self) -> list[str]:
        return [nonce for nonce in self.texts if nonce not in self.acks]

    @property
    def settled(self) -> bool:
        """Every message sent is acked, and seen as every member sees it."""
        return not self.unacked and all(ack["seq"] in self.seen for ack in self.acks.values())

    @property
    def resume_after(self) -> int:
        """The last seq up to which it has seen every one, from the first it saw."""
        seq = min(self.seen, default=1) - 1
        while seq + 1 in self.seen:
            seq += 1
        return seq

    def ack_latencies(
        self, sent_from: float = 0.0, sent_until: float = float("inf")
    ) -> list[float]:
        """Seconds from first send to ack, of the messages first sent in that window."""
        return [
            self.acked_at[nonce] - sent
            for nonce, sent in self.first_sent.items()
            if nonce in self.acked_at and sent_from <= sent < sent_until
        ]

    async def run(self, stop_sending: asyncio.Event) -> None:
        """Until `stop_sending` is set and every message sent so far is settled."""
        while not (stop_sending.is_set() and self.settled):
            after = f"&after_seq={self.resume_after}" if self.seen else ""
            try:
                async with connect(
                    self.url + after,
                    compression=None,
                    proxy=None,
                    open_timeout=OPEN_TIMEOUT,
                    ping_interval=PING_INTERVAL,
                    ping_timeout=PING_TIMEOUT,
                    close_timeout=PING_TIMEOUT,
                ) as ws:
                    self.connections += 1
                    await self._session(ws, stop_sending)
            except* InvalidStatus as refused:
                self.refusals += [error.response.status_code for error in refused.exceptions]
            except* (ConnectionClosed, OSError, TimeoutError) as dropped:
                self.drops.append(repr(dropped.exceptions[0]))
            await asyncio.sleep(RETRY_SECONDS)

    async def _session(self, ws: ClientConnection, stop_sending: asyncio.Event) -> None:
        for nonce in self.unacked:  # what the last connection left without an ack
            await self._send(ws, nonce)
        async with asyncio.TaskGroup() as both:
            sender = both.create_task(self._send_until(ws, stop_sending))
            both.create_task(self._receive(ws, sender, stop_sending))

    async def _send_until(self, ws: ClientConnection, stop_sending: asyncio.Event) -> None:
        while not stop_sending.is_set():
            nonce = f"n{len(self.texts)}"
            self.texts[nonce] = f"message {nonce}"
            self.first_sent[nonce] = time.perf_counter()
            await self._send(ws, nonce)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sending.wait(), self.interval)

    async def _send(self, ws: ClientConnection, nonce: str) -> None:
        await ws.send(json.dumps({"type": "message", "message": self.texts[nonce], "nonce": nonce}))

    async def _receive(
        self, ws: ClientConnection, sender: "asyncio.Task[None]", stop_sending: asyncio.Event
    ) -> None:
        while not (sender.done() and stop_sending.is_set() and self.settled):
            try:
                data = await asyncio.wait_for(ws.recv(), RETRY_SECONDS)
            except TimeoutError:
                continue
            frame = json.loads(data)
            if frame["type"] == "ack" and frame["nonce"] not in self.acks:
                self.acks[frame["nonce"]] = frame
                self.acked_at[frame["nonce"]] = time.perf_counter()
            elif frame["type"] == "message":
                self.seen[frame["seq"]] = frame["id"]
            elif frame["type"] == "resumed" and frame["more"]:
                await ws.send(json.dumps({"type": "resume", "after_seq": frame["last_seq"]}))
            elif frame["type"] == "error":
                self.error_frames.append(frame)
