"""Fan-out benchmark: Accord in its three sharding modes against a bare broadcast baseline.

    .venv/bin/python benchmarks/fanout.py                  # the full default run, 2-3 minutes
    .venv/bin/python benchmarks/fanout.py --help           # channels, members, rate, duration...

What it measures, in one run, on this machine:

1. Throughput and latency. N channels of M members each (default 10 x 10, the channels spread
   over a few Accord servers so that "server" sharding means something). Every member sends;
   every message is broadcast to the M members of its channel, the sender included. For each
   target we count the message frames that all members receive per second ("delivered/s") and
   the send-to-receive latency of each copy: the text of every message carries the sender's
   id, a counter and a time.perf_counter() timestamp, read again by each receiving member in
   the same process. Two loads:
   - fixed: every member sends R messages per second on a schedule (open loop). Both servers
     should keep up, so delivered/s is the same and the latencies are what differ.
   - saturation: every member keeps W messages in flight and sends the next one as soon as its
     own copy comes back (closed loop). The server runs as fast as it can: delivered/s is the
     maximum throughput, and the latency is mostly queueing.
2. Memory per idle connection: thousands of members that never send. We read the server's
   VmRSS from /proc before and after they connect (after a warm-up connection, so one-time
   imports are not counted, and for Accord after its actors had time to hibernate).

Targets: Accord (`python -m accord_app`) with --sharding channel, server and global, each a fresh
subprocess with a fresh data directory and the rate limit raised out of the way; and
benchmarks/baseline_broadcast.py, a FastAPI broadcast with no storage, served by uvicorn with
the same options. The ratio "Accord delivered/s / baseline delivered/s" at saturation is what
the target (>= 0.9) is about; at the fixed load it only says that both kept up. "undelivered"
counts copies still missing 3 s after the last send: a backlog the server could not clear.

How to read it, and how it can mislead:
- Two cores, one machine. The server is pinned to core 0 and this load generator (one asyncio
  process, uvloop when available) to core 1; the "srv CPU" and "cli CPU" columns say how busy
  each side was (100% = one core). If "cli CPU" is near 100% the client was the bottleneck and
  the server's number is a lower bound. Without two usable cores nothing is pinned and both
  sides share the CPU: the numbers then say little.
- Other processes. "other" is the CPU that the rest of the machine used during the window
  (200% = both cores). Anything but a few percent means the server shared its core and its
  msgs/s are low; "srv us/msg" (server CPU time per delivered frame) is then the steadier
  figure to compare, since it counts only the time the server actually ran.
- Loopback only: no network latency, no packet loss, no TLS. Real deployments add all three;
  latencies here are the server's own cost plus Python's on both ends.
- The client is a minimal WebSocket client written below, not the websockets library, because
  that library cost as much CPU per frame as the baseline server. It does not offer
  permessage-deflate (browsers do): compression would cost both servers more CPU per frame.
- Accord makes every message durable (SQLite in WAL mode, one fsync per group commit) before
  anyone sees it; the baseline keeps nothing. The fsync latency of the disk under the temp
  directory therefore shows up in Accord's latency, not in the baseline's.
- RSS counts what the allocator holds, not what is in use: Python rarely gives memory back, so
  memory freed by hibernation may stay in the figure. The per-connection figure is
  (RSS after - RSS before) / connections, so it includes per-channel costs spread over the
  members (Accord's actors, the baseline's dict entries).
- A few seconds per scenario on a shared machine: run it twice before believing a 5% change.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from accord_app.lab.loadtest import LIFTED_LIMITS

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
HOST = "127.0.0.1"  # loopback only, on purpose
SERVER_CORE, CLIENT_CORE = 0, 1
# Both servers encode frames compactly with "type" first: a cheap test for a message frame.
MESSAGE_PREFIX = b'{"type":"message"'
TARGET_RATIO = 0.9
TARGET_KB_PER_CONNECTION = 20.0
BUSY_MACHINE_CPU = 25.0  # % of a core used by other processes that makes msgs/s unreliable
CONNECT_CONCURRENCY = 100  # handshakes in flight at once: keeps the listen backlog happy
T = TypeVar("T")


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server to measure: the baseline, or Accord with one sharding mode."""

    kind: str  # "accord" or "baseline"
    sharding: str | None = None

    @property
    def label(self) -> str:
        return "baseline" if self.kind == "baseline" else f"accord {self.sharding}"


