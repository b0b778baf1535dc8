"""Fan-out benchmark: Accord on its fast and ASGI WebSocket paths against a bare broadcast on each.

    .venv/bin/python benchmarks/fanout.py                  # the default run, about 4 minutes
    .venv/bin/python benchmarks/fanout.py --sharding-modes # also server and global sharding
    .venv/bin/python benchmarks/fanout.py --compare-tree ../other  # and accord-fast from there
    .venv/bin/python benchmarks/fanout.py --help           # channels, members, rate, rounds...

It prints a markdown report and writes it, with every window's numbers in JSON, to
results/fanout-<time>.md and .json (or --out STEM).

Targets, each a server in its own subprocess, with the rate limits lifted out of the way:

- accord-fast: `python -m accord_app --sharding channel` with ACCORD_WS=fast (FastWebSocket:
  no task per socket, one write() per socket per loop turn). Every message is durable (SQLite,
  one fsync per group commit) and acked before anyone sees it, as always.
- accord-asgi: the same with ACCORD_WS=asgi (uvicorn's WebSocket protocol, a task per socket).
- baseline-fast: benchmarks/baseline_broadcast.py --ws fast, a FastAPI broadcast with no storage
  written the way Accord's fast path is: it takes the socket as a direct transport and calls
  write_frame() for each member from the receive callback. Like for like with accord-fast.
- baseline-asgi: the same broadcast on uvicorn's own protocol (an awaited send per copy).
- with --sharding-modes, accord-fast-server and accord-fast-global: the fast path with one actor
  per server, or one for everything (10 channels over --servers 2 servers).
- accord-fast-metrics-off, asked for by name: accord-fast with ACCORD_METRICS=0 (no /metrics, and
  nothing observing the runtime); `--targets accord-fast accord-fast-metrics-off` measures
  what the metrics cost (target: accord-fast >= 0.95x of it).
- with --compare-tree DIR, accord-fast@<dir name>: accord-fast run from another copy of the
  project (DIR/accord_app on PYTHONPATH), to measure a change to the fast path side by side.

What it measures, in one run, on this machine:

1. Throughput and latency. N channels of M members each (default 10 x 10). Every member sends;
   every message is broadcast to the M members of its channel, the sender included. Delivered/s
   counts the message frames that all members receive per second; the latency of a copy is from
   its send to its arrival: the text of every message carries the sender's index, a counter and
   a time.perf_counter() timestamp, read again in this same process. Two loads:
   - fixed: every member sends R messages per second on a schedule (open loop). All targets
     should keep up, so delivered/s is the same and the latencies are what differ.
   - saturation: every member keeps W messages in flight and sends the next one as soon as its
     own copy comes back (closed loop). The server runs as fast as it can: delivered/s is the
     maximum throughput, and the latency is mostly queueing.
   All servers run at once (idle but for the one measured) and the windows are interleaved:
   for each load, round after round, each target gets warm-up + one measured window, in an
   order that rotates every round. A drift of the machine's other load then hits every target
   alike, and each figure is the median over the rounds; each ratio (accord-fast/baseline-fast,
   target >= 0.7; accord-fast/accord-asgi, target >= 3) is the median of ratios taken within a
   round. At the fixed load, accord-fast's p99 should be no worse than accord-asgi's.
2. Memory per idle member: thousands of members that never send (default 50 channels x 100),
   one fresh server per target. The server's VmRSS before they connect (after a warm-up member,
   so one-time imports are not counted), 1 s after, and once the actors had time to hibernate:
   KB/member is (settled - before) / members (target for accord-fast: <= 15 KB). The actors'
   open database files (/proc/<pid>/fd) show that they did hibernate, so that what is left is
   the sockets and the runtime's state per socket; then one message per channel wakes every
   actor, and the RSS and files are read again, awake and hibernated once more.

Server costs per delivered frame: CPU time (/proc/<pid>/stat, every thread) and write system
calls (syscw in /proc/<pid>/io: write() and writev(), which uvloop uses for sockets, and
pwrite(), which SQLite uses; not send()/sendmsg(), so it needs uvloop, which uvicorn picks when
it is installed). For Accord, syscw therefore also counts SQLite's pwrite()s to its -wal files
(one to two per message at saturation on this machine) and the event loop's wake-up write when
a commit thread hands a finished fsync back (one per commit), beside the socket writes.

How to read it, and how it can mislead:
- Two cores, one machine. The servers are pinned to core 0 and this load generator (one asyncio
  process, uvloop when available) to core 1; "srv CPU" and "cli CPU" say how busy each side was
  (100% = one core). If "cli CPU" nears 100% the client was the bottleneck and the server's
  number is a lower bound. Without two usable cores nothing is pinned and the numbers say little.
- Other processes. "+others" is the CPU that other processes used on the server's core and on
  the client's core during a window (from /proc/stat, per core: the idle servers count too).
  Where it is high the server did not get its core and its frames/s are low: "srv us/frame"
  (server CPU time per delivered frame) is then the steadier figure. Accord's own figures also
  move from run to run with the disk: fsync latency sets how many messages share a group
  commit, hence how many commits, writes and thread hand-offs each frame costs.
- Loopback only: no network latency, no packet loss, no TLS. Latencies are the servers' own cost
  plus Python's on both ends; Accord's include the fsync of the disk under the temp directory.
- The client is a minimal WebSocket client written below, not the websockets library, which
  cost as much CPU per frame as the baseline server. It does not parse each frame in Python: per
  TCP read it finds where the last complete frame ends, then counts message frames and finds
  their timestamps with bytes methods and one regular expression, in C (about 1 us of CPU per
  frame). It offers no permessage-deflate (browsers do): compression would cost every server
  more CPU per frame.
- Channels of 10 members: Accord's costs per message (a turn, an INSERT, an ack, a share of a
  commit) weigh ten times more per frame than in channels of 100 (--channels 2 --members 50).
- RSS counts what the allocator holds, not what is in use: Python rarely gives memory back, so
  memory freed by hibernation may stay in the figure. KB/member includes per-channel costs
  spread over the members (Accord's socket lists, the baseline's dict entries); the kernel's
  socket buffers are not in RSS at all.
- A few seconds per window on a shared machine: run it twice before believing a 10% change.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import resource
import socket
import statistics
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

from accord_app.cluster.ports import free_port
from accord_app.lab.loadtest import LIFTED_LIMITS

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"  # git-ignored
HOST = "127.0.0.1"  # loopback only, on purpose
SERVER_CORE, CLIENT_CORE = 0, 1
# Both servers encode frames compactly with "type" first: a cheap test for a message frame.
MESSAGE_PREFIX = b'{"type":"message"'
ACK_PREFIX = b'{"type":"ack"'  # Accord's ack repeats the message's text, so its marker too
# The send time in the text of every message frame (see Member.frame), in C. Accord's acks
# repeat the text: where one is in the data, the slower pattern that skips them is needed (its
# lazy [^}]*? stays inside one frame); it costs ~1 us a frame, the other ~0.15 us.
SENT_AT = re.compile(rb'"message":"\d+ \d+ ([0-9.]+) ')
SENT_AT_NOT_ACKS = re.compile(rb'\{"type":"message",[^}]*?"message":"\d+ \d+ ([0-9.]+) ')
TARGET_FAST_VS_BASELINE = 0.7  # accord-fast / baseline-fast delivered/s at saturation
TARGET_FAST_VS_ASGI = 3.0  # accord-fast / accord-asgi delivered/s at saturation
TARGET_METRICS_COST = 0.95  # accord-fast / accord-fast-metrics-off delivered/s at saturation
TARGET_KB_PER_MEMBER = 15.0  # accord-fast, idle members, actors hibernated
BUSY_MACHINE_CPU = 25.0  # % of a core used by other processes that makes frames/s unreliable
BUSY_CLIENT_CPU = 90.0  # % of its core: the load generator may have been the limit
CONNECT_CONCURRENCY = 100  # handshakes in flight at once: keeps the listen backlog happy
T = TypeVar("T")


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server to measure: Accord with a sharding mode, or the baseline; on a WebSocket path."""

    name: str
    kind: str  # "accord" or "baseline"
    ws: str  # "fast" or "asgi"
    sharding: str = "channel"
    tree: Path = PROJECT_DIR  # the source tree it runs from: --compare-tree runs another
    metrics: bool = True  # ACCORD_METRICS
    inspected: bool = False  # an inspector page stays open on it (its /inspect stream read)

    @property
    def env(self) -> dict[str, str]:
        metrics = "1" if self.metrics else "0"
        return {"PYTHONPATH": str(self.tree), "ACCORD_WS": self.ws, "ACCORD_METRICS": metrics}


