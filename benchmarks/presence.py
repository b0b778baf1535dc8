"""Presence benchmark: the server's CPU for N members joining one channel, against N members
joining C channels (N/C each), and the frames the members were sent. Each join sends the joiner
the member list, and the members of its channel hear of it: once a "joined" frame per join to
every member (N² frames for one channel), now a presence_diff per PRESENCE_INTERVAL; this
measures what one busy channel costs against many small ones.

    .venv/bin/python benchmarks/presence.py                      # 2 000 joins, 1 and 100 channels
    .venv/bin/python benchmarks/presence.py --tree ../other      # the server from another copy

The server runs in its own process (`python -m accord_app`, limits lifted, channel sharding),
from --tree if given (its accord_app on PYTHONPATH); its CPU time (user + system, every thread,
from /proc/<pid>/stat) is read before the first join and once it stops moving (every member
has heard of the last join). The members read and count everything they are sent, in this
process. Linux only.
"""

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from accord_app.cluster.ports import free_port
from accord_app.lab.loadtest import LIFTED_LIMITS

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def drain(ws: ClientConnection, counted: list[int]) -> None:
    async for _ in ws:
        counted[0] += 1


async def joins(url: str, members: int, channels: int, pid: int) -> tuple[float, int]:
    """Server CPU seconds for `members` joins spread over `channels` new channels, and the
    frames the members were sent."""
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        server_id = (await http.post("/api/servers", json={"name": "presence"})).json()["id"]
        ids = [
            (
                await http.post(f"/api/servers/{server_id}/channels", json={"name": f"channel {n}"})
            ).json()["id"]
            for n in range(channels)
        ]
    ws_url = url.replace("http", "ws", 1)
    sockets, readers = [], []
    frames = [0]
    before = cpu_seconds(pid)
    for n in range(members):
        path = f"/api/servers/{server_id}/channels/{ids[n % channels]}/connect?username=m{n}"
        ws = await connect(ws_url + path, max_queue=None, compression=None)
        sockets.append(ws)
        readers.append(asyncio.create_task(drain(ws, frames)))
    # The last joins reach everyone: wait until the server's CPU stops moving.
    settled, last = time.monotonic(), cpu_seconds(pid)
    while time.monotonic() - settled < 1.0:
        await asyncio.sleep(0.2)
        now = cpu_seconds(pid)
        if now != last:
            settled, last = time.monotonic(), now
    for reader in readers:
        reader.cancel()
    for ws in sockets:  # no closing handshakes: the server is stopped next
        ws.transport.abort()
    return last - before, frames[0]


def wait_until_up(url: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{url}/api", trust_env=False)
            return
        time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not answer in {seconds:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    for channels in args.channels:
        with tempfile.TemporaryDirectory() as folder:
            port = free_port()
            env = os.environ | LIFTED_LIMITS | {"PYTHONPATH": str(args.tree.resolve())}
            command = [sys.executable, "-m", "accord_app", "--port", str(port)]
            server = subprocess.Popen(
                [*command, "--data-dir", folder],
                cwd=args.tree,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until_up(url)
                used, frames = asyncio.run(joins(url, args.members, channels, server.pid))
            finally:
                server.terminate()
                server.wait(10)
        print(
            f"{args.tree.resolve().name}: {args.members} joins over {channels} channel(s):"
            f" server CPU {used:.2f} s, {frames} frames to the members"
        )


if __name__ == "__main__":
    main()
