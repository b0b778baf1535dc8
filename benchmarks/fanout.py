"""Fan-out benchmark: Accord in its three sharding modes against a bare broadcast baseline.

    .venv/bin/python benchmarks/fanout.py                  # the full default run, ~3 minutes
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
the target (>= 0.9) is about; at the fixed load it only says that both kept up.

How to read it, and how it can mislead:
- Two cores, one machine. The server is pinned to core 0 and this load generator (one asyncio
  process, uvloop when available) to core 1; the "srv CPU" and "cli CPU" columns say how busy
  each side was (100% = one core). If "cli CPU" is near 100% the client was the bottleneck and
  the server's number is a lower bound. Without two usable cores nothing is pinned and both
  sides share the CPU: the numbers then say little.
- Loopback only: no network latency, no packet loss, no TLS. Real deployments add all three;
  latencies here are the server's own cost plus Python's on both ends.
- The client does not offer permessage-deflate (browsers do); compression would cost both
  servers the same CPU per frame. Turn it on with --compression.
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
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
HOST = "127.0.0.1"  # loopback only, on purpose
SERVER_CORE, CLIENT_CORE = 0, 1
# Both servers encode frames compactly with "type" first: a cheap test before json.loads.
MESSAGE_PREFIX = '{"type":"message"'
TARGET_RATIO = 0.9
TARGET_KB_PER_CONNECTION = 20.0
# Accord's defaults suit people typing; a load test must not measure the rate limiter.
ACCORD_LIMITS = {"ACCORD_RATE_LIMIT": "1e6", "ACCORD_RATE_BURST": "1000000"}
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
    compression: bool
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
    add("--rate", type=float, default=5.0, help="fixed load: messages/s sent per member")
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
    add("--compression", action="store_true", help="offer permessage-deflate, as browsers do")
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
        env = {**os.environ, **ACCORD_LIMITS, "PYTHONPATH": str(PROJECT_DIR)}
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

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

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


async def open_socket(url: str, compression: bool) -> ClientConnection:
    return await connect(
        url,
        compression="deflate" if compression else None,
        proxy=None,  # loopback: never through a proxy from the environment
        ping_interval=None,  # no keepalive traffic from our side
        max_queue=None,  # never stop reading: a paused reader would make the server buffer
        open_timeout=60,
    )


async def bounded_gather(coroutines: list[Awaitable[T]], limit: int) -> list[T]:
    """gather(), with at most `limit` of them running at once."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coroutine: Awaitable[T]) -> T:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(one(c) for c in coroutines))


async def open_members(
    server: ServerProcess, paths: list[str], members: int, compression: bool
) -> list[list[ClientConnection]]:
    """`members` sockets per channel path, named m0, m1... (usernames must differ)."""
    urls = [
        [f"{server.ws_url}{path}/connect?username=m{j}" for j in range(members)] for path in paths
    ]
    flat = [open_socket(url, compression) for channel in urls for url in channel]
    sockets = await bounded_gather(flat, CONNECT_CONCURRENCY)
    return [sockets[i * members : (i + 1) * members] for i in range(len(paths))]


async def close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def abort_all(sockets: list[ClientConnection]) -> None:
    """Drop the TCP connections without a closing handshake: fast, for thousands of them."""
    for ws in sockets:
        ws.transport.abort()


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


@dataclass
class Member:
    index: int
    ws: ClientConnection
    in_flight: asyncio.Semaphore  # saturation: free slots; released when our own copy is back


def message_text(member: Member, counter: int, padding: str) -> str:
    # perf_counter() is only comparable within one process: senders and receivers are all here.
    return f"{member.index} {counter} {time.perf_counter()!r} {padding}"


async def send(member: Member, counter: int, padding: str, tally: Tally) -> None:
    await member.ws.send(message_text(member, counter, padding))
    tally.sent_total += 1
    if tally.measuring:
        tally.sent += 1