TARGETS = {
    "baseline": Target("baseline"),
    "channel": Target("accord", "channel"),
    "server": Target("accord", "server"),
    "global": Target("accord", "global"),
}


@dataclass(frozen=True)
class Config:
    channels: int
    members: int
    servers: int
    rate: float
    window: int
    duration: float
    warmup: float
    message_chars: int
    idle_channels: int
    idle_members: int
    idle_timeout: float
    targets: list[str]
    loads: list[str]
    memory: bool
    pin: bool
    json_path: Path | None


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Accord vs a bare broadcast: messages/s, latency, memory per connection.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--channels", type=int, default=10, help="channels with traffic")
    add("--members", type=int, default=10, help="members per channel, all sending")
    add("--servers", type=int, default=2, help="Accord servers the channels are spread over")
    add("--rate", type=float, default=20.0, help="fixed load: messages/s sent per member")
    add("--window", type=int, default=4, help="saturation: messages in flight per member")
    add("--duration", type=float, default=10.0, help="seconds measured per scenario")
    add("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    add("--message-chars", type=int, default=64, help="length of each message's text")
    add("--idle-channels", type=int, default=50, help="memory test: channels")
    add("--idle-members", type=int, default=100, help="memory test: idle members per channel")
    add("--idle-timeout", type=float, default=1.0, help="memory test: ACCORD_IDLE_TIMEOUT")
    add("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    add(
        "--loads",
        nargs="*",
        choices=["fixed", "saturation"],
        default=["fixed", "saturation"],
        help="none: only the memory test",
    )
    add("--no-memory", dest="memory", action="store_false", help="skip the memory test")
    add("--no-pin", dest="pin", action="store_false", help="do not pin server and client")
    add("--json", dest="json_path", type=Path, help="also write results (under results/)")
    args = parser.parse_args(argv)
    return Config(**vars(args))


# -- the server subprocess ------------------------------------------------------------------------


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(
        0
    )


def pin_to_server_core() -> None:
    """Runs in the child between fork and exec, so every thread the server starts inherits it."""
    os.sched_setaffinity(0, {SERVER_CORE})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(target: Target, port: int, data_dir: Path) -> list[str]:
    if target.kind == "baseline":
        script = BENCH_DIR / "baseline_broadcast.py"
        return [sys.executable, str(script), "--host", HOST, "--port", str(port)]
    assert target.sharding is not None
    return [
        sys.executable,
        "-m",
        "accord_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--sharding",
        target.sharding,
    ]


class ServerProcess:
    """One server in its own process; `stop()` always ends it (terminate, then kill)."""

    def __init__(self, target: Target, workdir: Path, idle_timeout: float | None, pin: bool):
        self.target = target
        self.port = free_port()
        self.log_path = workdir / "server.log"
        env = {**os.environ, **LIFTED_LIMITS, "PYTHONPATH": str(PROJECT_DIR)}
        if idle_timeout is not None:
            env["ACCORD_IDLE_TIMEOUT"] = str(idle_timeout)
        # A file, not a pipe: nobody reads a pipe during the run, and a full one blocks the server.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                server_command(target, self.port, workdir / "data"),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=PROJECT_DIR,
                preexec_fn=pin_to_server_core if pin else None,
            )

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """uvicorn listens only once the app has started, so a TCP connect means ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.label} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.target.label} did not start in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system time of every thread of the server, from /proc/<pid>/stat."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running_server(
    target: Target, pin: bool, idle_timeout: float | None = None
) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="accord-fanout-") as workdir:
        server = ServerProcess(target, Path(workdir), idle_timeout, pin)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


# -- channels and connections --------------------------------------------------------------------


async def make_channels(server: ServerProcess, channels: int, servers: int) -> list[str]:
    """The channels' paths (/api/servers/{sid}/channels/{cid}), spread over `servers`."""
    servers = max(1, min(servers, channels))
    if server.target.kind == "baseline":  # it accepts any ids
        server_ids = [str(uuid.uuid4()) for _ in range(servers)]
        return [
            f"/api/servers/{server_ids[i % servers]}/channels/{uuid.uuid4()}"
            for i in range(channels)
        ]
    paths = []
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        server_ids = []
        for i in range(servers):
            response = await http.post("/api/servers", json={"name": f"bench-{i}"})
            server_ids.append(response.raise_for_status().json()["id"])
        for i in range(channels):
            sid = server_ids[i % servers]
            response = await http.post(f"/api/servers/{sid}/channels", json={"name": f"ch-{i}"})
            paths.append(f"/api/servers/{sid}/channels/{response.raise_for_status().json()['id']}")
    return paths