TARGETS = {
    target.name: target
    for target in [
        Target("accord-fast", "accord", "fast"),
        Target("accord-asgi", "accord", "asgi"),
        Target("baseline-fast", "baseline", "fast"),
        Target("baseline-asgi", "baseline", "asgi"),
        Target("accord-fast-server", "accord", "fast", "server"),
        Target("accord-fast-global", "accord", "fast", "global"),
        Target("accord-fast-metrics-off", "accord", "fast", metrics=False),
        Target("accord-fast-inspected", "accord", "fast", inspected=True),
    ]
}
DEFAULT_TARGETS = ["accord-fast", "accord-asgi", "baseline-fast", "baseline-asgi"]
SHARDING_TARGETS = ["accord-fast-server", "accord-fast-global"]


@dataclass(frozen=True)
class Config:
    channels: int
    members: int
    servers: int
    rate: float
    window: int
    duration: float
    warmup: float
    rounds: int
    message_chars: int
    idle_channels: int
    idle_members: int
    idle_timeout: float
    targets: list[str]
    sharding_modes: bool
    compare_tree: list[Path]
    loads: list[str]
    memory: bool
    pin: bool
    out: Path | None


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Accord fast/ASGI vs a bare broadcast fast/ASGI: frames/s, latency, memory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--channels", type=int, default=10, help="channels with traffic")
    add("--members", type=int, default=10, help="members per channel, all sending")
    add("--servers", type=int, default=2, help="Accord servers the channels are spread over")
    add("--rate", type=float, default=10.0, help="fixed load: messages/s sent per member")
    add("--window", type=int, default=4, help="saturation: messages in flight per member")
    add("--duration", type=float, default=4.0, help="seconds measured per window")
    add("--warmup", type=float, default=1.0, help="seconds of load before each window")
    add("--rounds", type=int, default=3, help="windows per target and load, interleaved")
    add("--message-chars", type=int, default=64, help="length of each message's text")
    add("--idle-channels", type=int, default=50, help="memory test: channels")
    add("--idle-members", type=int, default=100, help="memory test: idle members per channel")
    add("--idle-timeout", type=float, default=2.0, help="memory test: ACCORD_IDLE_TIMEOUT")
    add("--targets", nargs="+", choices=list(TARGETS), default=DEFAULT_TARGETS)
    add("--sharding-modes", action="store_true", help="add " + " and ".join(SHARDING_TARGETS))
    add(
        "--compare-tree",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="also accord-fast run from another copy of the project (a changed accord_app/)",
    )
    add(
        "--loads",
        nargs="*",
        choices=["fixed", "saturation"],
        default=["fixed", "saturation"],
        help="none: only the memory test",
    )
    add("--no-memory", dest="memory", action="store_false", help="skip the memory test")
    add("--no-pin", dest="pin", action="store_false", help="do not pin servers and client")
    add("--out", type=Path, help="results file stem (default: results/fanout-<time>)")
    args = parser.parse_args(argv)
    if args.sharding_modes:
        args.targets += [name for name in SHARDING_TARGETS if name not in args.targets]
    for tree in args.compare_tree:
        if not (tree / "accord_app" / "__main__.py").is_file():
            parser.error(f"--compare-tree {tree}: no accord_app/ there")
    return Config(**vars(args))


