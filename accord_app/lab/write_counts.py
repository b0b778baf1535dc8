"""How many write() system calls a burst of frames costs the server, on each WebSocket path.

Chapter 07's last section, and tests/test_fast_websocket.py. The count is the kernel's
(`syscw` in Linux's /proc/PID/io), of a real `python -m accord_app` in its own process: nothing
else writes there meanwhile but its log. Other systems have no such file; the chapter says so.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.sync.client import ClientConnection, connect

from accord_app.lab.loadtest import LIFTED_LIMITS

START_TIMEOUT = 15.0
FRAME_TIMEOUT = 10.0


@dataclass(frozen=True)
class Burst:
    path: str  # the WebSocket path, as ACCORD_WS names it
    frames: int  # frames the member received
    writes: int  # write() system calls the server made meanwhile

    def __str__(self) -> str:
        per_write = self.frames / max(self.writes, 1)
        return (
            f"{self.path:>4} path: {self.frames} frames in {self.writes} writes"
            f" ({per_write:.1f} frames per write)"
        )


def counts_writes() -> bool:
    """Whether this system can count a process's write() calls (Linux can)."""
    return Path(f"/proc/{os.getpid()}/io").exists()


def write_syscalls(pid: int) -> int:
    """write()-family system calls process `pid` has made so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no syscw line")


@contextlib.contextmanager
def accord_process(websocket_path: str, data_dir: Path) -> Iterator[tuple[int, str]]:
    """`python -m accord_app` with ACCORD_WS=websocket_path on a free port: (pid, its URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | LIFTED_LIMITS | {"ACCORD_WS": websocket_path}
    command = [sys.executable, "-m", "accord_app", "--port", str(port), "--data-dir", str(data_dir)]
    with (data_dir / "server.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api", trust_env=False).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (data_dir / "server.log").read_text()
                raise RuntimeError(f"Accord did not start on {url}:\n{log_text}")
            time.sleep(0.05)
        yield process.pid, url
    finally:
        process.terminate()
        process.wait(START_TIMEOUT)


def frames_until(ws: ClientConnection, kind: str) -> list[dict[str, object]]:
    """Every frame up to and including the first of type `kind`."""
    frames = [json.loads(ws.recv(timeout=FRAME_TIMEOUT))]
    while frames[-1]["type"] != kind:
        frames.append(json.loads(ws.recv(timeout=FRAME_TIMEOUT)))
    return frames


def replay_writes(websocket_path: str, messages: int, data_dir: Path) -> Burst:
    """Store `messages` messages in a fresh channel, then join it with after_seq=0: the actor
    releases the whole replay in one turn. Count the server's writes until it has arrived."""
    with (
        accord_process(websocket_path, data_dir) as (pid, url),
        httpx.Client(base_url=url, trust_env=False) as http,
    ):
        server_id = http.post("/api/servers", json={"name": "Bursts"}).json()["id"]
        channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
        ws_url = f"ws://{url.removeprefix('http://')}/api/servers/{server_id}/channels"
        ws_url += f"/{channel.json()['id']}/connect"
        with connect(f"{ws_url}?username=ada") as ada:
            frames_until(ada, "presence")
            for number in range(messages):
                ada.send(json.dumps({"type": "message", "message": f"message {number}"}))
            for _ in range(messages):
                frames_until(ada, "ack")
        time.sleep(0.3)  # the log lines of the connection above, written
        before = write_syscalls(pid)
        with connect(f"{ws_url}?username=bob&after_seq=0") as bob:
            frames = frames_until(bob, "resumed")
            return Burst(websocket_path, len(frames), write_syscalls(pid) - before)
