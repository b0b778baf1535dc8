"""Start, watch and stop a cluster: K worker processes on loopback and Caddy in front of them.

    with Cluster(workers=4, sharding="channel", data_dir=Path("data")) as cluster:
        httpx.get(f"{cluster.url}/api/servers")  # through the proxy
        cluster.kill(2)                           # kill -9 one worker (a crash, for tests)
        cluster.restart(2)

Every worker serves the whole app on its own port and shares the data folder: the catalog
(SQLite in WAL mode is safe across processes) and the actors' files, each of which only the
worker that the proxy routes its key to ever opens. With `hosts` (see hosts.py) each worker is
a host instead: its own address, in its own network namespace when there is one, and its own
folder, `data_dir/host-N`; sharing nothing on disk, they share the catalog on a PostgreSQL
server that the cluster starts (in `data_dir/catalog`) unless given one. Processes run in their
own session, so a Ctrl-C in the terminal reaches only the cluster, which then stops the proxy
first (no new requests) and the workers next (each finishes its commits). Each writes its
output to a log file in `data_dir/logs/`, whose last lines are shown when it dies.
"""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from accord_app.actors.datalock import DataDirInUse, DataDirLock
from accord_app.catalog.pgserver import PostgresError, PostgresServer
from accord_app.chat.sharding import Sharding
from accord_app.cluster.caddy import caddy_config, caddy_executable
from accord_app.cluster.hosts import Host, Hosts, loopback_hosts
from accord_app.cluster.nats import NatsCluster, NatsError
from accord_app.cluster.ports import free_port, port_taken
from accord_app.cluster.processes import Exited, log_tail, terminate

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class ClusterError(RuntimeError):
    """A process of the cluster did not start, or the cluster is misconfigured."""