def chosen_targets(config: Config) -> dict[str, Target]:
    """The targets by name, in the order they were asked for; other trees' last."""
    chosen = {name: TARGETS[name] for name in config.targets}
    for tree in config.compare_tree:
        name = f"accord-fast@{tree.resolve().name}"
        chosen[name] = Target(name, "accord", "fast", tree=tree.resolve())
    return chosen


# -- the server subprocesses ----------------------------------------------------------------------


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(
        0
    )


def pin_to_server_core() -> None:
    """Runs in the child between fork and exec, so every thread the server starts inherits it."""
    os.sched_setaffinity(0, {SERVER_CORE})


def server_command(target: Target, port: int, data_dir: Path) -> list[str]:
    if target.kind == "baseline":
        script = BENCH_DIR / "baseline_broadcast.py"
        return [sys.executable, str(script), "--host", HOST, "--port", str(port), "--ws", target.ws]
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
        self.actors_dir = workdir / "data" / "actors"
        env = {
            **os.environ,
            **LIFTED_LIMITS,
            **target.env,
        }
        if idle_timeout is not None:
            env["ACCORD_IDLE_TIMEOUT"] = str(idle_timeout)
        # A file, not a pipe: nobody reads a pipe during the run, and a full one blocks the server.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                server_command(target, self.port, workdir / "data"),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=target.tree,
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
                raise RuntimeError(f"{self.target.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.target.name} did not start in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _proc(self, name: str) -> str:
        return Path(f"/proc/{self.process.pid}/{name}").read_text()

    def rss_kb(self) -> int:
        for line in self._proc("status").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system time of every thread of the server, from /proc/<pid>/stat."""
        fields = self._proc("stat").rsplit(")", 1)[1].split()  # the name may contain spaces
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def write_calls(self) -> int:
        """write/writev/pwrite system calls so far, every thread (syscw in /proc/<pid>/io)."""
        for line in self._proc("io").splitlines():
            if line.startswith("syscw:"):
                return int(line.split()[1])
        raise RuntimeError("no syscw in /proc/<pid>/io")

    def open_actor_files(self) -> int | None:
        """Actor databases the server holds open: one per awake actor (None: not Accord).
        They are actors/<namespace>/ab/cd/<id>.sqlite3; the alarm index beside them is not."""
        if self.target.kind != "accord":
            return None
        fd_dir, count = Path(f"/proc/{self.process.pid}/fd"), 0
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError, ValueError):  # closed meanwhile, or elsewhere
                path = Path(os.readlink(fd))
                count += (
                    path.suffix == ".sqlite3" and len(path.relative_to(self.actors_dir).parts) == 4
                )
        return count

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
            with inspector_open(server, target.inspected):
                yield server
        finally:
            server.stop()


# What an open inspector page does to a server: keep /inspect/api/stream open and read it.
INSPECTOR_READER = """
import sys, httpx
with httpx.stream("GET", sys.argv[1], timeout=None, trust_env=False) as stream:
    for _ in stream.iter_bytes():
        pass
"""


@contextlib.contextmanager
def inspector_open(server: ServerProcess, inspected: bool) -> Iterator[None]:
    """With `inspected`, a reader of the server's inspector stream (a page's cost to the server:
    a look at its actors twice a second, and the runtime's events heard) runs meanwhile."""
    if not inspected:
        yield
        return
    url = f"{server.http_url}/inspect/api/stream"
    reader = subprocess.Popen([sys.executable, "-c", INSPECTOR_READER, url])
    try:
        yield
    finally:
        reader.terminate()
        reader.wait()


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
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
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
# client speaks just enough RFC 6455 for servers we control, on loopback. Per TCP read it finds
# where the last complete frame ends (reading one header, or every header if a control frame
# may be there) and hands all complete frames of the read to one callback as one bytes object,
# which the Member scans with C-speed bytes methods: no Python code runs per frame.

ZERO_MASK = bytes(4)  # clients must mask; an all-zero key is legal and makes masking a no-op
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
FINAL_TEXT = 0x80 | OP_TEXT  # the first byte of every frame but the rare control frames
CLOSE_BYTE, PING_BYTE = bytes([0x80 | OP_CLOSE]), bytes([0x80 | OP_PING])
JSON_START = b'{"type":'  # how every data frame of both servers starts


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


def complete_frames(data: bytes, on_control: Callable[[int, bytes], None]) -> int:
    """Where the last complete frame in `data` ends (0: none is complete); control frames go
    to `on_control`. Both servers' data frames are JSON objects starting with {"type":, in
    ASCII (our texts are), so a byte 0x88 or 0x89 can only be in a header: without one, no
    close or ping is there, and the last frame alone needs its header read."""
    if CLOSE_BYTE not in data and PING_BYTE not in data:
        end = end_of_last_frame(data)
        if end is not None:
            return end
    return hop_frames(data, on_control)


def end_of_last_frame(data: bytes) -> int | None:
    """Where the last complete text frame ends, from the header before the last {"type": in
    `data`; None if that is not a text frame header we know (then hop_frames decides)."""
    start = data.rfind(JSON_START)
    if start < 2:
        return None
    if start >= 4 and data[start - 4] == FINAL_TEXT and data[start - 3] == 126:
        header, length = start - 4, (data[start - 2] << 8) | data[start - 1]
    elif data[start - 2] == FINAL_TEXT and data[start - 1] < 126:
        header, length = start - 2, data[start - 1]
    else:
        return None
    end = start + length
    return end if end <= len(data) else header  # if incomplete, the frames before it are not


def hop_frames(data: bytes, on_control: Callable[[int, bytes], None]) -> int:
    """complete_frames() the slow way: from header to header. Server frames are unmasked and,
    from these servers, unfragmented."""
    pos, size = 0, len(data)
    while size - pos >= 2:
        length, start = data[pos + 1] & 0x7F, pos + 2
        if length == 126:
            if size - pos < 4:
                break
            length, start = (data[pos + 2] << 8) | data[pos + 3], pos + 4
        elif length == 127:
            if size - pos < 10:
                break
            length, start = int.from_bytes(data[pos + 2 : pos + 10], "big"), pos + 10
        end = start + length
        if end > size:
            break
        if data[pos] != FINAL_TEXT:
            on_control(data[pos] & 0x0F, data[start:end])
        pos = end
    return pos


def handshake(port: int, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class MiniWebSocket(asyncio.Protocol):
    """A client socket. `write()` sends at once; the complete text frames of each TCP read go
    to `on_frames(data)` as one bytes object (headers included), from the read callback."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.on_frames: Callable[[bytes], None] = lambda data: None
        self.transport: asyncio.Transport | None = None
        self.partial = b""  # the start of a frame that the next read completes
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
        if self.partial:
            data, self.partial = self.partial + data, b""
        if not self.opened.done():
            data = self.read_handshake(data)
        end = complete_frames(data, self.on_control)
        if end:
            self.on_frames(data if end == len(data) else data[:end])
        if end < len(data):
            self.partial = data[end:]

    def read_handshake(self, data: bytes) -> bytes:
        """What follows the server's 101 answer; b"" until it is all there (kept in partial)."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.partial = data
            return b""
        status_line = data[: data.find(b"\r\n")]
        if b" 101 " not in status_line:  # e.g. Accord's 404 for an unknown channel
            self.opened.set_exception(ConnectionError(status_line.decode(errors="replace")))
            self.abort()
            return b""
        self.opened.set_result(None)
        return data[end + 4 :]

    def on_control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:  # uvicorn and FastWebSocket ping every 20 s, close without pongs
            self.write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.abort()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

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
    """What the members of one target saw in one window; `measuring` only inside the window."""

    measuring: bool = False
    resend: bool = False  # saturation: each own copy back sends the next message
    sent: int = 0  # messages sent inside the window
    delivered: int = 0  # message frames received inside the window
    # (arrival time, send times found in that read): turned into latencies after the window
    stamps: list[tuple[float, list[bytes]]] = field(default_factory=list)
    sent_total: int = 0  # including warm-up: what the drain waits for
    received_total: int = 0

    def latencies(self) -> list[float]:
        return sorted(now - float(sent) for now, sents in self.stamps for sent in sents)


class Member:
    """One member: its socket and, for the current window, its tally."""

    __slots__ = ("counter", "index", "marker", "padding", "tally", "ws")

    def __init__(self, index: int, ws: MiniWebSocket, padding: str) -> None:
        self.index = index
        self.ws = ws
        self.padding = padding
        # The start of this member's own texts, in its own copies (and in Accord's acks).
        self.marker = b'"message":"%d ' % index
        self.tally = Tally()
        self.counter = 0
        ws.on_frames = self.on_frames

    def frame(self) -> bytes:
        # perf_counter() is comparable only within one process: senders and receivers are here.
        text = f"{self.index} {self.counter} {time.perf_counter()!r} {self.padding}"
        self.counter += 1
        return encode_frame(OP_TEXT, text.encode())

    def send(self, count: int = 1) -> None:
        """`count` messages in one write()."""
        self.ws.write(self.frame() if count == 1 else b"".join(self.frame() for _ in range(count)))
        tally = self.tally
        tally.sent_total += count
        if tally.measuring:
            tally.sent += count

    def on_frames(self, data: bytes) -> None:
        """Count the message frames of one TCP read and keep their send times; acks, presence
        and the like are not counted. In a closed loop, send again for each own copy back."""
        messages = data.count(MESSAGE_PREFIX)
        if not messages:
            return
        tally = self.tally
        tally.received_total += messages
        if tally.measuring:
            tally.delivered += messages
            sent_at = SENT_AT_NOT_ACKS if ACK_PREFIX in data else SENT_AT
            tally.stamps.append((time.perf_counter(), sent_at.findall(data)))
        if tally.resend:
            # Accord acks the sender with a frame that repeats the text: those are not copies.
            own = data.count(self.marker) - data.count(ACK_PREFIX)
            if own > 0:
                self.send(own)


async def send_paced(member: Member, rate: float) -> None:
    """Open loop: send on a fixed schedule whatever the server does (cancelled to stop)."""
    interval = 1 / rate
    # A random phase per member, or all members would send in the same millisecond.
    next_at = time.perf_counter() + random.uniform(0, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        member.send()
        next_at += interval


def busy_cpu_seconds(core: int | None) -> float:
    """CPU time that one core (None: every core) spent busy, all processes, from /proc/stat."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            ticks = [int(value) for value in fields[1:]]
            idle, iowait = ticks[3], ticks[4]
            return (sum(ticks[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no {name} line in /proc/stat")


@dataclass
class Counters:
    """Cumulative counters read at the start and at the end of a window."""

    at: float
    server_cpu: float
    server_writes: int
    client_cpu: float
    busy: float  # every core
    busy_server_core: float  # the server's core, or every core when not pinned
    busy_client_core: float  # the same for the load generator's

    @classmethod
    def read(cls, server: ServerProcess, pinned: bool) -> "Counters":
        return cls(
            time.perf_counter(),
            server.cpu_seconds(),
            server.write_calls(),
            time.process_time(),
            busy_cpu_seconds(None),
            busy_cpu_seconds(SERVER_CORE if pinned else None),
            busy_cpu_seconds(CLIENT_CORE if pinned else None),
        )


@dataclass
class WindowResult:
    """One measured window of one target under one load."""

    target: str
    load: str  # "fixed" or "saturation"
    round: int
    seconds: float
    sent: int
    delivered: int
    p50_ms: float
    p99_ms: float
    server_cpu: float  # seconds
    server_writes: int  # write system calls
    client_cpu: float  # seconds
    other_cpu: float  # seconds, every other process: if high, the machine was not ours alone
    other_server_core: float  # seconds, other processes on the server's core: its lost time
    other_client_core: float  # seconds, other processes on the load generator's core
    undelivered: int  # copies still missing after the drain: a backlog, or frames lost

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.seconds

    @property
    def server_us_per_frame(self) -> float:
        return 1e6 * self.server_cpu / max(1, self.delivered)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


class Group:
    """One target's members for one load: their sockets stay open over that load's windows."""

    def __init__(self, server: ServerProcess, members: list[Member], per_channel: int) -> None:
        self.server = server
        self.members = members
        self.per_channel = per_channel

    @classmethod
    async def open(cls, server: ServerProcess, paths: list[str], config: Config) -> "Group":
        channels = await open_members(server, paths, config.members)
        padding = "x" * max(0, config.message_chars - 32)  # the header is ~32 characters
        sockets = [ws for channel in channels for ws in channel]
        members = [Member(i, ws, padding) for i, ws in enumerate(sockets)]
        await asyncio.sleep(0.5)  # let the joins and their presence frames settle
        return cls(server, members, config.members)

    def close(self) -> None:
        for member in self.members:
            member.ws.close()

    async def window(self, config: Config, load: str, round_no: int) -> WindowResult:
        """Load the server for warm-up + duration, stop, and wait for the copies in flight."""
        tally = Tally()
        for member in self.members:
            member.tally = tally
        senders = self.start(tally, config, load)
        try:
            await asyncio.sleep(config.warmup)
            start = Counters.read(self.server, config.pin)
            tally.measuring = True
            await asyncio.sleep(config.duration)
            tally.measuring = False
            end = Counters.read(self.server, config.pin)
        finally:
            tally.resend = False
            for task in senders:
                task.cancel()
        await self.drain(tally)
        return self.result(tally, start, end, load, round_no)

    def start(self, tally: Tally, config: Config, load: str) -> list[asyncio.Task[None]]:
        if load == "fixed":
            return [asyncio.create_task(send_paced(m, config.rate)) for m in self.members]
        tally.resend = True  # closed loop: driven by the members' read callbacks, no task
        for member in self.members:
            member.send(config.window)
        return []

    async def drain(self, tally: Tally, timeout: float = 3.0) -> None:
        """Give copies sent near the end time to arrive, so undelivered counts only real misses
        and the next window does not receive this one's."""
        deadline = time.perf_counter() + timeout
        expected = tally.sent_total * self.per_channel
        while tally.received_total < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)

    def result(
        self, tally: Tally, start: Counters, end: Counters, load: str, round_no: int
    ) -> WindowResult:
        server_cpu, client_cpu = (
            end.server_cpu - start.server_cpu,
            end.client_cpu - start.client_cpu,
        )
        latencies = tally.latencies()
        return WindowResult(
            target=self.server.target.name,
            load=load,
            round=round_no,
            seconds=end.at - start.at,
            sent=tally.sent,
            delivered=tally.delivered,
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            server_cpu=server_cpu,
            server_writes=end.server_writes - start.server_writes,
            client_cpu=client_cpu,
            other_cpu=max(0.0, end.busy - start.busy - server_cpu - client_cpu),
            other_server_core=max(0.0, end.busy_server_core - start.busy_server_core - server_cpu),
            other_client_core=max(0.0, end.busy_client_core - start.busy_client_core - client_cpu),
            undelivered=tally.sent_total * self.per_channel - tally.received_total,
        )


def rotated(names: list[str], by: int) -> list[str]:
    """The targets' order in round `by`: each takes every position in turn."""
    by %= max(1, len(names))
    return names[by:] + names[:by]


async def measure_throughput(config: Config) -> list[WindowResult]:
    """Every target's server at once; each load's windows interleaved over the rounds."""
    results: list[WindowResult] = []
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(running_server(target, config.pin))
            for name, target in chosen_targets(config).items()
        }
        paths = {
            name: await make_channels(server, config.channels, config.servers)
            for name, server in servers.items()
        }
        for load in config.loads:
            groups: dict[str, Group] = {}
            try:
                for name, server in servers.items():
                    groups[name] = await Group.open(server, paths[name], config)
                for round_no in range(config.rounds):
                    for name in rotated(list(servers), round_no):
                        result = await groups[name].window(config, load, round_no)
                        print(progress_line(result), flush=True)
                        results.append(result)
            finally:
                for group in groups.values():
                    group.close()
            await asyncio.sleep(0.5)  # the closes reach the servers before the next load
    return results


def percent(seconds: float, window: WindowResult) -> float:
    """CPU seconds as a percentage of one core over the window."""
    return 100 * seconds / window.seconds


def progress_line(r: WindowResult) -> str:
    return (
        f"  {r.load:10} round {r.round + 1} {r.target:19} {r.delivered_per_s:9,.0f} frames/s"
        f"  p99 {r.p99_ms:7.1f} ms  srv {percent(r.server_cpu, r):3.0f}%"
        f" (+{percent(r.other_server_core, r):.0f}%)  cli {percent(r.client_cpu, r):3.0f}%"
        f" (+{percent(r.other_client_core, r):.0f}%)"
    )


# -- memory per idle member ----------------------------------------------------------------------


@dataclass
class MemoryResult:
    target: str
    members: int
    channels: int
    rss_before_kb: int
    rss_connected_kb: int  # 1 s after the last member connected
    rss_settled_kb: int  # after the idle timeout: Accord's actors hibernated
    actors_settled: int | None  # actor databases open then (None: no actors)
    rss_awake_kb: int  # once one message per channel woke every actor and reached its members
    actors_awake: int | None
    rss_rehibernated_kb: int  # after the idle timeout again
    actors_rehibernated: int | None

    @property
    def kb_per_member(self) -> float:
        return (self.rss_settled_kb - self.rss_before_kb) / self.members

    @property
    def kb_per_awake_channel(self) -> float:
        """What waking a channel's actor added (its instance, database, per-member state)."""
        return (self.rss_awake_kb - self.rss_settled_kb) / self.channels


async def warm_up(server: ServerProcess, path: str) -> None:
    """One member joins, sends and leaves: lazy imports and first-use caches are paid here."""
    ws = await MiniWebSocket.open(server.port, f"{path}/connect?username=warmup")
    echoed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ws.on_frames = lambda data: None if echoed.done() else echoed.set_result(None)
    try:
        ws.write(encode_frame(OP_TEXT, b"warm-up"))
        async with asyncio.timeout(10):
            await echoed  # Accord answers with an ack first: either frame will do
    finally:
        ws.close()


async def wake_every_channel(channels: list[list[MiniWebSocket]], timeout: float = 10.0) -> None:
    """One message in each channel (its first member sends); returns once every member has its
    copy, or after `timeout`."""
    tally = Tally()
    members = [Member(0, ws, "wake") for channel in channels for ws in channel]
    for member in members:
        member.tally = tally
    for first in members[:: len(channels[0])]:
        first.send()
    expected = len(members)
    deadline = time.perf_counter() + timeout
    while tally.received_total < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)


