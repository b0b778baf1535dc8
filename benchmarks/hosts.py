"""Hosts: what one host's death, or its cut link, costs the others; and a slow link.

    .venv/bin/python benchmarks/hosts.py               # about 2 minutes, as root on Linux
    .venv/bin/python benchmarks/hosts.py --window 5    # shorter windows, noisier tails

Three hosts in network namespaces (accord_app.cluster.hosts), each a worker with its own data
folder, behind Caddy, the catalog on PostgreSQL. Chat members (tests/hosts/chat_member.py,
which behave as the web frontend: nonces, reconnection, resume) send on channels of every host.
For a kill -9 of host 2, then for a cut of its link, it prints:

- the share of channels that fail (of every channel of a few servers: about 1 in 3 expected),
  and how long their HTTP errors took, and the server-wide activity question;
- the send→ack p50/p99 of the other hosts' members over three windows: before, while host 2
  is down, after it is back (target: p99 while down within 20 % of before);
- how long host 2's members were without service, and that nothing they had acked was lost.

Then, with the delay relay of accord_app/lab/relay.py on the path from the proxy to host 2
(50 ms each way), the p50 of GET .../messages per host: host 2's should be about 100 ms more.
First of all, a server-wide announcement's latency for 3, 12 and 48 channels per server, with
and without that delay: a fan-out waits for its slowest call, here the one across the slow
link (`--announcements-only` stops after it).

How it can mislead: one 2-core machine runs the three hosts, the proxy, PostgreSQL and this
load; a host's restart (importing the app) takes a core for a second or so, which the others'
latency may feel although no network would carry it. Windows of a few seconds give tails of a
few hundred samples: run it twice before trusting a 10 % difference.
"""

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT / "tests" / "hosts"), str(PROJECT / "tests")]

from chat_member import Member  # noqa: E402
from cluster_client import Running  # noqa: E402

from accord_app.chat.sharding import Sharding  # noqa: E402
from accord_app.cluster import Cluster  # noqa: E402
from accord_app.cluster.hosts import HostNetwork, Hosts, namespaces_unavailable  # noqa: E402
from accord_app.lab.loadtest import ADMIN_HEADERS, LIFTED_LIMITS  # noqa: E402
from accord_app.lab.relay import DelayRelay  # noqa: E402

RESULTS = PROJECT / "benchmarks" / "results"
VICTIM = 2
HOST_PORT = 8000
LINK_DELAY = 0.05
PROBES_IN_FLIGHT = 8
# Beyond its windows, a run that takes longer than this has hung: it stops with an error.
GIVE_UP_SECONDS = 120


def quantiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {"n": len(samples), "p50_ms": float("nan"), "p99_ms": float("nan")}
    cuts = statistics.quantiles(samples, n=100)
    return {"n": len(samples), "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


@contextmanager
def cluster_on(network: HostNetwork, folder: Path, hosts: Hosts | None = None) -> Iterator[Running]:
    hosts = hosts or network.hosts(HOST_PORT)
    with (
        Cluster(3, Sharding.CHANNEL, folder, port=0, env=LIFTED_LIMITS, hosts=hosts) as cluster,
        httpx.Client(base_url=cluster.url, timeout=30, trust_env=False) as http,
    ):
        yield Running(cluster, http)


async def timed(
    http: httpx.AsyncClient, path: str, in_flight: asyncio.Semaphore
) -> tuple[float, int]:
    async with in_flight:
        started = time.perf_counter()
        response = await http.get(path)
        return time.perf_counter() - started, response.status_code


async def failure(
    running: Running,
    fail: Callable[[], None],
    recover: Callable[[], None],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Members on every host through three windows: before, while host 2 is out, after."""
    servers = [running.create_server(f"server {n}") for n in range(args.servers)]
    channels = [c for s in servers for c in running.create_channels(args.channels, s)]
    owner = {c.channel_id: running.owner(c) for c in channels}
    members: dict[str, Member] = {}
    for host in (1, 2, 3):
        for channel in [c for c in channels if owner[c.channel_id] == host][: args.members]:
            url = running.ws_url(channel, f"member{len(members)}")
            members[channel.channel_id] = Member(url, 1 / args.rate)
    stop = asyncio.Event()
    async with (
        asyncio.timeout(3 * args.window + GIVE_UP_SECONDS),
        httpx.AsyncClient(base_url=running.cluster.url, timeout=30, trust_env=False) as http,
        asyncio.TaskGroup() as load,
    ):
        for member in members.values():
            load.create_task(member.run(stop))
        await asyncio.sleep(1.0)  # everyone connected, actors awake
        started = time.perf_counter()
        await asyncio.sleep(args.window)
        failed_at = time.perf_counter()
        await asyncio.to_thread(fail)
        await asyncio.sleep(args.window)
        down_until = time.perf_counter()
        # Asked after the window, so that this burst of questions is not in the others' tails.
        # A few at a time: each one's time is then its own, not the queue's.
        in_flight = asyncio.Semaphore(PROBES_IN_FLIGHT)
        answers = await asyncio.gather(
            *(timed(http, f"{c.path}/messages", in_flight) for c in channels)
        )
        activity = await timed(http, f"/api/servers/{servers[0]}/activity", in_flight)
        recovered_at = time.perf_counter()
        await asyncio.to_thread(recover)
        back_at = time.perf_counter()
        await asyncio.sleep(args.window)
        ended = time.perf_counter()
        stop.set()
    survivors = [m for c, m in members.items() if owner[c] != VICTIM]
    victims = [m for c, m in members.items() if owner[c] == VICTIM]

    def survivors_in(start: float, end: float) -> dict[str, float]:
        return quantiles([x for m in survivors for x in m.ack_latencies(start, end)])

    failed = [
        (s, status) for (s, status), c in zip(answers, channels, strict=True) if status != 200
    ]
    wrong = [c for (_, status), c in zip(answers, channels, strict=True)
             if (status != 200) != (owner[c.channel_id] == VICTIM)]  # fmt: skip
    return {
        "channels": len(channels),
        "channels_failed": len(failed),
        "share_failed": len(failed) / len(channels),
        "failed_not_the_victims": len(wrong),
        "error_seconds_max": max((s for s, _ in failed), default=0.0),
        "error_statuses": sorted({status for _, status in failed}),
        "activity_seconds": activity[0],
        "restart_seconds": back_at - recovered_at,
        "survivors_before": survivors_in(started, failed_at),
        "survivors_while_down": survivors_in(failed_at, down_until),
        "survivors_after": survivors_in(back_at, ended),
        "survivor_drops": sum(len(m.drops) for m in survivors),
        "victims_back_seconds": max(
            min((t for t in m.acked_at.values() if t > back_at), default=ended) - back_at
            for m in victims
        ),
        "victim_seqs_with_gaps": sum(
            sorted(m.seen) != list(range(1, len(m.seen) + 1)) for m in victims
        ),
    }


def slow_link(network: HostNetwork, folder: Path, requests: int) -> dict[str, Any]:
    hosts = network.hosts(HOST_PORT)
    host, port = hosts.members[VICTIM - 1].listen.rsplit(":", 1)
    with (
        DelayRelay((hosts.gateway, 0), (host, int(port)), LINK_DELAY) as relay,
        cluster_on(network, folder, slowed_hosts(network, relay)) as r,
    ):
        found = {}
        for host_number, channels in r.channels_on_every_worker().items():
            took = []
            for _ in range(requests):
                started = time.perf_counter()
                r.http.get(f"{channels[0].path}/messages").raise_for_status()
                took.append(time.perf_counter() - started)
            found[f"host {host_number}"] = quantiles(took)
        return found


def slowed_hosts(network: HostNetwork, relay: DelayRelay) -> Hosts:
    """The hosts, with the proxy dialling host 2 through `relay`."""
    hosts = network.hosts(HOST_PORT)
    members = list(hosts.members)
    members[VICTIM - 1] = dataclasses.replace(members[VICTIM - 1], dial=relay.address)
    return dataclasses.replace(hosts, members=tuple(members))


def announcements(
    network: HostNetwork, folder: Path, counts: list[int], requests: int
) -> dict[str, dict[int, dict[str, float]]]:
    """POST .../announcements for servers of `counts` channels, asked of host 1 (which calls
    the other hosts' actors through the proxy), with and without the relay on host 2's link."""
    hosts = network.hosts(HOST_PORT)
    host, port = hosts.members[VICTIM - 1].listen.rsplit(":", 1)
    found: dict[str, dict[int, dict[str, float]]] = {}
    with DelayRelay((hosts.gateway, 0), (host, int(port)), LINK_DELAY) as relay:
        for link, chosen in [
            ("no delay", hosts),
            ("+50 ms on host 2", slowed_hosts(network, relay)),
        ]:
            with (
                cluster_on(network, folder / link.replace(" ", "-"), chosen) as running,
                httpx.Client(
                    base_url=running.cluster.worker_url(1), headers=ADMIN_HEADERS, trust_env=False
                ) as host_1,
            ):
                found[link] = {}
                for count in counts:
                    server_id = running.create_server(f"{count} channels")
                    running.create_channels(count, server_id)
                    took = []
                    for number in range(requests):
                        started = time.perf_counter()
                        answer = host_1.post(
                            f"/api/servers/{server_id}/announcements",
                            json={"message": f"announcement {number}"},
                            timeout=30,
                        )
                        took.append(time.perf_counter() - started)
                        assert answer.json()["failed"] == 0, answer.text
                    found[link][count] = quantiles(took)
    return found


def report(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}")
    print(
        f"  channels failed: {result['channels_failed']} of {result['channels']}"
        f" ({result['share_failed']:.0%}), none but host {VICTIM}'s:"
        f" {result['failed_not_the_victims'] == 0}; statuses {result['error_statuses']},"
        f" slowest error {result['error_seconds_max'] * 1000:.0f} ms;"
        f" activity answered in {result['activity_seconds'] * 1000:.0f} ms"
    )
    for window in ("before", "while_down", "after"):
        q = result[f"survivors_{window}"]
        label = window.replace("_", " ")
        print(f"  others' send→ack {label:>10}: p50 {q['p50_ms']:6.1f} ms  p99 {q['p99_ms']:6.1f}"
              f" ms  ({q['n']} acks)")  # fmt: skip
    before, down, after = (
        result[f"survivors_{w}"]["p99_ms"] for w in ("before", "while_down", "after")
    )
    print(
        f"  p99 while down / before: {down / before:.2f} (target ≤ 1.20); after / before, two"
        f" windows with all hosts up, the noise of this measure: {after / before:.2f}"
    )
    print(
        f"  host {VICTIM}'s members: acked again {result['victims_back_seconds']:.1f} s after it"
        f" was back, {result['victim_seqs_with_gaps']} with a gap in what they saw; the others"
        f" dropped {result['survivor_drops']} times; the restart took"
        f" {result['restart_seconds']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per window")
    parser.add_argument("--members", type=int, default=4, help="members per host")
    parser.add_argument("--rate", type=float, default=10.0, help="messages/s per member")
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--channels", type=int, default=60, help="per server")
    parser.add_argument("--requests", type=int, default=100, help="per host, on the slow link")
    parser.add_argument("--json", type=Path, help="also write the results there")
    parser.add_argument(
        "--announcements-only", action="store_true", help="only the announcements' latency"
    )
    args = parser.parse_args()
    if (reason := namespaces_unavailable()) is not None:
        sys.exit(f"This benchmark needs network namespaces: {reason}")
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}}
    with (
        tempfile.TemporaryDirectory(dir=RESULTS, prefix="hosts-") as folder,
        HostNetwork(3) as network,
    ):
        results["announcements"] = announcements(network, Path(folder), [3, 12, 48], 20)
        print("\nPOST .../announcements asked of host 1 (p50 / p99 of 20):")
        for link, by_count in results["announcements"].items():
            row = "  ".join(
                f"{count} channels {q['p50_ms']:5.0f} / {q['p99_ms']:5.0f} ms"
                for count, q in by_count.items()
            )
            print(f"  {link:>16}: {row}")
        if args.announcements_only:
            return
        with cluster_on(network, Path(folder) / "kill") as running:
            cluster = running.cluster
            results["kill"] = asyncio.run(
                failure(
                    running, lambda: cluster.kill(VICTIM), lambda: cluster.restart(VICTIM), args
                )
            )
        report("kill -9 host 2", results["kill"])
        with cluster_on(network, Path(folder) / "cut") as running:
            cut, restore = lambda: network.cut(VICTIM), lambda: network.restore(VICTIM)
            results["cut"] = asyncio.run(failure(running, cut, restore, args))
        report("cut host 2's link", results["cut"])
        results["slow_link"] = slow_link(network, Path(folder) / "slow", args.requests)
    print(f"\nGET .../messages with {LINK_DELAY * 1000:.0f} ms each way on host {VICTIM}'s link:")
    for host, q in results["slow_link"].items():
        print(f"  {host}: p50 {q['p50_ms']:6.1f} ms  p99 {q['p99_ms']:6.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