async def send_paced(member: Member, rate: float, padding: str, tally: Tally) -> None:
    """Open loop: send on a fixed schedule whatever the server does (cancelled to stop)."""
    interval = 1 / rate
    # A random phase per member, or all members would send in the same millisecond.
    next_at = time.perf_counter() + random.uniform(0, interval)
    for counter in range(sys.maxsize):
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await send(member, counter, padding, tally)
        next_at += interval


async def send_closed_loop(member: Member, padding: str, tally: Tally) -> None:
    """Closed loop: a new message as soon as one of ours is back (cancelled to stop)."""
    for counter in range(sys.maxsize):
        await member.in_flight.acquire()
        await send(member, counter, padding, tally)


async def receive(member: Member, tally: Tally) -> None:
    """Count message frames and their latency; ignore acks, presence and the like."""
    with contextlib.suppress(ConnectionClosed):
        async for frame in member.ws:
            if not isinstance(frame, str) or not frame.startswith(MESSAGE_PREFIX):
                continue
            now = time.perf_counter()
            sender, _counter, sent_at = json.loads(frame)["message"].split(" ", 3)[:3]
            tally.received_total += 1
            if tally.measuring:
                tally.delivered += 1
                tally.latencies.append(now - float(sent_at))
            if int(sender) == member.index:
                member.in_flight.release()


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
    server_us_per_msg: float  # server CPU per delivered frame: hardly moved by other load
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
    channels = await open_members(server, paths, config.members, config.compression)
    tally = Tally()
    members = [
        Member(i, ws, asyncio.Semaphore(config.window))
        for i, ws in enumerate(ws for channel in channels for ws in channel)
    ]
    padding = "x" * max(0, config.message_chars - 32)  # the header is ~32 characters
    receivers = [asyncio.create_task(receive(member, tally)) for member in members]
    senders: list[asyncio.Task[None]] = []
    try:
        await asyncio.sleep(0.5)  # let the joins and their presence frames settle
        for member in members:
            if load == "fixed":
                sender = send_paced(member, config.rate, padding, tally)
            else:
                sender = send_closed_loop(member, padding, tally)
            senders.append(asyncio.create_task(sender))
        await asyncio.sleep(config.warmup)
        window = await measure_window(server, tally, config.duration)
        for task in senders:
            task.cancel()
        await drain(tally, config.members)
    finally:
        for task in senders:
            task.cancel()
        await close_all([member.ws for member in members])
        for task in receivers:
            task.cancel()
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


async def warm_up(server: ServerProcess, path: str, compression: bool) -> None:
    """One member joins, sends and leaves: lazy imports and first-use caches are paid here."""
    ws = await open_socket(f"{server.ws_url}{path}/connect?username=warmup", compression)
    try:
        await ws.send("warm-up")
        async with asyncio.timeout(10):
            while not str(await ws.recv()).startswith(MESSAGE_PREFIX):
                pass
    finally:
        await ws.close()


async def measure_memory(target: Target, config: Config) -> MemoryResult:
    with running_server(target, config.pin, idle_timeout=config.idle_timeout) as server:
        paths = await make_channels(server, config.idle_channels + 1, config.servers)
        await warm_up(server, paths.pop(), config.compression)
        await asyncio.sleep(config.idle_timeout + 1)  # the warm-up actor hibernates too
        before = server.rss_kb()
        channels = await open_members(server, paths, config.idle_members, config.compression)
        sockets = [ws for channel in channels for ws in channel]
        try:
            await asyncio.sleep(1)
            connected = server.rss_kb()
            await asyncio.sleep(config.idle_timeout + 2)
            settled = server.rss_kb()
        finally:
            abort_all(sockets)
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
    compression = "on" if config.compression else "off"
    return (
        f"{config.channels} channels x {config.members} members over {config.servers} servers,"
        f" {config.message_chars}-char messages, {config.duration:g} s measured after"
        f" {config.warmup:g} s warm-up; {cores}; compression {compression}"
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
    print()
    print(throughput_table(loads))
    print()
    print("Accord delivered/s / baseline delivered/s:")
    print("\n".join(ratio_lines(loads)) or "(no baseline measured)")
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