async def measure_memory(target: Target, config: Config) -> MemoryResult:
    with running_server(target, config.pin, idle_timeout=config.idle_timeout) as server:
        paths = await make_channels(server, config.idle_channels + 1, config.servers)
        await warm_up(server, paths.pop())
        settle = (
            2 * config.idle_timeout + 0.5
        )  # an actor hibernates idle_timeout after its last turn
        await asyncio.sleep(settle)  # the warm-up actor hibernates too
        before = server.rss_kb()
        channels = await open_members(server, paths, config.idle_members)
        try:
            await asyncio.sleep(1)
            connected = server.rss_kb()
            await asyncio.sleep(settle)
            settled, actors_settled = server.rss_kb(), server.open_actor_files()
            await wake_every_channel(channels)
            awake, actors_awake = server.rss_kb(), server.open_actor_files()
            await asyncio.sleep(settle)
            again, actors_again = server.rss_kb(), server.open_actor_files()
        finally:
            for channel in channels:  # no goodbyes: thousands of closing handshakes are slow
                for ws in channel:
                    ws.abort()
            # The sockets close on this loop's next rounds: before the server is stopped (which
            # blocks this loop), or its shutdown would wait for them to answer its close frame.
            await asyncio.sleep(0.2)
        return MemoryResult(
            target.name,
            sum(len(channel) for channel in channels),
            len(channels),
            before,
            connected,
            settled,
            actors_settled,
            awake,
            actors_awake,
            again,
            actors_again,
        )


