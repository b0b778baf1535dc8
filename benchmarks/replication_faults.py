"""The failures of benchmarks/replication.py, with real processes: kill -9 of a busy channel's
host in a replicated cluster (failover as its members see it), and a paused old owner (the
zombie) that wakes up after another host took its actor over.

The members are the test suite's (tests/replication/members.py: they behave like the
frontend's socket), the zombie the suite's writer process (replica_tools.Writer).
"""

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from cluster_client import Running
from members import Member, kill_rounds, until
from replica_tools import CLUSTER_LOG_TIMEOUT, Writer, notes_on
from replication_report import check_history, missing_runs, stale_acks

from accord_app.cluster import Cluster
from accord_app.cluster.caddy import HEALTH_INTERVAL, detection_seconds
from accord_app.cluster.hosts import loopback_hosts
from accord_app.cluster.nats import NatsCluster
from accord_app.cluster.ports import free_port
from accord_app.lab.loadtest import LIFTED_LIMITS

# -- failover ----------------------------------------------------------------------------------


async def failover(folder: Path, rounds: int, members_count: int, seed: int) -> dict[str, Any]:
    """`rounds` kills of the channel's host, each at a random moment of the members' load."""
    hosts = loopback_hosts([free_port("127.0.0.1") for _ in range(3)])
    env = {**LIFTED_LIMITS, "ACCORD_REPLICATION_TIMEOUT": CLUSTER_LOG_TIMEOUT}
    cluster = Cluster(3, data_dir=folder, port=0, hosts=hosts, env=env, replicated=True)
    with cluster, httpx.Client(base_url=cluster.url, timeout=10.0, trust_env=False) as http:
        running = Running(cluster, http)
        [channel] = running.create_channels(1)
        members = [
            Member(running.ws_url(channel, f"m{n}"), f"m{n}", random.Random(seed + n))
            for n in range(members_count)
        ]
        found = await kill_rounds(running, channel, members, rounds, random.Random(seed))
    print(f"  kill -9 → first ack: {', '.join(f'{x:.2f}' for x in found.failovers)} s", flush=True)
    check = check_history(
        [member.seen for member in members],
        [(member.text(nonce), seq) for member in members for nonce, seq in member.acked.items()],
        conflicts=sum(len(member.conflicts) for member in members),
    )
    reference = members[0].seen
    unseen = []  # each run of seqs a member missed, and whether its own ack came right after
    for member in members[1:]:
        own = set(member.acked.values())
        for first, last in missing_runs(reference, member.seen):
            unseen.append(
                {
                    "member": member.name,
                    "first": first,
                    "last": last,
                    "own_ack_next": last + 1 in own,
                }
            )
    return {
        "unseen_runs": unseen,
        "rounds": found.failovers,
        "handbacks": found.handbacks,
        "members": members_count,
        "detection_s": detection_seconds(),
        "health_interval": HEALTH_INTERVAL,
        "history": vars(check),
        "never_acked": sum(member.sent - len(member.acked) for member in members),
    }


# -- the zombie --------------------------------------------------------------------------------


async def zombie(folder: Path, rounds: int, seed: int) -> dict[str, Any]:
    """`rounds` pauses of a busy owner while another host opens a new epoch and acks."""
    chooser = random.Random(seed)
    found = []
    async with NatsCluster(folder / "nats", servers=3) as cluster:
        for number in range(rounds):
            name = str(1 + number % 2)  # hosts 1 and 2 take turns, each with its folder
            writer = Writer(cluster, folder / f"host-{name}", name, number * 1_000_000)
            try:
                enough = chooser.randint(20, 100)
                await until(lambda w=writer, n=enough: len(w.acks()) >= n, f"round {number}: acks")
                writer.process.send_signal(signal.SIGSTOP)
                paused = time.perf_counter()
                async with notes_on(cluster, folder / "host-3", "3") as stub:
                    in_log = set(await stub.seen())  # the activation opened the new epoch
                    new_epoch = await stub.record(-1 - number)
                    taken_over = time.perf_counter() - paused
                    writer.process.send_signal(signal.SIGCONT)
                    await until(writer.fenced, f"round {number}: the old owner fenced")
                    final = set(await stub.seen())
            finally:
                if writer.process.poll() is None:
                    os.kill(writer.process.pid, signal.SIGCONT)
                writer.finish()
            acks = writer.acks()
            found.append(
                {
                    "acks_before": sum(epoch < new_epoch for epoch in acks.values()),
                    "stale_acks": stale_acks(acks, new_epoch, in_log),
                    "lost": len(set(acks) - final),
                    "fenced": writer.fenced(),
                    "takeover_s": taken_over,
                }
            )
            print(f"  zombie round {number + 1}: {found[-1]['stale_acks']} stale", flush=True)
    return {"rounds": found}
