"""What abusive clients can do to normal members: the limits of Accord, measured.

    .venv/bin/python benchmarks/abuse.py             # about 4 minutes
    .venv/bin/python benchmarks/abuse.py --rounds 1  # 80 seconds
    .venv/bin/python benchmarks/abuse.py --json abuse.json

Starts `python -m accord_app` on a fresh data folder (its default limits) and times 8 normal
members (each sends one message every 250 ms, in turn, and times send→ack), alone and beside
each kind of abuser in turn:

- flood: 30 connections, each sending messages as fast as it can;
- retries: one connection resending one stored message (same nonce) as fast as it can;
- invalid: one connection sending malformed frames as fast as it can;
- replays: 20 connections asking again and again for a channel's whole history (2000
  messages), each at the rate a connection may send;
- frame floods, on a raw socket with frames written by hand (accord_app/lab/floods.py), one
  connection at a time that connects again whenever it is cut off: fragments (a message that
  never ends), pings_unread and pings_read (pongs never read / read), pongs (unasked),
  text_ping (the "ping" the server answers by itself), bad_json.

    .venv/bin/python benchmarks/abuse.py --ws asgi   # the ASGI WebSocket path (default: fast)

and beside HTTP abusers, while an HTTP victim (from the members' address) also times
`GET /api/servers/{id}/channels` every 100 ms:

- slowloris: 1000 connections that each send a request's first bytes, then one more byte
  every 2 s, never finishing the headers (the server runs with 1024 open files at most);
- huge-header: one connection after another sending a 64 MiB header as fast as it can;
- activity: 4 loops asking `GET .../activity` of a server of 200 channels (200 actor calls);
- announcements: 4 loops posting announcements to that server, with its admin token (a
  privileged script run amok; without the token they are refused outright);
- requests: 8 loops asking `GET /api/servers` as fast as they can (a plain request flood).

Abusers run in a process of their own: in this one they would slow the very clocks that time
the normal members (parsing 10 000 replayed frames takes the client longer than the server).
Rounds interleave the scenarios (idle, flood, ..., idle, flood, ...), so a slow moment of the
machine spreads over all of them; the table gives the median over rounds of each figure, and
the ratio of the normal members' p99 to the idle one, over the whole window and without its
first second, when the abusers connect and spend the bursts the limits allow. A last table puts
every scenario's p99 past the first second (the members', and the HTTP victim's) beside its
idle one, with the ratio; the target is within 2x.

How it can mislead: server, abusers and members share 2 cores on this machine, so an abuser
that takes a whole core slows the server by the CPU it takes, whatever the server does; all
clients are on loopback (127.0.0.2 and 127.0.0.3 for members, and an address of its own from
127.0.0.10 on for each kind of abuser, so the per-address limits tell them apart and one
scenario's penalty box is not the next one's), and every ack waits for an fsync, whose time
varies.
Loopback only; every abuser stops after its window.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from accord_app.cluster.ports import free_port
from accord_app.lab import floods

WINDOW_SECONDS = 6.0
# Eight members, each a message every 250 ms: 4/s, under a connection's 5/s, and four from each
# of two addresses, 16/s an address, under its 20/s (at every 100 ms, half of their messages
# were refused rate_limited, and only acks were timed).
NORMAL_MEMBERS = 8
SEND_EVERY = 0.25
SCENARIOS = {"flood": 30, "retries": 1, "invalid": 1, "replays": 20}
FRAME_FLOODS = list(floods.FLOODS)

# All of 127/8 is loopback on Linux: members and abusers come from different addresses, as they
# would from different machines, so the members do not share the abusers' per-address limits.
NORMAL_ADDRESS = "127.0.0.2"
MEMBER_ADDRESSES = [NORMAL_ADDRESS, "127.0.0.3"]


def abuser_address(kind: str) -> str:
    """Each kind of abuser comes from an address of its own: one scenario's debts and penalty
    box (an address cut off for flooding waits 10 s) are not the next one's."""
    kinds = [*SCENARIOS, *FRAME_FLOODS, *HTTP_SCENARIOS]
    return f"127.0.0.{10 + kinds.index(kind)}"


def client(url: str, address: str) -> Any:
    return connect(url, compression=None, proxy=None, local_addr=(address, 0))


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


# -- normal members (this process) -----------------------------------------------------------