# -- report ---------------------------------------------------------------------------------------


@dataclass
class Summary:
    """One target under one load: the median of its windows (max for the client's CPU)."""

    target: str
    load: str
    windows: int
    sent_per_s: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # % of one core
    server_us_per_frame: float
    writes_per_frame: float  # write system calls per delivered frame
    client_cpu: float  # % of one core, median
    client_cpu_max: float
    other_server_core: float  # % of the server's core used by other processes
    other_client_core: float  # % of the load generator's core used by other processes
    other_cpu: float  # %, every other process on every core: 200% = both cores
    undelivered: int  # summed over the windows


def summarize(results: list[WindowResult], targets: list[str]) -> list[Summary]:
    summaries = []
    for load in ("fixed", "saturation"):
        for name in targets:
            ws = [r for r in results if r.target == name and r.load == load]
            if not ws:
                continue

            def median(
                value: Callable[[WindowResult], float], ws: list[WindowResult] = ws
            ) -> float:
                return statistics.median(value(r) for r in ws)

            summaries.append(
                Summary(
                    target=name,
                    load=load,
                    windows=len(ws),
                    sent_per_s=median(lambda r: r.sent / r.seconds),
                    delivered_per_s=median(lambda r: r.delivered_per_s),
                    p50_ms=median(lambda r: r.p50_ms),
                    p99_ms=median(lambda r: r.p99_ms),
                    server_cpu=median(lambda r: 100 * r.server_cpu / r.seconds),
                    server_us_per_frame=median(lambda r: r.server_us_per_frame),
                    writes_per_frame=median(lambda r: r.server_writes / max(1, r.delivered)),
                    client_cpu=median(lambda r: 100 * r.client_cpu / r.seconds),
                    client_cpu_max=max(100 * r.client_cpu / r.seconds for r in ws),
                    other_server_core=median(lambda r: percent(r.other_server_core, r)),
                    other_client_core=median(lambda r: percent(r.other_client_core, r)),
                    other_cpu=median(lambda r: percent(r.other_cpu, r)),
                    undelivered=sum(r.undelivered for r in ws),
                )
            )
    return summaries