async def bounded_gather(coroutines: list[Awaitable[T]], limit: int) -> list[T]:
    """gather(), with at most `limit` of them running at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Awaitable[T]) -> T:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


async def open_members(
    server: ServerProcess, paths: list[str], members: int
) -> list[list["MiniWebSocket"]]:
    """`members` sockets per channel path, named m0, m1... (usernames must differ)."""
    targets = [f"{path}/connect?username=m{j}" for path in paths for j in range(members)]
    sockets = await bounded_gather(
        [MiniWebSocket.open(server.port, target) for target in targets], CONNECT_CONCURRENCY
    )
    return [sockets[i * members : (i + 1) * members] for i in range(len(paths))]


# -- a minimal WebSocket client -------------------------------------------------------------------
#
# Why not the websockets library? It is correct and complete, and here it cost ~8 us of CPU per
# frame received: as much as the baseline server spends per frame sent. With one core each, the
# load generator saturated before the baseline did and hid the gap we want to measure. This
# client speaks just enough RFC 6455 for two servers we control, on loopback: it handles every
# complete frame of a TCP read in one loop, with a plain callback (no queue, no task per frame).

ZERO_MASK = bytes(4)  # clients must mask; an all-zero key is legal and makes masking a no-op
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, masked client frame."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + ZERO_MASK + payload


def frame_at(buffer: bytearray, pos: int) -> tuple[int, int, int] | None:
    """(opcode, payload start, payload end) of the complete frame at `pos`, or None if it is
    not all there yet. Server frames are unmasked and, from these servers, unfragmented."""
    if len(buffer) - pos < 2:
        return None
    opcode, size, start = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F, pos + 2
    if size >= 126:
        width = 2 if size == 126 else 8
        if len(buffer) < start + width:
            return None
        size, start = int.from_bytes(buffer[start : start + width], "big"), start + width
    end = start + size
    return (opcode, start, end) if end <= len(buffer) else None


def handshake(port: int, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class MiniWebSocket(asyncio.Protocol):
    """A client socket. `send_text()` writes at once; every text frame received is passed to
    `on_text(payload)` as bytes, from the event loop's read callback."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.on_text: Callable[[bytes], None] = lambda payload: None
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, port: int, target: str) -> "MiniWebSocket":
        loop = asyncio.get_running_loop()
        request = handshake(port, target)
        _, client = await loop.create_connection(lambda: cls(request), HOST, port)
        async with asyncio.timeout(60):
            await client.opened
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.opened.done() or self.read_handshake():
            self.read_frames()

    def read_handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
        if b" 101 " not in status_line:  # e.g. Accord's 404 for an unknown channel
            self.opened.set_exception(ConnectionError(status_line.decode(errors="replace")))
            self.abort()
            return False
        del self.buffer[: end + 4]
        self.opened.set_result(None)
        return True

    def read_frames(self) -> None:
        buffer, pos = self.buffer, 0
        while (frame := frame_at(buffer, pos)) is not None:
            opcode, start, pos = frame
            if opcode == OP_TEXT:
                self.on_text(bytes(buffer[start:pos]))
            elif opcode == OP_PING:  # uvicorn pings every 20 s and closes if nobody answers
                self.write(encode_frame(OP_PONG, bytes(buffer[start:pos])))
            elif opcode == OP_CLOSE:
                self.abort()
        del buffer[:pos]  # a bytearray drops a prefix without copying the rest

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_text(self, text: str) -> None:
        self.write(encode_frame(OP_TEXT, text.encode()))

    def close(self) -> None:
        """Say goodbye (code 1000) and close: the server reads the close frame, then EOF."""
        self.write(encode_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What all members saw; `measuring` is True only inside the measured window."""

    measuring: bool = False
    sent: int = 0  # messages sent inside the window
    delivered: int = 0  # message frames received inside the window
    latencies: list[float] = field(default_factory=list)  # seconds, one per delivered frame
    sent_total: int = 0  # including warm-up: what the drain waits for
    received_total: int = 0


def sent_text(payload: bytes) -> bytes:
    """The text a message frame carries. Both servers put "message" last and our texts hold no
    quotes or escapes, so slicing is exact, and far cheaper than json.loads per frame."""
    return payload[payload.rindex(b'"message":"') + 11 : -2]


class Member:
    """One member: its socket, what it counts, and its window of messages in flight."""

    def __init__(self, index: int, ws: MiniWebSocket, window: int, tally: Tally) -> None:
        self.index = index
        self.ws = ws
        self.tally = tally
        self.in_flight = asyncio.Semaphore(window)  # saturation: released when our copy is back
        self.counter = 0
        ws.on_text = self.on_text

    def send(self, padding: str) -> None:
        # perf_counter() is comparable only within one process: senders and receivers are here.
        self.ws.send_text(f"{self.index} {self.counter} {time.perf_counter()!r} {padding}")
        self.counter += 1
        self.tally.sent_total += 1
        if self.tally.measuring:
            self.tally.sent += 1

    def on_text(self, payload: bytes) -> None:
        """Count a message frame and its latency; acks, presence and the like are ignored."""
        if not payload.startswith(MESSAGE_PREFIX):
            return
        now = time.perf_counter()
        sender, _counter, sent_at = sent_text(payload).split(b" ", 3)[:3]
        tally = self.tally
        tally.received_total += 1
        if tally.measuring:
            tally.delivered += 1
            tally.latencies.append(now - float(sent_at))
        if int(sender) == self.index:
            self.in_flight.release()


async def send_paced(member: Member, rate: float, padding: str) -> None:
    """Open loop: send on a fixed schedule whatever the server does (cancelled to stop)."""
    interval = 1 / rate
    # A random phase per member, or all members would send in the same millisecond.
    next_at = time.perf_counter() + random.uniform(0, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        member.send(padding)
        next_at += interval


async def send_closed_loop(member: Member, padding: str) -> None:
    """Closed loop: a new message as soon as one of ours is back (cancelled to stop)."""
    while True:
        await member.in_flight.acquire()
        member.send(padding)


@dataclass
class LoadResult:
    target: str
    load: str
    seconds: float
    sent_per_s: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # percent of one core
    server_us_per_msg: float  # server CPU per delivered frame: less skewed by other load
    client_cpu: float
    other_cpu: float  # other processes on the machine; 200% = both cores
    undelivered: int  # copies still missing after the drain: a backlog, or frames lost


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def drain(tally: Tally, members: int, timeout: float = 3.0) -> None:
    """Give copies sent near the end time to arrive, so undelivered counts only real misses."""
    deadline = time.perf_counter() + timeout
    while tally.received_total < tally.sent_total * members and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


async def run_load(
    server: ServerProcess, paths: list[str], config: Config, load: str
) -> LoadResult:
    """Connect every member, load the server for warm-up + duration, then disconnect."""
    channels = await open_members(server, paths, config.members)
    tally = Tally()
    sockets = [ws for channel in channels for ws in channel]
    members = [Member(i, ws, config.window, tally) for i, ws in enumerate(sockets)]
    padding = "x" * max(0, config.message_chars - 32)  # the header is ~32 characters
    senders: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(0.5)  # let the joins and their presence frames settle
        for member in members:
            if load == "fixed":
                sender = send_paced(member, config.rate, padding)
            else:
                sender = send_closed_loop(member, padding)
            senders.append(asyncio.create_task(sender))
        await asyncio.sleep(config.warmup)
        window = await measure_window(server, tally, config.duration)
        for task in senders:
            task.cancel()
        await drain(tally, config.members)
    finally:
        for task in senders:
            task.cancel()
        for ws in sockets:
            ws.close()
    latencies, seconds = sorted(tally.latencies), window.seconds
    return LoadResult(
        target=server.target.label,
        load=load_label(config, load),
        seconds=round(seconds, 3),
        sent_per_s=tally.sent / seconds,
        delivered_per_s=tally.delivered / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu=100 * window.server_cpu / seconds,
        server_us_per_msg=1e6 * window.server_cpu / max(1, tally.delivered),
        client_cpu=100 * window.client_cpu / seconds,
        other_cpu=100 * window.other_cpu / seconds,
        undelivered=tally.sent_total * config.members - tally.received_total,
    )


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, all processes), from /proc/stat."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


@dataclass
class Window:
    """The measured window: its length and the CPU seconds spent in it, by whom."""

    seconds: float
    server_cpu: float
    client_cpu: float
    other_cpu: float  # every other process: if high, the machine was not ours alone


async def measure_window(server: ServerProcess, tally: Tally, duration: float) -> Window:
    """Count frames in the tally for `duration` seconds and the CPU each side used meanwhile."""
    server_cpu, client_cpu, busy = server.cpu_seconds(), time.process_time(), busy_cpu_seconds()
    start = time.perf_counter()
    tally.measuring = True
    await asyncio.sleep(duration)
    tally.measuring = False
    seconds = time.perf_counter() - start
    server_cpu = server.cpu_seconds() - server_cpu
    client_cpu = time.process_time() - client_cpu
    other_cpu = busy_cpu_seconds() - busy - server_cpu - client_cpu
    return Window(seconds, server_cpu, client_cpu, max(0.0, other_cpu))


def load_label(config: Config, load: str) -> str:
    if load == "fixed":
        return f"fixed {config.rate:g}/s/member"
    return f"saturation W={config.window}"


async def measure_throughput(target: Target, config: Config) -> list[LoadResult]:
    with running_server(target, config.pin) as server:
        paths = await make_channels(server, config.channels, config.servers)
        results = []
        for load in config.loads:
            result = await run_load(server, paths, config, load)
            print(f"  {result.target:15} {result.load:22} {result.delivered_per_s:10,.0f}/s")
            results.append(result)
        return results


# -- memory per idle connection -------------------------------------------------------------------


@dataclass
class MemoryResult:
    target: str
    connections: int
    rss_before_kb: int
    rss_connected_kb: int  # 1 s after the last member connected
    rss_settled_kb: int  # after the idle timeout, when Accord's actors have hibernated

    @property
    def kb_per_connection(self) -> float:
        return (self.rss_settled_kb - self.rss_before_kb) / self.connections


async def warm_up(server: ServerProcess, path: str) -> None:
    """One member joins, sends and leaves: lazy imports and first-use caches are paid here."""
    ws = await MiniWebSocket.open(server.port, f"{path}/connect?username=warmup")
    echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ws.on_text = lambda payload: None if echoed.done() else echoed.set_result(None)
    try:
        ws.send_text("warm-up")
        async with asyncio.timeout(10):
            await echoed  # Accord answers with an ack first: either frame will do
    finally:
        ws.close()


async def measure_memory(target: Target, config: Config) -> MemoryResult:
    with running_server(target, config.pin, idle_timeout=config.idle_timeout) as server:
        paths = await make_channels(server, config.idle_channels + 1, config.servers)
        await warm_up(server, paths.pop())
        await asyncio.sleep(config.idle_timeout + 1)  # the warm-up actor hibernates too
        before = server.rss_kb()
        channels = await open_members(server, paths, config.idle_members)
        sockets = [ws for channel in channels for ws in channel]
        try:
            await asyncio.sleep(1)
            connected = server.rss_kb()
            await asyncio.sleep(config.idle_timeout + 2)
            settled = server.rss_kb()
        finally:
            for ws in sockets:  # no goodbyes: thousands of closing handshakes would be slow
                ws.abort()
        return MemoryResult(target.label, len(sockets), before, connected, settled)


# -- report ---------------------------------------------------------------------------------------


def throughput_table(results: list[LoadResult]) -> str:
    header = (
        f"{'target':15} {'load':22} {'sent/s':>8} {'delivered/s':>12} {'p50 ms':>8}"
        f" {'p99 ms':>8} {'srv CPU':>8} {'srv us/msg':>10} {'cli CPU':>8} {'other':>6}"
        f" {'undelivered':>12}"
    )
    rows = [header, "-" * len(header)]
    for r in sorted(results, key=lambda r: (r.load, r.target != "baseline")):
        rows.append(
            f"{r.target:15} {r.load:22} {r.sent_per_s:8,.0f} {r.delivered_per_s:12,.0f}"
            f" {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.server_cpu:7.0f}% {r.server_us_per_msg:10.1f}"
            f" {r.client_cpu:7.0f}%"
            f" {r.other_cpu:5.0f}% {r.undelivered:12,}"
        )
    return "\n".join(rows)


def ratio_lines(results: list[LoadResult]) -> list[str]:
    baselines = {r.load: r for r in results if r.target == "baseline"}
    lines = []
    for r in results:
        base = baselines.get(r.load)
        if r.target == "baseline" or base is None or base.delivered_per_s == 0:
            continue
        ratio = r.delivered_per_s / base.delivered_per_s
        cost = r.server_us_per_msg / base.server_us_per_msg
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        lines.append(
            f"{r.target:15} {r.load:22} {ratio:5.2f}x baseline msgs/s"
            f" ({verdict} the {TARGET_RATIO}x target); {cost:4.2f}x its server CPU per msg"
        )
    return lines


def memory_table(results: list[MemoryResult]) -> str:
    header = (
        f"{'target':15} {'idle conns':>10} {'RSS before':>12} {'connected':>12}"
        f" {'settled':>12} {'KB/conn':>8}  target <= {TARGET_KB_PER_CONNECTION:g} KB"
    )
    rows = [header, "-" * len(header)]
    for m in results:
        verdict = "meets" if m.kb_per_connection <= TARGET_KB_PER_CONNECTION else "MISSES"
        rows.append(
            f"{m.target:15} {m.connections:10,} {m.rss_before_kb:9,} KB {m.rss_connected_kb:9,} KB"
            f" {m.rss_settled_kb:9,} KB {m.kb_per_connection:8.1f}  {verdict}"
        )
    return "\n".join(rows)


def setup_line(config: Config, pinned: bool) -> str:
    cores = (
        f"server pinned to core {SERVER_CORE}, load generator to core {CLIENT_CORE}"
        if pinned
        else f"NOT pinned: server and load generator share {os.cpu_count()} core(s)"
    )
    return (
        f"{config.channels} channels x {config.members} members over {config.servers} servers,"
        f" {config.message_chars}-char messages, {config.duration:g} s measured after"
        f" {config.warmup:g} s warm-up; {cores}"
    )


def write_json(
    path: Path, config: Config, loads: list[LoadResult], memory: list[MemoryResult]
) -> Path:
    if not path.is_absolute() and path.parent == Path("."):
        path = RESULTS_DIR / path
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "throughput": [asdict(r) for r in loads],
        "memory": [{**asdict(m), "kb_per_connection": m.kb_per_connection} for m in memory],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# -- main -----------------------------------------------------------------------------------------


def prepare_process(config: Config) -> bool:
    """Raise the open-files limit (thousands of sockets) and pin this process; True if pinned."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = config.idle_channels * config.idle_members + config.channels * config.members + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    pinned = config.pin and can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})  # the servers re-pin themselves to SERVER_CORE
    return pinned


async def run(config: Config, pinned: bool) -> None:
    config = Config(**{**asdict(config), "pin": pinned})
    print(setup_line(config, pinned), flush=True)
    loads: list[LoadResult] = []
    for name in config.targets if config.loads else []:  # baseline first: the reference
        print(f"throughput: {TARGETS[name].label} ...", flush=True)
        loads += await measure_throughput(TARGETS[name], config)
    memory: list[MemoryResult] = []
    if config.memory:
        for name in ("channel", "baseline"):
            if name in config.targets:
                print(f"memory: {TARGETS[name].label} ...", flush=True)
                memory.append(await measure_memory(TARGETS[name], config))
    if loads:
        print()
        print(throughput_table(loads))
        print()
        print("Accord vs baseline, same load:")
        print("\n".join(ratio_lines(loads)) or "(no baseline measured)")
        busiest = max(result.other_cpu for result in loads)
        if busiest > BUSY_MACHINE_CPU:
            print(
                f"WARNING: other processes used up to {busiest:.0f}% CPU during a window: msgs/s"
                " and latencies are skewed; compare srv us/msg, or rerun on a quiet machine."
            )
    if memory:
        print()
        print(memory_table(memory))
    if config.json_path is not None:
        print(f"\nwrote {write_json(config.json_path, config, loads, memory)}")


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    pinned = prepare_process(config)
    try:
        import uvloop  # the load generator should cost as little CPU per frame as possible
    except ImportError:
        asyncio.run(run(config, pinned))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(config, pinned))


if __name__ == "__main__":
    main()
