"""Benchmark of the actor runtime (accord_app.actors). Run by hand, takes about a minute:

    .venv/bin/python benchmarks/actor_runtime.py

Measures, on this machine's disk:
1. durable writes acked per second by ONE actor, many concurrent callers: grouped commits vs
   one commit (and fsync) per turn, with p50/p99 ack latency;
2. p99 ack latency at half the grouped throughput, paced (open loop, measured from each call's
   scheduled time, so a stall counts against every call it delays);
3. memory per actor: live (instance + open SQLite) vs hibernated (storage file and alarm-index
   entry only), and hibernated while holding an open WebSocket;
4. wake-up latency of a hibernated actor (open its database, construct it, run a read).

Data goes to a temporary folder under benchmarks/results/ (git-ignored), removed at the end.
"""

import argparse
import asyncio
import functools
import gc
import os
import resource
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from accord_app.actors import Actor, MemoryTransport, Namespace, Runtime
from accord_app.actors.ids import id_from_name

RESULTS = Path(__file__).with_name("results")
CALLERS = 256
HIBERNATED = 100_000
# Each live actor holds three file descriptors (database, -wal, -shm): the per-process limit
# caps how many can be live at once, so the live figure is measured on fewer actors.
LIVE = 5_000
WITH_SOCKETS = 2_000
WAKE_SAMPLES = 1_000
LINKS_PER_FILE = 50_000