class Cluster:
    """K workers of the Accord app behind Caddy, which routes each actor's key to one worker.

    port: the proxy's public port (0: any free one). worker_ports: one per worker (default:
    free ports). env: extra variables for the workers, e.g. {"ACCORD_WORK_MS": "5"}.
    hosts: one per worker, each with its own address and folder (instead of worker_ports).
    metrics_port: where the proxy serves its own metrics, on `host` (default: a free port).
    catalog_url: a PostgreSQL database for the workers' catalog (ACCORD_CATALOG_URL); with
    hosts and none given, the cluster runs its own.
    replicated: one NATS server per host as well (`cluster.nats`, in `data_dir/nats`), the
    workers' replicated log (ACCORD_REPLICATION): an actor's data outlives its host.
    Workers are numbered 1..K, as in the X-Accord-Worker header of their answers.
    """

    def __init__(
        self,
        workers: int,
        sharding: Sharding | str = Sharding.CHANNEL,
        data_dir: Path | str = "data",
        *,
        host: str = "127.0.0.1",
        port: int = 8787,
        worker_ports: Sequence[int] | None = None,
        env: Mapping[str, str] | None = None,
        hosts: Hosts | None = None,
        catalog_url: str | None = None,
        replicated: bool = False,
        metrics_port: int | None = None,
    ) -> None:
        if workers < 1:
            raise ClusterError(f"a cluster needs at least one worker, not {workers}")
        if worker_ports is not None and len(worker_ports) != workers:
            raise ClusterError(f"{len(worker_ports)} worker ports given for {workers} workers")
        if hosts is not None and (worker_ports is not None or len(hosts.members) != workers):
            raise ClusterError(f"give {workers} hosts, each with its address, or worker ports")
        self.sharding = Sharding(sharding)
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        # Without hosts, the workers are loopback ports that share the data folder.
        self.own_folders = hosts is not None
        if hosts is None:
            ports = worker_ports or [free_port(host) for _ in range(workers)]
            hosts = loopback_hosts(ports, host)
        self.hosts = hosts
        self.addresses = tuple(member.address for member in self.hosts.members)
        self.env = dict(env or {})
        # New at each start of the cluster; see accord_app/web/middleware.py.
        self.router_secret = secrets.token_urlsafe(32)
        self.catalog_url = catalog_url
        self.catalog_server: PostgresServer | None = None
        self._catalog_pid: int | None = None  # the PostgreSQL we started, while it should run
        if self.own_folders and catalog_url is None:
            self.catalog_server = PostgresServer(self.data_dir / "catalog", network=hosts.network)
        self.nats: NatsCluster | None = None
        if replicated:
            ports = [self.port, *(int(a.rsplit(":", 1)[1]) for a in self.addresses)]
            self.nats = NatsCluster(
                self.data_dir / "nats", workers, hosts=self.hosts.members, reserved=ports
            )
        self.log_dir = self.data_dir / "logs"
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._proxy: subprocess.Popen[bytes] | None = None
        sharing = "hosts each keep a folder in it" if self.own_folders else "workers share it"
        self._lock = DataDirLock(
            self.data_dir, f"the Accord cluster on {self.url}, whose {workers} {sharing}"
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def workers(self) -> int:
        return len(self.addresses)

    def worker_url(self, number: int) -> str:
        return f"http://{self.addresses[number - 1]}"

    def scrape_targets(self) -> dict[str, list[str]]:
        """What Prometheus scrapes (at /metrics, each): the workers, and the proxy."""
        return {"workers": list(self.addresses), "proxy": [f"{self.host}:{self.metrics_port}"]}

    def worker_data_dir(self, number: int) -> Path:
        return self.data_dir / f"host-{number}" if self.own_folders else self.data_dir

    @property
    def router_url(self) -> str:
        """The proxy, where workers send their calls to other workers' actors."""
        return f"http://{self.hosts.gateway}:{self.port}"

    @property
    def proxy_listen(self) -> list[str]:
        """Where the proxy listens: for clients, and at the gateway, for hosts behind it."""
        return list(
            dict.fromkeys([f"{self.host}:{self.port}", f"{self.hosts.gateway}:{self.port}"])
        )

    def pid(self, number: int) -> int:
        return self._workers[number].pid

    @property
    def proxy_pid(self) -> int | None:
        return None if self._proxy is None else self._proxy.pid

    # -- starting and stopping -----------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> "Cluster":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The folder is the cluster's: its workers share it on purpose (each hosting its own
        # actors), and no other Accord may open it meanwhile.
        try:
            self._lock.acquire()
        except DataDirInUse as error:
            raise ClusterError(str(error)) from None
        try:
            if self.nats is not None:
                try:
                    self.nats.start()
                except NatsError as error:
                    raise ClusterError(f"the replicated log did not start: {error}") from None
            if (server := self.catalog_server) is not None:
                try:
                    server.start()
                except PostgresError as error:
                    raise ClusterError(f"the catalog's PostgreSQL did not start: {error}") from None
                self.catalog_url = server.url_of(server.database, self.hosts.gateway)
                self._catalog_pid = server.pid()
            # Workers start side by side (importing the app takes most of their start-up).
            for number in range(1, self.workers + 1):
                self._workers[number] = self._spawn_worker(number)
            for number in range(1, self.workers + 1):
                self._wait_ready(f"worker {number}", self._workers[number], number, timeout)
            self._proxy = self._spawn_proxy()
            self._wait_ready("proxy", self._proxy, None, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """The proxy first, so no new request arrives; then every worker, politely, and any
        that does not finish within `timeout` is killed."""
        if self._proxy is not None:
            terminate([self._proxy], timeout)
            self._proxy = None
        terminate(list(self._workers.values()), timeout)
        self._workers.clear()
        if self.catalog_server is not None:
            self._catalog_pid = None
            self.catalog_server.stop()  # last: its clients are gone, every commit is kept
        if self.nats is not None:
            self.nats.stop()
        self._lock.release()

    def kill(self, number: int) -> None:
        """kill -9 one worker: what a crash looks like to everyone else."""
        process = self._workers[number]
        process.kill()
        process.wait()

    def restart(self, number: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start worker `number` again (after a crash or kill), on its same address."""
        old = self._workers.get(number)
        if old is not None and old.poll() is None:
            raise ClusterError(f"worker {number} is still running (pid {old.pid})")
        self._workers[number] = self._spawn_worker(number)
        self._wait_ready(f"worker {number}", self._workers[number], number, timeout)

    def exited(self) -> list[Exited]:
        """The processes that ended on their own since they started (a crash, a kill -9)."""
        found = [
            Exited(f"worker {number}", process.pid, process.returncode, self._log(number))
            for number, process in self._workers.items()
            if process.poll() is not None
        ]
        if self._proxy is not None and self._proxy.poll() is not None:
            proxy = self._proxy
            found.append(Exited("proxy", proxy.pid, proxy.returncode, self._log(None)))
        server = self.catalog_server
        if server is not None and self._catalog_pid is not None and not server.alive():
            found.append(Exited("catalog", self._catalog_pid, None, server.log))
        if self.nats is not None:
            found.extend(self.nats.exited())
        return found

    def restart_catalog(self) -> None:
        """Start the cluster's PostgreSQL again, on its same port: the workers' URL holds, and
        their next call to the catalog connects anew."""
        assert self.catalog_server is not None
        try:
            self.catalog_server.start()
        except PostgresError as error:
            raise ClusterError(str(error)) from None
        self._catalog_pid = self.catalog_server.pid()

    def restart_proxy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        self._proxy = self._spawn_proxy()
        self._wait_ready("proxy", self._proxy, None, timeout)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Cluster {self.url}: {self.workers} workers, one actor per {self.sharding.value}>"

    # -- processes -------------------------------------------------------------------------------

    def _log(self, number: int | None) -> Path:
        return self.log_dir / ("proxy.log" if number is None else f"worker-{number}.log")

    def _spawn(
        self, command: list[str], env: Mapping[str, str], log: Path, addresses: Sequence[str]
    ) -> "subprocess.Popen[bytes]":
        # Checked first: a process already listening there would answer our readiness check.
        for address in addresses:
            host, port = address.rsplit(":", 1)
            if port_taken(host, int(port)):
                raise ClusterError(
                    f"{address} is already in use (another cluster, or make run?): stop it, or"
                    " choose another --port"
                )
        with log.open("ab") as output:
            return subprocess.Popen(
                command,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _spawn_worker(self, number: int) -> "subprocess.Popen[bytes]":
        member: Host = self.hosts.members[number - 1]
        host, port = member.listen.rsplit(":", 1)
        env = {
            **os.environ,
            **self.env,
            "ACCORD_HOST": host,
            "ACCORD_PORT": port,
            "ACCORD_DATA_DIR": str(self.worker_data_dir(number)),
            "ACCORD_SHARDING": self.sharding.value,
            "ACCORD_WORKER": str(number),
            "ACCORD_WORKERS": ",".join(self.addresses),
            "ACCORD_ROUTER_URL": self.router_url,
            "ACCORD_ROUTER_SECRET": self.router_secret,
            **({"ACCORD_CATALOG_URL": self.catalog_url} if self.catalog_url else {}),
            **({"ACCORD_REPLICATION": self.nats.url} if self.nats is not None else {}),
            "PYTHONUNBUFFERED": "1",  # the log file shows what happened up to a crash
        }
        command = member.command([sys.executable, "-m", "accord_app.cluster.worker"])
        # A namespace of its own has every port free, and its address is not ours to bind.
        taken = [] if member.netns else [member.listen]
        return self._spawn(command, env, self._log(number), taken)

    def _spawn_proxy(self) -> "subprocess.Popen[bytes]":
        state = self.data_dir / "proxy"
        state.mkdir(parents=True, exist_ok=True)
        config = state / "caddy.json"
        listen = self.proxy_listen
        metrics = f"{self.host}:{self.metrics_port}"
        settings = caddy_config(
            self.sharding, listen, self.addresses, state, self.router_secret, metrics
        )
        # The config holds the router's secret: readable by its owner only.
        config.unlink(missing_ok=True)
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as output:
            json.dump(settings, output, indent=2)
        # Caddy keeps a few files of its own (XDG folders): in the data folder, not in $HOME.
        env = {**os.environ, "XDG_DATA_HOME": str(state), "XDG_CONFIG_HOME": str(state)}
        command = [str(caddy_executable()), "run", "--config", str(config)]
        return self._spawn(command, env, self._log(None), [*listen, metrics])

    def _wait_ready(
        self,
        name: str,
        process: "subprocess.Popen[bytes]",
        number: int | None,
        timeout: float,
    ) -> None:
        """Until GET /api answers 200 (from the worker, or through the proxy)."""
        url = (self.url if number is None else self.worker_url(number)) + "/api"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if process.poll() is not None:
                    exited = Exited(name, process.pid, process.returncode, self._log(number))
                    raise ClusterError(
                        f"{exited.describe()} while starting; the end of {exited.log}:\n"
                        + log_tail(exited.log)
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} did not answer {url} within {timeout:g} s")
                time.sleep(0.05)
