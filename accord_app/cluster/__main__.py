"""`python -m accord_app.cluster`: K workers of Accord behind Caddy, until Ctrl-C.

A worker that dies is reported and started again (its channels answer 502 meanwhile); the
others keep serving theirs. ACCORD_* variables reach the workers (ACCORD_WORK_MS, ...).
With --hosts each worker is a host of its own (see hosts.py): its own data folder, its own
network namespace and address on Linux as root (else its own loopback port), and a catalog on
PostgreSQL (ACCORD_CATALOG_URL, or one the cluster starts). With --replicated (which implies
--hosts) each host also runs a NATS JetStream server, and every actor's writes go to their
replicated log before they are acknowledged: a host's channels survive its loss. With
--metrics it prints where Prometheus finds the numbers: each worker's GET /metrics, and
the proxy's own.
"""

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from accord_app.chat.sharding import Sharding
from accord_app.cluster.hosts import (
    HostError,
    HostNetwork,
    Hosts,
    loopback_hosts,
    namespaces_unavailable,
)
from accord_app.cluster.nats import NatsError
from accord_app.cluster.ports import free_port
from accord_app.cluster.processes import log_tail
from accord_app.cluster.supervisor import Cluster, ClusterError
from accord_app.settings import DATA_DIR_HELP, default_data_dir, parse_port

# Seconds before a dead worker is started again, doubling while it keeps dying.
RESTART_DELAYS = [1, 2, 4, 8, 15, 30]
# A worker that stayed up this long starts its next crash from the first delay again.
STABLE_SECONDS = 60
# Where hosts in network namespaces listen, each on its own address, when --port is 0.
HOST_PORT = 8788