async def normal_member(
    url: str, name: str, address: str, seconds: float, offset: float
) -> list[tuple[float, float]]:
    """One message every SEND_EVERY, `offset` seconds into each period; (seconds into the window,
    send→ack ms) for each."""
    timed: list[tuple[float, float]] = []
    async with client(f"{url}?username={name}", address) as ws:
        await recv_json(ws)  # presence
        opened = time.monotonic()
        due = opened + offset
        await asyncio.sleep(offset)
        while time.monotonic() < opened + seconds:
            nonce = uuid.uuid4().hex
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "message": "hi", "nonce": nonce}))
            while True:
                frame = await recv_json(ws)
                if frame.get("nonce") == nonce:
                    break
            if frame["type"] == "ack":
                latency = (time.perf_counter() - started) * 1000
                timed.append((time.monotonic() - opened, latency))
            due += SEND_EVERY  # on a schedule: slow acks do not thin out the samples
            await asyncio.sleep(max(0.0, due - time.monotonic()))
    return timed


async def normal_members(url: str, seconds: float) -> dict[str, float]:
    # In turn, not all at once: sends that share a commit (and whose echoes reach this process
    # in one burst) would make the p99 that of a few dozen fsyncs.
    runs = await asyncio.gather(
        *(
            normal_member(
                url,
                f"normal{n}",
                MEMBER_ADDRESSES[n % len(MEMBER_ADDRESSES)],
                seconds,
                n * SEND_EVERY / NORMAL_MEMBERS,
            )
            for n in range(NORMAL_MEMBERS)
        )
    )
    return with_steady([sample for run in runs for sample in run])


def with_steady(timed: list[tuple[float, float]]) -> dict[str, float]:
    """summary() of (seconds into the window, ms) samples, and the p99 after the first second."""
    return {
        **summary([latency for _, latency in timed]),
        # Without the first second, when the abusers connect and spend their bursts: what the
        # limits leave them once those are gone.
        "p99_after_1s_ms": summary([latency for at, latency in timed if at >= 1.0])["p99_ms"],
    }


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"count": 0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "count": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[round(0.99 * (len(ordered) - 1))],
    }


# -- abusers (a process of their own: `abuse.py --abuse KIND URL`) ----------------------------


async def drain(ws: ClientConnection, tally: dict[str, float], stop: float) -> None:
    """Count what the server sends back, until `stop`."""
    try:
        while time.monotonic() < stop:
            try:
                data = await asyncio.wait_for(ws.recv(), max(0.01, stop - time.monotonic()))
            except TimeoutError:
                return
            tally["bytes"] += len(data)
            kind = json.loads(data).get("type", "?")
            tally[kind] = tally.get(kind, 0) + 1
    except ConnectionClosed:
        tally["disconnected"] = tally.get("disconnected", 0) + 1


async def abuser(url: str, name: str, kind: str, stop: float, tally: dict[str, float]) -> None:
    try:
        ws = await client(f"{url}?username={name}", abuser_address(kind))
    except (InvalidHandshake, OSError):
        tally["refused"] = tally.get("refused", 0) + 1
        return
    async with ws:
        reader = asyncio.create_task(drain(ws, tally, stop))
        nonce = uuid.uuid4().hex
        with contextlib.suppress(ConnectionClosed):  # closed while sending: drain() counts it
            while time.monotonic() < stop and not reader.done():
                if kind == "flood":
                    await ws.send("flood " + uuid.uuid4().hex)
                elif kind == "retries":
                    await ws.send(json.dumps({"type": "message", "message": "x", "nonce": nonce}))
                elif kind == "invalid":
                    await ws.send('{"type": "nonsense"}')
                else:  # replays, at the rate a connection may send
                    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0)
        await reader


async def abuse(kind: str, url: str, seconds: float) -> dict[str, float]:
    if kind in FRAME_FLOODS:
        return await asyncio.to_thread(frame_flood, kind, url, seconds)
    stop = time.monotonic() + seconds
    tally: dict[str, float] = {"bytes": 0}
    names = [f"{kind}{n}" for n in range(SCENARIOS[kind])]
    await asyncio.gather(*(abuser(url, name, kind, stop, tally) for name in names))
    tally["bytes_per_second"] = tally.pop("bytes") / seconds
    return tally


