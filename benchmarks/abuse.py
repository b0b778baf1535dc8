"""What abusive clients can do to normal members: the limits of Accord, measured.

    .venv/bin/python benchmarks/abuse.py             # about 4 minutes
    .venv/bin/python benchmarks/abuse.py --rounds 1  # 80 seconds
    .venv/bin/python benchmarks/abuse.py --json abuse.json

Starts `python -m accord_app` on a fresh data folder (its default limits) and times 4 normal
members (each sends one message every 100 ms and times send→ack), alone and beside each kind of
abuser in turn:

- flood: 30 connections, each sending messages as fast as it can;
- retries: one connection resending one stored message (same nonce) as fast as it can;
- invalid: one connection sending malformed frames as fast as it can;
- replays: 20 connections asking again and again for a channel's whole history (2000
  messages), each at the rate a connection may send.

Abusers run in a process of their own: in this one they would slow the very clocks that time
the normal members (parsing 10 000 replayed frames takes the client longer than the server).
Rounds interleave the scenarios (idle, flood, ..., idle, flood, ...), so a slow moment of the
machine spreads over all of them; the table gives the median over rounds of each figure, and
the ratio of the normal members' p99 to the idle one (target: within 2x), over the whole window
and without its first second, when the abusers connect and spend the bursts the limits allow.

How it can mislead: server, abusers and members share 2 cores on this machine, so an abuser
that takes a whole core slows the server by the CPU it takes, whatever the server does; all
clients are on loopback (addresses 127.0.0.2 for members, 127.0.0.3 for abusers, so the
per-address limits tell them apart), and every ack waits for an fsync, whose time varies.
Loopback only; every abuser stops after its window.
"""

import argparse
import asyncio
import contextlib
import json
import os
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

WINDOW_SECONDS = 6.0
NORMAL_MEMBERS = 4
SCENARIOS = {"flood": 30, "retries": 1, "invalid": 1, "replays": 20}

# All of 127/8 is loopback on Linux: members and abusers come from different addresses, as they
# would from different machines, so the members do not share the abusers' per-address limits.
NORMAL_ADDRESS, ABUSER_ADDRESS = "127.0.0.2", "127.0.0.3"


def client(url: str, address: str) -> Any:
    return connect(url, compression=None, proxy=None, local_addr=(address, 0))


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


# -- normal members (this process) -----------------------------------------------------------


async def normal_member(url: str, name: str, seconds: float) -> list[tuple[float, float]]:
    """One message every 100 ms; (seconds into the window, send→ack ms) for each."""
    timed: list[tuple[float, float]] = []
    async with client(f"{url}?username={name}", NORMAL_ADDRESS) as ws:
        await recv_json(ws)  # presence
        opened = time.monotonic()
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
            await asyncio.sleep(0.1)
    return timed


async def normal_members(url: str, seconds: float) -> dict[str, float]:
    names = [f"normal{n}" for n in range(NORMAL_MEMBERS)]
    runs = await asyncio.gather(*(normal_member(url, name, seconds) for name in names))
    timed = [sample for run in runs for sample in run]
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
        ws = await client(f"{url}?username={name}", ABUSER_ADDRESS)
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


async def measure(quiet: str, busy: str, rounds: int, server: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ["idle", *SCENARIOS]}
    for _ in range(rounds):
        for kind in ["idle", *SCENARIOS]:
            cpu_before = cpu_seconds(server)
            if kind == "idle":
                result = {"normal": await normal_members(quiet, WINDOW_SECONDS)}
            else:
                target = busy if kind == "replays" else quiet
                result = await beside_abusers(kind, target, quiet)
            # The server's CPU over the window (and the close that follows), in % of one core.
            result["normal"]["server_cpu"] = (
                100 * (cpu_seconds(server) - cpu_before) / WINDOW_SECONDS
            )
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


@contextlib.contextmanager
def serving(port: int, data: Path, env: dict[str, str]) -> Iterator[int]:
    variables = {**os.environ, **env, "ACCORD_DATA_DIR": str(data), "ACCORD_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "accord_app"], env=variables, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
        f" after 1 s {idle['p99_after_1s_ms']:.1f} ms (server CPU {idle['server_cpu']:.0f}%)"
    )
    for kind in SCENARIOS:
        figures = results[kind]
        ratio = figures["p99_ms"] / idle["p99_ms"]
        steady = figures["p99_after_1s_ms"] / idle["p99_after_1s_ms"]
        got = ", ".join(f"{key} {value:.0f}" for key, value in figures["abusers"].items())
        print(
            f"{kind:8} members p50 {figures['p50_ms']:5.1f} ms, p99 {figures['p99_ms']:5.1f} ms"
            f" ({ratio:.1f}x idle), after 1 s {figures['p99_after_1s_ms']:5.1f} ms"
            f" ({steady:.1f}x); server CPU {figures['server_cpu']:3.0f}%\n"
            f"         abusers got: {got}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--abuse", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.abuse:  # the abusers' process, started by beside_abusers()
        print("ready", flush=True)
        print(json.dumps(asyncio.run(abuse(*args.abuse, WINDOW_SECONDS))), flush=True)
        return
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="accord-abuse-"))
    http_url, base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    # The history is written with the limits lifted, then the server starts again with its
    # defaults, which are what is measured.
    limits = ["RATE_LIMIT", "RATE_BURST", "CLIENT_RATE_LIMIT", "CLIENT_RATE_BURST"]
    with serving(port, data, {f"ACCORD_{name}": "100000" for name in limits}):
        quiet, busy = asyncio.run(prepare(base, http_url))
    with serving(port, data, {}) as pid:
        results = asyncio.run(measure(quiet, busy, args.rounds, pid))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