@dataclass
class Ratio:
    """`numerator` / `denominator` at saturation: the median of the ratios within a round."""

    numerator: str
    denominator: str
    delivered: float  # frames/s ratio
    delivered_range: tuple[float, float]
    cost: float  # server us/frame, numerator / denominator: < 1 = the numerator is cheaper
    target: float


def paired_ratio(results: list[WindowResult], top: str, bottom: str, target: float) -> Ratio | None:
    rounds = {r.round for r in results if r.load == "saturation"}
    pairs = []
    for round_no in sorted(rounds):
        found = {
            r.target: r
            for r in results
            if r.load == "saturation" and r.round == round_no and r.target in (top, bottom)
        }
        if len(found) == 2 and found[bottom].delivered and found[top].delivered:
            pairs.append((found[top], found[bottom]))
    if not pairs:
        return None
    ratios = [a.delivered_per_s / b.delivered_per_s for a, b in pairs]
    costs = [a.server_us_per_frame / b.server_us_per_frame for a, b in pairs]
    return Ratio(
        top,
        bottom,
        statistics.median(ratios),
        (min(ratios), max(ratios)),
        statistics.median(costs),
        target,
    )


def ratios(results: list[WindowResult]) -> list[Ratio]:
    wanted = [
        ("accord-fast", "baseline-fast", TARGET_FAST_VS_BASELINE),
        ("accord-fast", "accord-asgi", TARGET_FAST_VS_ASGI),
        ("baseline-fast", "baseline-asgi", 0.0),
        ("accord-asgi", "baseline-asgi", 0.0),
        ("accord-fast", "accord-fast-metrics-off", TARGET_METRICS_COST),
    ]
    others = sorted({r.target for r in results if r.target.startswith("accord-fast@")})
    wanted += [(name, "accord-fast", 0.0) for name in others]
    found = (paired_ratio(results, top, bottom, target) for top, bottom, target in wanted)
    return [ratio for ratio in found if ratio is not None]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def throughput_table(summaries: list[Summary], config: Config) -> str:
    header = [
        "target",
        "load",
        "sent/s",
        "delivered/s",
        "p50 ms",
        "p99 ms",
        "srv CPU (+others)",
        "srv us/frame",
        "writes/frame",
        "cli CPU, max (+others)",
        "undelivered",
    ]
    rows = [
        [
            s.target,
            load_label(config, s.load),
            f"{s.sent_per_s:,.0f}",
            f"{s.delivered_per_s:,.0f}",
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            f"{s.server_cpu:.0f}% (+{s.other_server_core:.0f}%)",
            f"{s.server_us_per_frame:.2f}",
            f"{s.writes_per_frame:.3f}",
            f"{s.client_cpu:.0f}%, {s.client_cpu_max:.0f}% (+{s.other_client_core:.0f}%)",
            f"{s.undelivered:,}",
        ]
        for s in summaries
    ]
    return markdown_table(header, rows)