class Ledger(Actor):
    async def record(self, key: str) -> None:
        self.storage.put(key, True)

    async def read(self) -> Any:
        return self.storage.get("hello")

    async def hello(self) -> None:
        self.storage.put("hello", "world")

    async def join(self, transport: MemoryTransport) -> None:
        self.ctx.accept_websocket(transport).serialize_attachment({"name": "x"})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def closed_loop(stub: Any, seconds: float) -> tuple[float, list[float]]:
    """CALLERS callers, each awaiting its ack before the next write: acks/s and latencies."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller(number: int) -> None:
        sequence = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await stub.record(f"{number}-{sequence}")
            latencies.append(time.perf_counter() - started)
            sequence += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(CALLERS)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def paced(stub: Any, rate: float, seconds: float) -> list[float]:
    """Open loop at `rate` calls/s; latency from each call's scheduled time to its ack.

    The futures are not kept in a list: 100 000 live objects would make the garbage
    collector's full passes, not the runtime, the source of the tail latency.
    """
    latencies: list[float] = []
    all_acked = asyncio.get_running_loop().create_future()
    outstanding = 0

    def acked(_: object, scheduled: float) -> None:
        nonlocal outstanding
        latencies.append(time.perf_counter() - scheduled)
        outstanding -= 1
        if outstanding == 0 and finished_sending and not all_acked.done():
            all_acked.set_result(None)

    finished_sending = False
    start = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - start < seconds:
        while sent < int((now - start) * rate):
            future = stub.record(f"paced-{sent}")
            future.add_done_callback(functools.partial(acked, scheduled=start + sent / rate))
            outstanding += 1
            sent += 1
        await asyncio.sleep(0.0005)
    finished_sending = True
    if outstanding:
        await all_acked
    return latencies


async def throughput(data_dir: Path, seconds: float) -> None:
    grouped_rate = 0.0
    for mode in ("grouped", "per_turn"):
        runtime = Runtime(data_dir / mode, commit_mode=mode, max_queue=100_000)
        ledgers = runtime.namespace("ledger", Ledger)
        stub = ledgers.get(ledgers.id_from_name("hot"))
        await stub.hello()
        rate, latencies = await closed_loop(stub, seconds)
        grouped_rate = grouped_rate or rate
        print(
            f"{mode:<10} {CALLERS} callers   {rate:>9,.0f} acked writes/s"
            f"   p50 {ms(percentile(latencies, 0.5))}   p99 {ms(percentile(latencies, 0.99))}"
        )
        if mode == "grouped":
            paced_latencies = await paced(stub, grouped_rate / 2, seconds)
            print(
                f"paced at {grouped_rate / 2:,.0f}/s (half of grouped), grouped commits:"
                f"   p50 {ms(percentile(paced_latencies, 0.5))}"
                f"   p99 {ms(percentile(paced_latencies, 0.99))}"
            )
        await runtime.close()
    print(f"grouped / per_turn throughput: {grouped_rate / rate:.1f}x")


def python_and_rss() -> tuple[int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], rss_bytes()


def per_actor(before: tuple[int, int], after: tuple[int, int], count: int) -> str:
    python = (after[0] - before[0]) / count
    rss = (after[1] - before[1]) / count
    return f"{python:>8,.0f} B Python objects   {rss:>8,.0f} B RSS"


async def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def memory_and_wakeup(data_dir: Path) -> None:
    runtime = Runtime(data_dir / "memory", idle_timeout=2.0, max_queue=10)
    ledgers = runtime.namespace("ledger", Ledger)
    stubs = [ledgers.get(ledgers.id_from_name(str(n))) for n in range(LIVE)]
    await asyncio.gather(*(stub.hello() for stub in stubs))  # create their files
    await wait_until(lambda: ledgers.live_count == 0)

    tracemalloc.start()
    before = python_and_rss()
    await asyncio.gather(*(stub.read() for stub in stubs))
    print(f"live        ({LIVE:,} actors)        {per_actor(before, python_and_rss(), LIVE)}")
    await wait_until(lambda: ledgers.live_count == 0)
    await asyncio.sleep(0.5)  # background closes finish
    print(f"after they hibernate again           {per_actor(before, python_and_rss(), LIVE)}")

    clients = [MemoryTransport() for _ in range(WITH_SOCKETS)]
    before = python_and_rss()
    await asyncio.gather(*(stub.join(client) for stub, client in zip(stubs, clients, strict=False)))
    await wait_until(lambda: ledgers.live_count == 0)
    await asyncio.sleep(0.5)
    print(
        f"hibernated + 1 open WebSocket ({WITH_SOCKETS:,})"
        f" {per_actor(before, python_and_rss(), WITH_SOCKETS)}"
        "  (transport objects excluded)"
    )
    tracemalloc.stop()

    wake = []
    for stub in stubs[WITH_SOCKETS : WITH_SOCKETS + WAKE_SAMPLES]:
        started = time.perf_counter()
        await stub.read()
        wake.append(time.perf_counter() - started)
    print(
        f"wake-up of a hibernated actor ({WAKE_SAMPLES} samples, open db + construct + read):"
        f"   p50 {ms(percentile(wake, 0.5))}   p99 {ms(percentile(wake, 0.99))}"
    )
    template = ledgers.storage_path(stubs[-1].id.hex)
    await runtime.close()
    await hibernated_at_scale(data_dir / "memory", template)


async def hibernated_at_scale(data_dir: Path, template: Path) -> None:
    """HIBERNATED actors, each with a storage file (hard links to one real actor's file, to
    spare the disk) and a pending alarm in the namespace's index, then a fresh runtime."""
    (data_dir / "sleepers").mkdir()
    index = sqlite3.connect(data_dir / "sleepers" / "alarms.sqlite3", isolation_level=None)
    index.execute("CREATE TABLE alarms (actor TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID")
    index.execute("CREATE INDEX alarms_by_time ON alarms (at)")
    far_future = time.time() + 86_400
    actors = [id_from_name("sleepers", str(n)).hex for n in range(HIBERNATED)]
    index.executemany("INSERT INTO alarms VALUES (?, ?)", [(actor, far_future) for actor in actors])
    index.close()
    sources = []
    for number in range(0, HIBERNATED, LINKS_PER_FILE):  # ext4 allows 65 000 links per file
        sources.append(data_dir / f"template-{number}.sqlite3")
        shutil.copyfile(template, sources[-1])

    def link(number: int) -> None:
        actor = actors[number]
        path = data_dir / "sleepers" / actor[:2] / actor[2:4] / f"{actor}.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(sources[number // LINKS_PER_FILE], path)

    with ThreadPoolExecutor(16) as pool:  # file creation is slow on this disk; overlap it
        list(pool.map(link, range(HIBERNATED)))

    tracemalloc.start()
    before = python_and_rss()
    runtime = Runtime(data_dir, idle_timeout=60)
    sleepers: Namespace[Ledger] = runtime.namespace("sleepers", Ledger)
    await asyncio.sleep(0.2)  # the alarm scheduler has read the index
    after = python_and_rss()
    tracemalloc.stop()
    started = time.perf_counter()
    listed = sleepers.list_actors()
    listing = time.perf_counter() - started
    assert len(listed) == HIBERNATED and not any(info.live for info in listed)
    del listed
    await runtime.close()
    print(f"hibernated  ({HIBERNATED:,} actors)      {per_actor(before, after, HIBERNATED)}")
    print(f"list_actors() over {HIBERNATED:,} hibernated actors (from disk): {listing:.2f} s")


async def main(seconds: float) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    RESULTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=RESULTS) as folder:
        print(f"Accord actor runtime benchmark ({os.cpu_count()} CPUs, data in {folder})")
        print("\n-- one actor, durable writes (fsync'ed before the ack) --")
        await throughput(Path(folder), seconds)
        print("\n-- memory per actor (tracemalloc / RSS deltas) and wake-up --")
        await memory_and_wakeup(Path(folder))
        print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    asyncio.run(main(parser.parse_args().seconds))
