"""What abusive clients can do to a normal member: the limits of Accord, measured.

    .venv/bin/python benchmarks/abuse.py             # about a minute
    .venv/bin/python benchmarks/abuse.py --json abuse.json

Starts `python -m accord_app` on a fresh data folder (its default limits), then measures a
normal member (one message every 100 ms, timed send→ack) alone, and beside each kind of
abuser in turn, all from this process on loopback:

- flood: 30 connections, each sending messages as fast as it can;
- retries: one connection resending one stored message (same nonce) 500 times;
- invalid: one connection sending malformed frames as fast as it can;
- replays: 20 connections asking again and again for a channel's whole history (2000
  messages), each within its own rate.

For each it reports what the abuser got (acks, error frames, bytes per second, whether it was
disconnected) and the normal member's p50/p99; the target is a p99 within 2x of the idle one.
Loopback only; every abuser stops after its window.
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
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
from websockets.exceptions import ConnectionClosed

WINDOW_SECONDS = 6.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


# Clients come from different loopback addresses (all of 127/8 is loopback on Linux), as they
# would from different machines: the normal member does not share the abusers' limits.
NORMAL_ADDRESS, ABUSER_ADDRESS = "127.0.0.2", "127.0.0.3"


def client(url: str, address: str) -> Any:
    return connect(url, compression=None, proxy=None, local_addr=(address, 0))


async def normal_member(url: str, seconds: float) -> list[float]:
    """One message every 100 ms; the send→ack times, in ms."""
    latencies: list[float] = []
    async with client(f"{url}?username=normal", NORMAL_ADDRESS) as ws:
        await recv_json(ws)  # presence
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            nonce = uuid.uuid4().hex
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "message": "hi", "nonce": nonce}))
            while True:
                frame = await recv_json(ws)
                if frame.get("nonce") == nonce:
                    break
            if frame["type"] == "ack":
                latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)
    return latencies


async def drain(ws: ClientConnection, tally: dict[str, float], stop: float) -> None:
    """Count what the server sends back, until `stop`."""
    try:
        while time.monotonic() < stop:
            try:
                data = await asyncio.wait_for(ws.recv(), max(0.01, stop - time.monotonic()))
            except TimeoutError:
                return
            tally["bytes"] += len(data)
            frame = json.loads(data)
            tally[frame.get("type", "?")] = tally.get(frame.get("type", "?"), 0) + 1
    except ConnectionClosed:
        tally["disconnected"] = tally.get("disconnected", 0) + 1


async def abuser(url: str, name: str, kind: str, stop: float, tally: dict[str, float]) -> None:
    try:
        async with client(f"{url}?username={name}", ABUSER_ADDRESS) as ws:
            reader = asyncio.create_task(drain(ws, tally, stop))
            nonce = uuid.uuid4().hex
            while time.monotonic() < stop and not reader.done():
                if kind == "flood":
                    await ws.send("flood " + uuid.uuid4().hex)
                elif kind == "retries":
                    await ws.send(json.dumps({"type": "message", "message": "x", "nonce": nonce}))
                elif kind == "invalid":
                    await ws.send('{"type": "nonsense"}')
                else:  # replays, at the rate a connection is allowed
                    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0)
            await reader
    except (ConnectionClosed, OSError) as error:
        tally["refused"] = tally.get("refused", 0) + 1
        tally["last_error"] = 0 if not str(error) else 1


SCENARIOS = {"flood": 30, "retries": 1, "invalid": 1, "replays": 20}


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


async def measure(quiet: str, busy: str) -> dict[str, Any]:
    results: dict[str, Any] = {"idle": summary(await normal_member(quiet, WINDOW_SECONDS))}
    for kind, count in SCENARIOS.items():
        stop = time.monotonic() + WINDOW_SECONDS
        tally: dict[str, float] = {"bytes": 0}
        target = busy if kind == "replays" else quiet
        abusers = [abuser(target, f"{kind}{n}", kind, stop, tally) for n in range(count)]
        latencies, *_ = await asyncio.gather(normal_member(quiet, WINDOW_SECONDS), *abusers)
        tally["bytes_per_second"] = tally.pop("bytes") / WINDOW_SECONDS
        results[kind] = {"normal": summary(latencies), "abusers": tally}
        await asyncio.sleep(1.5)  # buckets refill between scenarios
    return results


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "p50_ms": statistics.median(ordered) if ordered else float("nan"),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        if ordered
        else float("nan"),
    }


@contextlib.contextmanager
def serving(port: int, data: Path, env: dict[str, str]) -> Iterator[None]:
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
        yield
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="accord-abuse-"))
    http_url, base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    # The history is written with the limits lifted, then the server starts again with its
    # defaults, which are what is measured.
    limits = ["RATE_LIMIT", "RATE_BURST", "CLIENT_RATE_LIMIT", "CLIENT_RATE_BURST"]
    lifted = {f"ACCORD_{name}": "100000" for name in limits}
    with serving(port, data, lifted):
        quiet, busy = asyncio.run(prepare(base, http_url))
    with serving(port, data, {}):
        results = asyncio.run(measure(quiet, busy))
    idle = results["idle"]["p99_ms"]
    print(f"normal member alone: p50 {results['idle']['p50_ms']:.1f} ms, p99 {idle:.1f} ms")
    for kind in SCENARIOS:
        normal, abusers = results[kind]["normal"], results[kind]["abusers"]
        ratio = normal["p99_ms"] / idle if idle else float("nan")
        print(
            f"{kind:8} normal p50 {normal['p50_ms']:6.1f} ms p99 {normal['p99_ms']:6.1f} ms"
            f" ({ratio:.1f}x idle) | abusers got: "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(abusers.items()))
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
