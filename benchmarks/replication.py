"""What replication costs an actor's writes: local fsync vs NATS JetStream with 1 replica vs 3.

    .venv/bin/python benchmarks/replication.py              # about 1.5 minutes
    .venv/bin/python benchmarks/replication.py --seconds 1  # shorter windows

For each storage (the actor runtime's own SQLite + fsync; the runtime with replication on, its
batches on a JetStream stream of 1 replica, then of 3 on a 3-server cluster) and for one busy
actor and 100 actors, it measures in one run:

1. send → ack at a fixed load (`--rate` writes/s in all, paced, open loop: latency counts from
   each write's scheduled time, so a stall counts against every write it delays): p50 and p99;
2. sustained acks/s: `--callers` callers spread over the actors, each sending its next write
   as soon as the last is acked, for `--seconds`.

Then the ratios to local fsync. Everything runs on loopback in temporary folders (removed at
the end), and every phase stops by itself after its window. The NATS servers fsync every write
(`sync_interval: always`), as the kit always runs them.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord_app.actors import Actor, Runtime
from accord_app.actors.natslog import NatsLog
from accord_app.cluster.nats import NatsCluster

STORAGES = ("local fsync", "JetStream R1", "JetStream R3")


class Counter(Actor):
    """One durable write per call: the ack waits for the storage (and, replicated, the log)."""

    async def write(self, key: str) -> None:
        self.storage.put(key, True)


@dataclass
class Result:
    storage: str
    actors: int
    p50_ms: float
    p99_ms: float
    acks_per_s: float
    failed: int  # writes that got an error instead of an ack (both phases)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


@asynccontextmanager
async def runtime_on(storage: str, folder: Path) -> AsyncIterator[Runtime]:
    """A runtime whose writes go to `storage`; the NATS servers it needs, started and stopped."""
    if storage == "local fsync":
        runtime = Runtime(folder / "local", max_queue=100_000)
        try:
            yield runtime
        finally:
            await runtime.close()
        return
    replicas = 3 if storage.endswith("R3") else 1
    async with NatsCluster(folder / f"nats-r{replicas}", servers=replicas) as cluster:
        log = NatsLog(cluster.urls, replicas=replicas)
        await log.connect()
        runtime = Runtime(
            folder / f"r{replicas}", max_queue=100_000, replication=log, replica_name="bench"
        )
        try:
            yield runtime
        finally:
            await runtime.close()
            await log.close()


async def paced(stubs: list[Any], rate: float, seconds: float) -> tuple[list[float], int]:
    """`rate` writes/s in all, round-robin over the actors: the latency from each write's
    scheduled time to its ack, and how many writes failed."""
    latencies: list[float] = []
    failed = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(stub: Any, key: str, scheduled: float) -> None:
        nonlocal failed
        try:
            await stub.write(key)
        except Exception:
            failed += 1
            return
        latencies.append(time.perf_counter() - scheduled)

    start, sent = time.perf_counter(), 0
    while (now := time.perf_counter()) - start < seconds:
        while sent < int((now - start) * rate):
            task = asyncio.create_task(
                one(stubs[sent % len(stubs)], f"p{sent}", start + sent / rate)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*pending)
    return latencies, failed


async def closed_loop(stubs: list[Any], callers: int, seconds: float) -> tuple[float, int]:
    """Acks/s with `callers` callers, each writing again as soon as its last write is acked
    (or failed), and how many failed."""
    acked = failed = 0
    deadline = time.perf_counter() + seconds

    async def caller(number: int) -> None:
        nonlocal acked, failed
        stub, sequence = stubs[number % len(stubs)], 0
        while time.perf_counter() < deadline:
            try:
                await stub.write(f"c{number}-{sequence}")
                acked += 1
            except Exception:
                failed += 1
            sequence += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(callers)))
    return acked / (time.perf_counter() - started), failed


async def measure(
    storage: str, actors: int, folder: Path, rate: float, callers: int, seconds: float
) -> Result:
    async with runtime_on(storage, folder / f"{actors}") as runtime:
        counters = runtime.namespace("counters", Counter)
        stubs = [counters.get(counters.id_from_name(f"actor-{n}")) for n in range(actors)]
        await asyncio.gather(*(stub.write("warm") for stub in stubs))  # activations, epochs
        latencies, failed_paced = await paced(stubs, rate, seconds)
        acks, failed_closed = await closed_loop(stubs, callers, seconds)
    return Result(
        storage,
        actors,
        statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99(latencies) * 1000 if latencies else float("nan"),
        acks,
        failed_paced + failed_closed,
    )


def report(results: list[Result], rate: float, callers: int) -> str:
    lines = [
        f"{'storage':<14} {'actors':>6}   send→ack at {rate:g}/s: {'p50':>8} {'p99':>9}"
        f"   sustained ({callers} callers) {'acks/s':>9}   failed",
    ]
    for r in results:
        lines.append(
            f"{r.storage:<14} {r.actors:>6}   {'':>17}{r.p50_ms:>7.2f} ms {r.p99_ms:>6.2f} ms"
            f"   {'':>21}{r.acks_per_s:>9,.0f}   {r.failed:>6}"
        )
    lines.append("\nRatios to local fsync, same actor count (acks/s: higher is better):")
    local = {r.actors: r for r in results if r.storage == "local fsync"}
    for r in results:
        base = local.get(r.actors)
        if base is None or r is base:
            continue
        lines.append(
            f"  {r.storage:<14} {r.actors:>3} actors: p50 x{r.p50_ms / base.p50_ms:.2f},"
            f" p99 x{r.p99_ms / base.p99_ms:.2f}, acks/s x{r.acks_per_s / base.acks_per_s:.2f}"
        )
    return "\n".join(lines)


async def main(seconds: float, rate: float, callers: int, actor_counts: list[int]) -> None:
    results = []
    with tempfile.TemporaryDirectory(prefix="accord-replication-") as folder:
        for storage in STORAGES:
            for actors in actor_counts:
                result = await measure(
                    storage, actors, Path(folder) / storage.replace(" ", "-"), rate, callers,
                    seconds,
                )  # fmt: skip
                print(
                    f"measured {storage}, {actors} actors: p50 {result.p50_ms:.2f} ms,"
                    f" {result.acks_per_s:,.0f} acks/s, {result.failed} failed",
                    flush=True,
                )
                results.append(result)
    print()
    print(report(results, rate, callers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each window (default 5)")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed load, writes/s")
    parser.add_argument("--callers", type=int, default=200, help="closed-loop callers")
    parser.add_argument("--actors", default="1,100", help="actor counts, comma-separated")
    arguments = parser.parse_args()
    counts = [int(part) for part in arguments.actors.split(",")]
    asyncio.run(main(arguments.seconds, arguments.rate, arguments.callers, counts))