def verdict(met: bool) -> str:
    return "meets" if met else "MISSES"


def ratio_lines(found: list[Ratio]) -> list[str]:
    lines = []
    for r in found:
        low, high = r.delivered_range
        goal = (
            f": {verdict(r.delivered >= r.target)} the >= {r.target:g}x target" if r.target else ""
        )
        lines.append(
            f"- {r.numerator} / {r.denominator}: **{r.delivered:.2f}x** delivered/s"
            f" (rounds {low:.2f}-{high:.2f}){goal}; server CPU per frame {r.cost:.2f}x"
        )
    return lines


def latency_line(summaries: list[Summary]) -> str | None:
    fixed = {s.target: s for s in summaries if s.load == "fixed"}
    fast, asgi = fixed.get("accord-fast"), fixed.get("accord-asgi")
    if fast is None or asgi is None:
        return None
    return (
        f"- fixed load, send->receive p99: accord-fast {fast.p99_ms:.1f} ms vs accord-asgi"
        f" {asgi.p99_ms:.1f} ms (p50 {fast.p50_ms:.2f} vs {asgi.p50_ms:.2f}):"
        f" {verdict(fast.p99_ms <= asgi.p99_ms)} 'no worse than the ASGI path'"
    )


def warnings(summaries: list[Summary]) -> list[str]:
    lines = []
    busiest = max((s.other_server_core for s in summaries), default=0.0)
    if busiest > BUSY_MACHINE_CPU:
        lines.append(
            f"- WARNING: other processes used up to {busiest:.0f}% of the servers' core (median"
            " of a target's windows): frames/s and latencies are skewed; compare srv us/frame."
        )
    for s in summaries:
        if s.client_cpu_max > BUSY_CLIENT_CPU:
            lines.append(
                f"- WARNING: the load generator used {s.client_cpu_max:.0f}% of its core in a"
                f" window of {s.target} ({s.load}): the server may have been faster than shown."
            )
    return lines