async def beside_abusers(kind: str, target: str, quiet: str) -> dict[str, Any]:
    """Normal members in the quiet channel while abusers of one kind run in another process."""
    abusers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--abuse", kind, target,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert abusers.stdout is not None
    await abusers.stdout.readline()  # "ready": imports done, the window starts now
    normal = await normal_members(quiet, WINDOW_SECONDS)
    tally = json.loads(await abusers.stdout.readline())
    await abusers.wait()
    return {"normal": normal, "abusers": tally}


# -- HTTP abusers and the HTTP victim ---------------------------------------------------------

# Each HTTP scenario: how many abusers run at once. "http-idle" runs none: the HTTP victim's
# own baseline, measured in the same rounds.
HTTP_SCENARIOS = {
    "http-idle": 0,
    "slowloris": 1000,
    "huge-header": 1,
    "activity": 4,
    "announcements": 4,
    "requests": 8,
}
SERVER_FILES = 1024
BIG_SERVER_CHANNELS = 200
HUGE_HEADER_BYTES = 64 * 1024 * 1024
# The benchmark's server takes this admin token, and the announcements' abuser sends it.
ADMIN_TOKEN = "abuse-benchmark-token"


async def http_victim(http_url: str, path: str, seconds: float) -> dict[str, float]:
    """`GET path` every 100 ms from the members' address, on a connection of its own each
    time (as a browser opening a page); a refusal or a timeout counts as the time it took."""
    timed: list[tuple[float, float]] = []
    transport = httpx.AsyncHTTPTransport(local_address=NORMAL_ADDRESS)
    async with httpx.AsyncClient(
        base_url=http_url, transport=transport, trust_env=False, timeout=10,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as http:  # fmt: skip
        opened = time.monotonic()
        while time.monotonic() < opened + seconds:
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await http.get(path)
            timed.append((time.monotonic() - opened, (time.perf_counter() - started) * 1000))
            await asyncio.sleep(0.1)
    return with_steady(timed)


def count(tally: dict[str, float], key: str, amount: float = 1) -> None:
    tally[key] = tally.get(key, 0) + amount


def status_of(answer: bytes) -> str:
    """ "answered 408" for an HTTP answer's first bytes; "closed" for nothing at all."""
    return (
        f"answered {answer.split(b' ', 2)[1].decode()}" if answer.startswith(b"HTTP/") else "closed"
    )


async def slowloris(host: str, port: int, stop: float, tally: dict[str, float]) -> None:
    """A request's first bytes, then a byte every 2 s: the headers never end."""
    address = abuser_address("slowloris")
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(address, 0))
    except OSError:
        count(tally, "refused")
        return
    try:
        writer.write(b"GET /api/servers HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while time.monotonic() < stop:
            try:
                answer = await asyncio.wait_for(reader.read(200), 2.0)
            except TimeoutError:
                writer.write(b"X")
                await writer.drain()
                continue
            count(tally, status_of(answer))  # the server answered, or hung up
            return
        count(tally, "held to the end")
    except OSError:
        count(tally, "closed")
    finally:
        writer.close()


async def huge_header(host: str, port: int, stop: float, tally: dict[str, float]) -> None:
    """Connection after connection, each sending one request with a 64 MiB header."""
    chunk = b"a" * (1024 * 1024)
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(abuser_address("huge-header"), 0)
            )
        except OSError:
            count(tally, "refused")
            await asyncio.sleep(0.1)
            continue
        try:
            writer.write(b"GET /api/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            sent = 0
            while sent < HUGE_HEADER_BYTES and time.monotonic() < stop:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
            count(tally, "header MiB sent", sent / 2**20)
            writer.write(b"\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(200), max(0.1, stop - time.monotonic()))
            status = status_of(answer)
        except (OSError, TimeoutError):
            status = "cut off"
        finally:
            writer.close()
        count(tally, status)


async def amplifier(
    http_url: str, server_path: str, kind: str, stop: float, tally: dict[str, float]
) -> None:
    """GET .../activity, POST .../announcements with the admin token, or GET /api/servers, in
    a loop."""
    transport = httpx.AsyncHTTPTransport(local_address=abuser_address(kind))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(
        base_url=http_url, transport=transport, trust_env=False, timeout=10, headers=headers
    ) as http:
        while time.monotonic() < stop:
            try:
                if kind == "activity":
                    answer = await http.get(f"{server_path}/activity")
                elif kind == "requests":
                    answer = await http.get("/api/servers")
                else:
                    body = {"message": f"sale {uuid.uuid4().hex[:8]}"}
                    answer = await http.post(f"{server_path}/announcements", json=body)
                status = str(answer.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            count(tally, f"answered {status}")


async def http_abuse(kind: str, target: str, seconds: float) -> dict[str, float]:
    """The HTTP abusers of one kind; `target` is the big server's URL (http://host:port/api/
    servers/ID)."""
    stop = time.monotonic() + seconds
    tally: dict[str, float] = {}
    url = httpx.URL(target)
    host, port = url.host, url.port or 80
    http_url, server_path = f"http://{host}:{port}", url.path
    count = HTTP_SCENARIOS[kind]
    if kind == "slowloris":
        jobs = [slowloris(host, port, stop, tally) for _ in range(count)]
    elif kind == "huge-header":
        jobs = [huge_header(host, port, stop, tally) for _ in range(count)]
    else:
        jobs = [amplifier(http_url, server_path, kind, stop, tally) for _ in range(count)]
    await asyncio.gather(*jobs)
    if kind == "http-idle":
        await asyncio.sleep(max(0.0, stop - time.monotonic()))
    return tally


async def beside_http_abusers(kind: str, target: str, quiet: str) -> dict[str, Any]:
    """Normal members in the quiet channel, and the HTTP victim, while HTTP abusers of one
    kind run in another process."""
    abusers = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--abuse", kind, target,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert abusers.stdout is not None
    await abusers.stdout.readline()  # "ready"
    http_url = target.split("/api/", 1)[0]
    victim_path = "/api/" + target.split("/api/", 1)[1] + "/channels"
    normal, victim = await asyncio.gather(
        normal_members(quiet, WINDOW_SECONDS),
        http_victim(http_url, victim_path, WINDOW_SECONDS),
    )
    tally = json.loads(await abusers.stdout.readline())
    await abusers.wait()
    return {"normal": normal, "http_victim": victim, "abusers": tally}


async def prepare_http(http_url: str) -> str:
    """The big server the HTTP scenarios aim at: BIG_SERVER_CHANNELS channels."""
    async with httpx.AsyncClient(base_url=http_url, trust_env=False) as http:
        server_id = (await http.post("/api/servers", json={"name": "Big"})).json()["id"]
        for number in range(BIG_SERVER_CHANNELS):
            path = f"/api/servers/{server_id}/channels"
            await http.post(path, json={"name": f"channel {number}"})
    return f"{http_url}/api/servers/{server_id}"


def report_http(results: dict[str, Any]) -> None:
    idle = results["http-idle"]
    victim = idle["http_victim"]
    print(
        f"HTTP victim alone: p50 {victim['p50_ms']:.1f} ms, p99 {victim['p99_ms']:.1f} ms;"
        f" members p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms"
    )
    for kind in HTTP_SCENARIOS:
        if kind == "http-idle" or kind not in results:
            continue
        figures, mine = results[kind], results[kind]["http_victim"]
        got = ", ".join(f"{key} {value:.0f}" for key, value in figures["abusers"].items())
        print(
            f"{kind:13} HTTP victim p50 {mine['p50_ms']:6.1f} ms, p99 {mine['p99_ms']:6.1f} ms"
            f" ({mine['p99_ms'] / victim['p99_ms']:.1f}x idle); members p50"
            f" {figures['p50_ms']:5.1f} ms, p99 {figures['p99_ms']:5.1f} ms"
            f" ({figures['p99_ms'] / idle['p99_ms']:.1f}x), after 1 s"
            f" {figures['p99_after_1s_ms']:5.1f} ms; server CPU {figures['server_cpu']:3.0f}%\n"
            f"              abusers got: {got}"
        )


# -- frame floods (the abusers' process too) -------------------------------------------------


def frame_flood(kind: str, url: str, seconds: float) -> dict[str, float]:
    """One raw-socket flooder after another, for `seconds`: cut off, it connects again (a
    refused connection waits 0.1 s), as a script in a loop would."""
    stop = time.monotonic() + seconds
    tally: dict[str, float] = {"connections": 0, "refused": 0, "frames": 0, "bytes": 0}
    cut_offs: list[float] = []
    while (left := stop - time.monotonic()) > 0.05:
        name = f"{kind}{tally['connections'] + tally['refused']:.0f}"
        try:
            result = floods.flood(f"{url}?username={name}", kind, left, abuser_address(kind))
        except (ConnectionError, OSError):
            tally["refused"] += 1
            time.sleep(0.1)
            continue
        tally["connections"] += 1
        tally["frames"] += result.frames
        tally["bytes"] += result.received_bytes
        if result.cut_off_after is not None:
            cut_offs.append(result.cut_off_after * 1000)
            code = f"closed_{result.close_code}"
            tally[code] = tally.get(code, 0) + 1
    tally["cut_off_max_ms"] = max(cut_offs, default=float("nan"))
    tally["bytes_per_second"] = tally.pop("bytes") / seconds
    return tally


def rss_mib(pid: int) -> float:
    """A process's resident memory (Linux's /proc; 0 elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def rss_growth_mib(pid: int, until: "asyncio.Future[Any]") -> float:
    """How far the server's RSS rose above its start until `until` is done (every 50 ms)."""
    before = peak = rss_mib(pid)
    while not until.done():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(0.05)
    return peak - before


# -- the run ---------------------------------------------------------------------------------


async def prepare(base: str, http_url: str) -> tuple[str, str]:
    """A quiet channel, and a busy one with 2000 messages for the replays."""
    async with httpx.AsyncClient(base_url=http_url, trust_env=False) as http:
        server_id = (await http.post("/api/servers", json={"name": "Abuse"})).json()["id"]
        paths = []
        for name in ["quiet", "busy"]:
            channel = await http.post(f"/api/servers/{server_id}/channels", json={"name": name})
            paths.append(f"/api/servers/{server_id}/channels/{channel.json()['id']}/connect")
    quiet, busy = (f"{base}{path}" for path in paths)
    async with client(f"{busy}?username=writer", NORMAL_ADDRESS) as ws:
        await recv_json(ws)
        for number in range(2000):
            await ws.send(f"history {number}")
        acks = 0
        while acks < 2000:
            acks += (await recv_json(ws))["type"] == "ack"
    return quiet, busy


async def one_window(kind: str, quiet: str, busy: str, big: str) -> dict[str, Any]:
    if kind == "idle":
        return {"normal": await normal_members(quiet, WINDOW_SECONDS)}
    if kind in HTTP_SCENARIOS:
        return await beside_http_abusers(kind, big, quiet)
    return await beside_abusers(kind, busy if kind == "replays" else quiet, quiet)


async def measure(
    quiet: str, busy: str, big: str, rounds: int, server: int, kinds: list[str]
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            cpu_before = cpu_seconds(server)
            running = asyncio.ensure_future(one_window(kind, quiet, busy, big))
            rss = asyncio.ensure_future(rss_growth_mib(server, running))
            result = await running
            # The server's CPU over the window (and the close that follows), in % of one core.
            result["normal"]["server_cpu"] = (
                100 * (cpu_seconds(server) - cpu_before) / WINDOW_SECONDS
            )
            result["normal"]["rss_growth_mib"] = await rss
            runs[kind].append(result)
            await asyncio.sleep(1.5)  # buckets refill between scenarios
    return {kind: {"rounds": results, **medians(results)} for kind, results in runs.items()}


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    def median_of(part: str, key: str) -> float:
        return statistics.median(result[part].get(key, 0) for result in results)

    figures: dict[str, Any] = {
        "p50_ms": median_of("normal", "p50_ms"),
        "p99_ms": median_of("normal", "p99_ms"),
        "p99_after_1s_ms": median_of("normal", "p99_after_1s_ms"),
        "server_cpu": median_of("normal", "server_cpu"),
        "rss_growth_mib": median_of("normal", "rss_growth_mib"),
    }
    if "http_victim" in results[0]:
        figures["http_victim"] = {
            key: median_of("http_victim", key) for key in ("p50_ms", "p99_ms", "p99_after_1s_ms")
        }
    if "abusers" in results[0]:
        keys = sorted({key for result in results for key in result["abusers"]})
        figures["abusers"] = {key: median_of("abusers", key) for key in keys}
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux's /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def few_files() -> None:
    """In the server's process: 1024 open files at most, a common default (ulimit -n)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FILES, SERVER_FILES))


@contextlib.contextmanager
def serving(port: int, data: Path, env: dict[str, str]) -> Iterator[int]:
    variables = {**os.environ, **env, "ACCORD_DATA_DIR": str(data), "ACCORD_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "accord_app"], env=variables, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, preexec_fn=few_files,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api", trust_env=False)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield server.pid
    finally:
        server.terminate()
        server.wait(10)


def report(results: dict[str, Any]) -> None:
    idle = results["idle"]
    print(
        f"normal members alone: p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms,"
        f" after 1 s {idle['p99_after_1s_ms']:.1f} ms (server CPU {idle['server_cpu']:.0f}%,"
        f" RSS +{idle['rss_growth_mib']:.1f} MiB)"
    )
    for kind in [*SCENARIOS, *FRAME_FLOODS]:
        if kind not in results:
            continue
        figures = results[kind]
        ratio = figures["p99_ms"] / idle["p99_ms"]
        steady = figures["p99_after_1s_ms"] / idle["p99_after_1s_ms"]
        got = ", ".join(f"{key} {value:.0f}" for key, value in figures["abusers"].items())
        print(
            f"{kind:8} members p50 {figures['p50_ms']:5.1f} ms, p99 {figures['p99_ms']:5.1f} ms"
            f" ({ratio:.1f}x idle), after 1 s {figures['p99_after_1s_ms']:5.1f} ms"
            f" ({steady:.1f}x); server CPU {figures['server_cpu']:3.0f}%,"
            f" RSS +{figures['rss_growth_mib']:.1f} MiB\n"
            f"         abusers got: {got}"
        )


TARGET_RATIO = 2.0


def report_steady(results: dict[str, Any]) -> None:
    """Every scenario's p99 past the first second beside its idle one (the members beside
    "idle", the HTTP victim and the members of HTTP scenarios beside "http-idle"), with the
    ratio, and whether it is within TARGET_RATIO."""
    rows = []
    for kind, figures in results.items():
        if kind in ("idle", "http-idle"):
            continue
        idle = results["http-idle" if kind in HTTP_SCENARIOS else "idle"]
        rows.append((kind, "members", idle["p99_after_1s_ms"], figures["p99_after_1s_ms"]))
        if "http_victim" in figures:
            victim, alone = figures["http_victim"], idle["http_victim"]
            rows.append((kind, "HTTP victim", alone["p99_after_1s_ms"], victim["p99_after_1s_ms"]))
    print(f"\np99 past the first second (target: within {TARGET_RATIO:g}x idle)")
    print(f"{'scenario':14} {'who':12} {'idle p99':>9} {'p99':>9} {'ratio':>6}")
    for kind, who, idle_p99, p99 in rows:
        ratio = p99 / idle_p99
        over = "" if ratio <= TARGET_RATIO else "  over"
        print(f"{kind:14} {who:12} {idle_p99:6.1f} ms {p99:6.1f} ms {ratio:5.1f}x{over}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--ws", choices=["fast", "asgi"], default="fast", help="the WebSocket path (ACCORD_WS)"
    )
    parser.add_argument("--abuse", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    every = ["idle", *SCENARIOS, *FRAME_FLOODS, *HTTP_SCENARIOS]
    parser.add_argument(
        "--only", nargs="+", choices=every, default=every, help="these scenarios (default: all)"
    )
    args = parser.parse_args(argv)
    if args.abuse:  # the abusers' process, started by beside_abusers()
        print("ready", flush=True)
        kind, target = args.abuse
        run = http_abuse if kind in HTTP_SCENARIOS else abuse
        print(json.dumps(asyncio.run(run(kind, target, WINDOW_SECONDS))), flush=True)
        return
    kinds = [kind for kind in every if kind in args.only or kind in ("idle", "http-idle")]
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="accord-abuse-"))
    http_url, base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    # The history is written with the limits lifted, then the server starts again with its
    # defaults, which are what is measured.
    limits = ["RATE_LIMIT", "RATE_BURST", "CLIENT_RATE_LIMIT", "CLIENT_RATE_BURST"]
    limits += ["CLIENT_REQUEST_RATE", "CLIENT_REQUEST_BURST"]
    with serving(port, data, {f"ACCORD_{name}": "100000" for name in limits}):
        quiet, busy = asyncio.run(prepare(base, http_url))
        big = asyncio.run(prepare_http(http_url))
    measured = {"ACCORD_ADMIN_TOKEN": ADMIN_TOKEN, "ACCORD_WS": args.ws}
    with serving(port, data, measured) as pid:
        results = asyncio.run(measure(quiet, busy, big, args.rounds, pid, kinds))
    report(results)
    report_http(results)
    report_steady(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