def port_flag(text: str) -> int:
    try:
        return parse_port(text, "--port")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def workers_flag(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"--workers takes 1 to 64, not {text!r}")
    return int(text)


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same orderly stop as Ctrl-C


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m accord_app.cluster", description=__doc__)
    parser.add_argument("--workers", type=workers_flag, default=4, help="default: 4")
    parser.add_argument(
        "--sharding",
        choices=[mode.value for mode in Sharding],
        default=Sharding.CHANNEL.value,
        help="which actor hosts a channel; default: channel",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument(
        "--port",
        type=port_flag,
        default=8787,
        help="the proxy's port; workers take the next ones (default: 8787, workers 8788...),"
        " then the proxy's metrics",
    )
    parser.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    parser.add_argument(
        "--hosts",
        type=workers_flag,
        nargs="?",
        const=0,
        metavar="N",
        help="each worker a host: its own data folder and address (a network namespace on"
        " Linux as root, else a loopback port), the catalog on PostgreSQL; N: that many"
        " hosts (instead of --workers)",
    )
    parser.add_argument(
        "--replicated",
        action="store_true",
        help="hosts (as --hosts) that each run a NATS JetStream server too: the actors'"
        " writes are acknowledged once a majority of them has them",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="print a Prometheus scrape config for the cluster: every worker and the proxy",
    )
    args = parser.parse_args(argv)
    if args.hosts:
        args.workers = args.hosts
    if args.replicated and args.hosts is None:
        args.hosts = 0
    data_dir = args.data_dir or Path(os.environ.get("ACCORD_DATA_DIR") or default_data_dir())
    worker_ports = None if args.port == 0 else [args.port + n for n in range(1, args.workers + 1)]
    metrics_port = None if args.port == 0 else args.port + args.workers + 1
    if metrics_port and metrics_port > 65535:
        parser.error(f"--port {args.port} leaves no room for {args.workers} workers' ports")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with contextlib.ExitStack() as cleanup:
        hosts = None
        if args.hosts is not None:
            hosts = make_hosts(args.workers, args.host, worker_ports, cleanup)
            worker_ports = None
        cluster = Cluster(
            args.workers,
            args.sharding,
            data_dir,
            host=args.host,
            port=args.port,
            worker_ports=worker_ports,
            hosts=hosts,
            catalog_url=os.environ.get("ACCORD_CATALOG_URL") or None,
            replicated=args.replicated,
            metrics_port=metrics_port,
        )
        run(cluster, args.metrics)


def make_hosts(
    count: int, host: str, ports: list[int] | None, cleanup: contextlib.ExitStack
) -> Hosts:
    """Namespaces where they can be made (removed by `cleanup`), else loopback ports."""
    reason = namespaces_unavailable()
    if reason is not None:
        print(f"Hosts on loopback ports, not network namespaces: {reason}.")
        return loopback_hosts(ports or [free_port(host) for _ in range(count)], host)
    try:
        network = cleanup.enter_context(HostNetwork(count))
    except HostError as error:
        sys.exit(f"The hosts' network could not be made: {error}")
    # Each namespace has every port free: all hosts listen on the same one.
    return network.hosts(ports[0] if ports else HOST_PORT)


def run(cluster: Cluster, metrics: bool = False) -> None:
    try:
        cluster.start()
    except ClusterError as error:
        sys.exit(f"The cluster did not start: {error}")
    except KeyboardInterrupt:
        sys.exit(1)
    print(
        f"Accord cluster on {cluster.url}: {cluster.workers} workers,"
        f" one actor per {cluster.sharding.value}"
    )
    for number in range(1, cluster.workers + 1):
        print(f"  worker {number}  {cluster.worker_url(number)}  pid {cluster.pid(number)}")
        if cluster.own_folders:
            netns = cluster.hosts.members[number - 1].netns
            where = f"namespace and link {netns}" if netns else "on loopback"
            print(f"            data in {cluster.worker_data_dir(number)}, {where}")
    print(f"  proxy     Caddy, config in {cluster.data_dir / 'proxy'}, no admin endpoint")
    proxy_metrics = cluster.scrape_targets()["proxy"][0]
    print(f"  metrics   http://{proxy_metrics}/metrics (the proxy's), each worker's /metrics")
    if cluster.catalog_server is not None:
        print(f"  catalog   PostgreSQL, in {cluster.catalog_server.folder}")
    if cluster.nats is not None:
        print(f"  log       NATS JetStream, {cluster.nats.servers} servers: {cluster.nats.url}")
        print(f"            data in {cluster.nats.folder}, fsync before every ack")
    if cluster.hosts.network is not None:
        print("Cut a host off: ip link set LINK down (up: back); each host's link is named above.")
    if metrics:
        print(scrape_config(cluster), end="")
    print(f"Data in {cluster.data_dir}, logs in {cluster.log_dir}. Ctrl-C stops everything.")
    try:
        supervise(cluster)
    except KeyboardInterrupt:
        print("Stopping: the proxy first, then the workers (each finishes its commits).")
    finally:
        # A second Ctrl-C must not cut the stop short: it ends within STOP_TIMEOUT_SECONDS.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()


def scrape_config(cluster: Cluster) -> str:
    """The scrape_configs of a prometheus.yml that scrapes the cluster: a job per kind."""
    lines = ["# prometheus.yml: every target serves GET /metrics", "scrape_configs:"]
    for job, targets in cluster.scrape_targets().items():
        quoted = ", ".join(f"'{target}'" for target in targets)
        lines += [
            f"  - job_name: accord-{job}",
            "    static_configs:",
            f"      - targets: [{quoted}]",
        ]
    return "\n".join(lines) + "\n"


def supervise(cluster: Cluster) -> None:
    """Report every process that dies and start it again, backing off if it keeps dying."""
    crashes: dict[str, int] = {}
    started: dict[str, float] = {}
    while True:
        time.sleep(0.2)
        for exited in cluster.exited():
            if time.monotonic() - started.get(exited.name, 0.0) > STABLE_SECONDS:
                crashes[exited.name] = 0
            delay = RESTART_DELAYS[min(crashes.get(exited.name, 0), len(RESTART_DELAYS) - 1)]
            crashes[exited.name] = crashes.get(exited.name, 0) + 1
            what = {
                "proxy": "nothing answers",
                "catalog": "servers, channels, histories and joins answer 503",
            }.get(exited.name, "its channels answer 502")
            if exited.name.startswith("nats "):
                what = "the log has one server fewer (writes need a majority)"
            print(f"{exited.describe()}: {what} until it is back. Restarting in {delay} s.")
            if (exited.returncode is None or exited.returncode > 0) and (
                tail := log_tail(exited.log)
            ):
                print(
                    f"  the end of {exited.log}:\n"
                    + "\n".join(f"  | {line}" for line in tail.splitlines())
                )
            time.sleep(delay)
            try:
                if exited.name == "proxy":
                    cluster.restart_proxy()
                elif exited.name == "catalog":
                    cluster.restart_catalog()
                elif exited.name.startswith("nats ") and cluster.nats is not None:
                    cluster.nats.restart(int(exited.name.removeprefix("nats ")))
                else:
                    cluster.restart(int(exited.name.removeprefix("worker ")))
            except (ClusterError, NatsError) as error:
                print(f"  {exited.name} did not come back: {error}")
                continue
            started[exited.name] = time.monotonic()
            print(f"  {exited.name} is back.")


if __name__ == "__main__":
    main()