def memory_table(results: list[MemoryResult]) -> str:
    header = [
        "target",
        "idle members",
        "RSS before",
        "connected",
        "settled",
        "KB/member",
        "actors open",
        "awake (1 msg/channel)",
        "actors open",
        "KB/awake channel",
        "hibernated again",
        "actors open",
    ]

    def actors(count: int | None) -> str:
        return "-" if count is None else str(count)

    rows = [
        [
            m.target,
            f"{m.members:,}",
            f"{m.rss_before_kb:,} KB",
            f"{m.rss_connected_kb:,} KB",
            f"{m.rss_settled_kb:,} KB",
            f"**{m.kb_per_member:.1f}**",
            actors(m.actors_settled),
            f"{m.rss_awake_kb:,} KB",
            actors(m.actors_awake),
            f"{m.kb_per_awake_channel:.0f}",
            f"{m.rss_rehibernated_kb:,} KB",
            actors(m.actors_rehibernated),
        ]
        for m in results
    ]
    return markdown_table(header, rows)


def memory_lines(results: list[MemoryResult]) -> list[str]:
    lines = []
    for m in results:
        if m.target == "accord-fast":
            lines.append(
                f"- accord-fast: {m.kb_per_member:.1f} KB per idle member with its actors"
                f" hibernated ({m.actors_settled} actor databases open):"
                f" {verdict(m.kb_per_member <= TARGET_KB_PER_MEMBER)} the"
                f" <= {TARGET_KB_PER_MEMBER:g} KB target"
            )
    return lines


def load_label(config: Config, load: str) -> str:
    if load == "fixed":
        return f"fixed {config.rate:g}/s/member"
    return f"saturation W={config.window}"


def setup_line(config: Config, pinned: bool) -> str:
    cores = (
        f"servers pinned to core {SERVER_CORE}, load generator to core {CLIENT_CORE}"
        if pinned
        else f"NOT pinned: servers and load generator share {os.cpu_count()} core(s)"
    )
    return (
        f"{config.channels} channels x {config.members} members over {config.servers} servers,"
        f" {config.message_chars}-char messages; {config.rounds} interleaved round(s) of"
        f" {config.warmup:g} s warm-up + {config.duration:g} s measured per target and load;"
        f" memory: {config.idle_channels} x {config.idle_members} idle members; {cores}"
    )


def report(
    config: Config, pinned: bool, windows: list[WindowResult], memory: list[MemoryResult]
) -> str:
    """The whole report, in markdown."""
    parts = [
        f"# Fan-out benchmark, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        setup_line(config, pinned),
    ]
    summaries = summarize(windows, list(chosen_targets(config)))
    if summaries:
        parts += ["", "## Throughput and latency (medians over rounds)", ""]
        parts.append(throughput_table(summaries, config))
        lines = ratio_lines(ratios(windows))
        lines += [line for line in [latency_line(summaries)] if line] + warnings(summaries)
        parts += ["", *lines]
    if memory:
        parts += [
            "",
            "## Memory per idle member",
            "",
            memory_table(memory),
            "",
            *memory_lines(memory),
        ]
    return "\n".join(parts) + "\n"


def write_results(
    stem: Path, config: Config, windows: list[WindowResult], memory: list[MemoryResult], text: str
) -> list[Path]:
    """stem.json (every window) and stem.md (the report)."""
    if not stem.is_absolute() and stem.parent == Path("."):
        stem = RESULTS_DIR / stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "config": asdict(config),
        "summaries": [asdict(s) for s in summarize(windows, list(chosen_targets(config)))],
        "ratios": [asdict(r) for r in ratios(windows)],
        "windows": [asdict(w) for w in windows],
        "memory": [{**asdict(m), "kb_per_member": m.kb_per_member} for m in memory],
    }
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")  # str: the Paths
    md_path.write_text(text)
    return [json_path, md_path]


# -- main -----------------------------------------------------------------------------------------


def prepare_process(config: Config) -> bool:
    """Raise the open-files limit (thousands of sockets) and pin this process; True if pinned.
    The servers started later inherit the limit, and raise their own further."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = (
        config.idle_channels * config.idle_members
        + len(chosen_targets(config)) * config.channels * config.members
        + 256
    )
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    pinned = config.pin and can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})  # the servers re-pin themselves to SERVER_CORE
    return pinned


async def run(config: Config, pinned: bool) -> str:
    config = Config(**{**asdict(config), "pin": pinned})
    print(setup_line(config, pinned), flush=True)
    windows: list[WindowResult] = []
    if config.loads:
        print(f"throughput: {', '.join(chosen_targets(config))} ...", flush=True)
        windows = await measure_throughput(config)
    memory: list[MemoryResult] = []
    if config.memory:
        for name, target in chosen_targets(config).items():
            print(f"memory: {name} ...", flush=True)
            memory.append(await measure_memory(target, config))
    text = report(config, pinned, windows, memory)
    print()
    print(text)
    stem = config.out or Path(f"fanout-{time.strftime('%Y%m%d-%H%M%S')}")
    paths = write_results(stem, config, windows, memory, text)
    print("wrote " + ", ".join(str(path) for path in paths))
    return text


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
