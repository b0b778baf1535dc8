"""Channel members that behave like the frontend's socket (accord_app/static/js/socket.js):
each keeps an outbox of messages with nonces, and after any drop (a 1012 "moved", an error, a
refused handshake) reconnects with the same backoff and jitter, with after_seq = the last seq up
to which it has seen every one (not the newest: messages arriving live between the slices of a
replay are above what the replay has still to send), and sends its outbox again; a gap with no
replay under way makes it ask for history. What each one sees is kept by seq, so the test can
check there is no gap and no seq with two different messages.

`kill_rounds` runs them through kill -9 after kill -9 of their channel's host (the test of it,
and benchmarks/replication.py, which times it)."""

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster_client import Channel, Running
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

BACKOFF_SECONDS = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]  # socket.js's BACKOFF_MS
PAUSE_BETWEEN_MESSAGES = 0.05  # a busy typist, not a flood: the machine has 2 cores
STEP_TIMEOUT = 20.0  # each step of a kill round: longer is a failure


@dataclass
class Member:
    base_url: str  # ws://.../connect?username=NAME
    name: str
    chooser: random.Random
    # Every seq up to this one was seen. The page loads the history before it connects and
    # resumes after its newest seq; the channels here start empty, so that is 0.
    last_seq: int = 0
    ahead: set[int] = field(default_factory=set)  # seen beyond last_seq + 1
    catching_up: bool = False  # a replay under way ("resumed" said more, or a gap was seen)
    seen: dict[int, str] = field(default_factory=dict)  # seq -> text, deduplicated by seq
    conflicts: list[tuple[int, str, str]] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)  # nonce -> seq
    # (last transmitted, acked): a message transmitted after a kill was stored by another host
    ack_times: list[tuple[float, float]] = field(default_factory=list)
    outbox: dict[str, float] = field(default_factory=dict)  # nonce -> when last transmitted
    moved: int = 0  # closes with 1012 received
    sent = 0
    sending = True

    def url(self) -> str:
        return f"{self.base_url}&after_seq={self.last_seq}"

    def text(self, nonce: str) -> str:
        return f"{nonce} says hello"

    def _saw(self, frame: dict[str, Any]) -> bool:
        """Keep a message; True: it shows a gap that no replay under way will fill."""
        seq, text = int(frame["seq"]), str(frame["message"])
        if seq in self.seen and self.seen[seq] != text:
            self.conflicts.append((seq, self.seen[seq], text))
        self.seen[seq] = text
        if seq > self.last_seq:
            self.ahead.add(seq)
            self._advance()
        if self.ahead and not self.catching_up:
            self.catching_up = True
            return True
        return False

    def _replayed(self, frame: dict[str, Any]) -> None:
        """A replay's slice ended: every seq after its after_seq up to its last_seq came."""
        if frame["after_seq"] <= self.last_seq:
            self.last_seq = max(self.last_seq, int(frame["last_seq"]))
            self._advance()
        self.catching_up = bool(frame["more"])

    def _advance(self) -> None:
        self.ahead = {seq for seq in self.ahead if seq > self.last_seq}
        while self.last_seq + 1 in self.ahead:
            self.last_seq += 1
            self.ahead.discard(self.last_seq)

    async def run(self) -> None:
        """Until cancelled: connect, resend the outbox, keep one message in flight."""
        attempt = 0
        while True:
            try:
                async with connect(self.url(), compression=None, proxy=None, open_timeout=5) as ws:
                    attempt = 0
                    await self._talk(ws)
            except ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == 1012:
                    self.moved += 1
            except (OSError, TimeoutError, InvalidStatus):
                pass
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            attempt += 1
            await asyncio.sleep(delay * (0.75 + self.chooser.random() / 2))

    async def _talk(self, ws: ClientConnection) -> None:
        for nonce in self.outbox:
            await self._transmit(ws, nonce)
        while True:
            if not self.outbox and self.sending:
                nonce = f"{self.name}-{self.sent}"
                self.sent += 1
                await self._transmit(ws, nonce)
            try:
                async with asyncio.timeout(PAUSE_BETWEEN_MESSAGES if not self.outbox else 10):
                    data = await ws.recv()
            except TimeoutError:
                if self.outbox:
                    raise  # no answer in 10 s: drop the connection, as the heartbeat would
                continue
            frame = json.loads(data)
            kind = frame.get("type")
            if kind in ("message", "ack") and self._saw(frame):
                await self._resume(ws)
            if kind == "ack":
                nonce = str(frame["nonce"])
                self.acked[nonce] = int(frame["seq"])
                sent = self.outbox.pop(nonce, None)
                if sent is not None:
                    self.ack_times.append((sent, time.perf_counter()))
                await asyncio.sleep(PAUSE_BETWEEN_MESSAGES)
            elif kind == "resumed":
                self._replayed(frame)
                if self.catching_up:
                    await self._resume(ws)
            elif kind == "error" and frame.get("nonce") in self.outbox:
                await asyncio.sleep(0.25)  # not stored (say, no owner yet): the same nonce again
                await self._transmit(ws, str(frame["nonce"]))

    async def _resume(self, ws: ClientConnection) -> None:
        await ws.send(json.dumps({"type": "resume", "after_seq": self.last_seq}))

    async def _transmit(self, ws: ClientConnection, nonce: str) -> None:
        frame = {"type": "message", "message": self.text(nonce), "nonce": nonce}
        self.outbox[nonce] = time.perf_counter()
        await ws.send(json.dumps(frame))

    async def catch_up(self) -> None:
        """One last connection with after_seq, read until the replay says there is no more."""
        async with connect(self.url(), compression=None, proxy=None, open_timeout=5) as ws:
            async with asyncio.timeout(20):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "message" and self._saw(frame):
                        await self._resume(ws)
                    elif frame["type"] == "resumed":
                        self._replayed(frame)
                        if not self.catching_up:
                            return
                        await self._resume(ws)


async def until(check: Callable[[], object], what: str, timeout: float = STEP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.02)


async def home(running: Running, channel: Channel, owner: int) -> None:
    """A request for the channel reaches its own host again. Another worker may answer while
    the router's checks of the returned host catch up (the next hand back moves it home), or
    a 503 during a handover."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        answer = await asyncio.to_thread(running.http.get, f"{channel.path}/messages")
        if answer.status_code == 200 and answer.headers["X-Accord-Worker"] == str(owner):
            return
        assert answer.status_code in (200, 503), answer.text
        assert time.monotonic() < deadline, f"host {owner} did not take its channel back"
        await asyncio.sleep(0.1)


@dataclass
class KillRounds:
    failovers: list[float]  # kill -9 -> the first ack of a message sent after it, elsewhere
    handbacks: list[float]  # the owner ready again -> every member moved back to it


async def kill_rounds(
    running: Running, channel: Channel, members: list[Member], rounds: int, chooser: random.Random
) -> KillRounds:
    """kill -9 of the channel's host at a random moment of the members' load, `rounds` times;
    each time the host restarts and takes its channel back (its members get 1012 and
    reconnect) before the next. Then the members stop sending, every outbox is acknowledged,
    and each member catches up on the whole history."""
    owner = running.owner(channel)
    tasks = [asyncio.create_task(member.run()) for member in members]
    found = KillRounds([], [])

    def acks_after(moment: float) -> list[float]:
        return [acked for m in members for sent, acked in m.ack_times if sent > moment]

    try:
        await until(lambda: all(len(m.acked) >= 5 for m in members), "first acks")
        for number in range(rounds):
            await asyncio.sleep(chooser.uniform(0.2, 1.5))  # a random moment of the load
            running.cluster.kill(owner)
            killed = time.perf_counter()
            await until(lambda at=killed: acks_after(at), f"round {number}: an ack elsewhere")
            found.failovers.append(min(acks_after(killed)) - killed)
            moved = [m.moved for m in members]
            await asyncio.to_thread(running.cluster.restart, owner)
            restarted = time.perf_counter()
            # No request needed: the interim host sees the owner answer again and steps down;
            # its members get 1012 and reconnect, and the router sends them home.
            await until(
                lambda was=moved: all(m.moved > n for m, n in zip(members, was, strict=True)),
                f"round {number}: members moved back to host {owner}",
            )
            found.handbacks.append(time.perf_counter() - restarted)
            # The next kill must hit the host that serves the channel: home, and every member
            # acknowledged there since.
            await home(running, channel, owner)
            at_home = time.perf_counter()
            await until(
                lambda at=at_home: all(any(s > at for s, _ in m.ack_times) for m in members),
                f"round {number}: every member acknowledged at home",
            )
        for member in members:
            member.sending = False
        await until(lambda: not any(m.outbox for m in members), "every outbox acknowledged")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for member in members:
        await member.catch_up()
    return found
