"""What replication costs an actor's writes, and what it survives: local fsync vs NATS
JetStream with 1 replica vs 3, kill -9 of a busy owner, a paused old owner, and restores.

    .venv/bin/python benchmarks/replication.py                    # everything, about 6 minutes
    .venv/bin/python benchmarks/replication.py --only latency --latency-rounds 1  # a look
    .venv/bin/python benchmarks/replication.py --only failover,zombie --rounds 3
    .venv/bin/python benchmarks/replication.py --reference       # also the committed set
    .venv/bin/python benchmarks/replication.py --report benchmarks/reference/replication
                                                                  # redraw from summary.json

Four parts, in one run (`--only` picks some):

1. latency: for each storage (the actor runtime's own SQLite + fsync; the runtime with
   replication on, its batches on a JetStream stream of 1 replica, then of 3 on a 3-server
   cluster) and for one busy actor and 100 actors: send → ack at a fixed load (`--rate`
   writes/s in all, paced, open loop: latency counts from each write's scheduled time, so a
   stall counts against every write it delays), p50 and p99; then the sustained acks/s of
   `--callers` callers, each sending its next write as soon as the last is acked, for
   `--seconds`, with the CPU each process used meanwhile. All of it `--latency-rounds` times,
   the storages in a rotating order: the medians, and their ratios to local fsync.
2. failover (replication_faults.py): a replicated cluster of 3 hosts behind Caddy, members on
   one channel sending as the frontend does; `--rounds` times, kill -9 of the channel's host at
   a random moment: the time to the first ack on another host, then the acked messages lost,
   stored twice, the gaps; against the router's detection time.
3. zombie (replication_faults.py): `--rounds` times, a busy owner paused with SIGSTOP while
   another host opens a new epoch and acks, then SIGCONT: acks under the stale epoch.
4. restore (replication_restore.py): rebuild and restore time against the log's length
   (`--lengths` batches), with the log's snapshots and without.

Results go to benchmarks/results/replication/ (summary.json; report.md with the targets; the
plots; captions.json, their captions for the deck); with `--reference`, to
benchmarks/reference/replication/ as well. Everything runs on loopback in temporary folders
(removed at the end), and every part stops by itself. The NATS
servers fsync every write (`sync_interval: always`), as the kit always runs them.
"""

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

PROJECT = Path(__file__).resolve().parents[1]
# Its parts beside it, and the test suite's members and replicated actor.
sys.path[:0] = [
    str(Path(__file__).resolve().parent),
    str(PROJECT / "tests" / "replication"),
    str(PROJECT / "tests"),
]

import replication_faults  # noqa: E402
import replication_restore  # noqa: E402
from replication_report import (  # noqa: E402
    STORAGES,
    Result,
    combined,
    latency_table,
    markdown,
    median,
    p99,
    save_figures,
)

from accord_app.actors import Actor, Runtime  # noqa: E402
from accord_app.actors.natslog import NatsLog  # noqa: E402
from accord_app.cluster.nats import NatsCluster, nats_server_executable  # noqa: E402

RESULTS = PROJECT / "benchmarks" / "results" / "replication"
REFERENCE = PROJECT / "benchmarks" / "reference" / "replication"
PARTS = ("latency", "failover", "zombie", "restore")
# A write not acked by then counts as failed (the runtime's own deadline is shorter: the log's
# append deadline plus a second); a part not done by its deadline is stopped and reported, with
# where its tasks were waiting.
WRITE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 30.0  # a runtime that does not close by then is left: its servers stop anyway


class Counter(Actor):
    """One durable write per call: the ack waits for the storage (and, replicated, the log)."""

    async def write(self, key: str) -> None:
        self.storage.put(key, True)


@asynccontextmanager
async def runtime_on(storage: str, folder: Path) -> AsyncIterator[tuple[Runtime, list[int]]]:
    """A runtime whose writes go to `storage`, and the process ids of the NATS servers it
    needs, started and stopped."""
    if storage == "local fsync":
        runtime = Runtime(folder / "local", max_queue=100_000)
        try:
            yield runtime, []
        finally:
            await asyncio.wait_for(runtime.close(), CLOSE_TIMEOUT)
        return
    replicas = 3 if storage.endswith("R3") else 1
    async with NatsCluster(folder / f"nats-r{replicas}", servers=replicas) as cluster:
        log = NatsLog(cluster.urls, replicas=replicas)
        await log.connect()
        runtime = Runtime(
            folder / f"r{replicas}", max_queue=100_000, replication=log, replica_name="bench"
        )
        try:
            yield runtime, [cluster.pid(n) for n in range(1, replicas + 1)]
        finally:
            try:
                await asyncio.wait_for(runtime.close(), CLOSE_TIMEOUT)
            finally:
                await log.close()


def tally(errors: dict[str, int], error: Exception) -> None:
    """A write that got an error instead of an ack, counted by the error's kind."""
    kind = type(error).__name__
    errors[kind] = errors.get(kind, 0) + 1


async def paced(
    stubs: list[Any], rate: float, seconds: float, errors: dict[str, int]
) -> list[float]:
    """`rate` writes/s in all, round-robin over the actors: the latency from each write's
    scheduled time to its ack; the writes that failed, tallied in `errors`."""
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(stub: Any, key: str, scheduled: float) -> None:
        try:
            await asyncio.wait_for(stub.write(key), WRITE_TIMEOUT)
        except Exception as error:
            tally(errors, error)
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
    return latencies


async def closed_loop(
    stubs: list[Any], callers: int, seconds: float, errors: dict[str, int]
) -> float:
    """Acks/s with `callers` callers, each writing again as soon as its last write is acked
    (or failed: tallied in `errors`)."""
    acked = 0
    deadline = time.perf_counter() + seconds

    async def caller(number: int) -> None:
        nonlocal acked
        stub, sequence = stubs[number % len(stubs)], 0
        while time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(stub.write(f"c{number}-{sequence}"), WRITE_TIMEOUT)
                acked += 1
            except Exception as error:
                tally(errors, error)
            sequence += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(callers)))
    return acked / (time.perf_counter() - started)


def cpu_seconds(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def busy_seconds() -> float:
    """CPU seconds the whole machine spent on anything, every core (other work included)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


async def measure(
    storage: str, actors: int, folder: Path, rate: float, callers: int, seconds: float
) -> Result:
    async with runtime_on(storage, folder / f"{actors}") as (runtime, nats_pids):
        counters = runtime.namespace("counters", Counter)
        stubs = [counters.get(counters.id_from_name(f"actor-{n}")) for n in range(actors)]
        await asyncio.gather(*(stub.write("warm") for stub in stubs))  # activations, epochs
        errors: dict[str, int] = {}
        latencies = await paced(stubs, rate, seconds, errors)
        before = time.perf_counter(), cpu_seconds([os.getpid()]), cpu_seconds(nats_pids)
        machine_before = busy_seconds()
        acks = await closed_loop(stubs, callers, seconds, errors)
        elapsed = time.perf_counter() - before[0]
        cpu = {
            "runtime": (cpu_seconds([os.getpid()]) - before[1]) / elapsed,
            "NATS": (cpu_seconds(nats_pids) - before[2]) / elapsed,
            "machine": (busy_seconds() - machine_before) / elapsed,
        }
    return Result(
        storage,
        actors,
        median(latencies) * 1000,
        p99(latencies) * 1000 if latencies else float("nan"),
        acks,
        sum(errors.values()),
        cpu,
        errors,
    )


async def latency(
    folder: Path,
    seconds: float,
    rate: float,
    callers: int,
    actor_counts: list[int],
    rounds: int = 1,
) -> list[Result]:
    """Every storage and actor count, `rounds` times in a rotating order (no storage always
    first, when the machine may be quieter); per pair, the medians over the rounds."""
    measured: dict[tuple[str, int], list[Result]] = {}
    for number in range(rounds):
        order = STORAGES[number % len(STORAGES) :] + STORAGES[: number % len(STORAGES)]
        for storage in order:
            for actors in actor_counts:
                where = folder / f"round-{number}" / storage.replace(" ", "-")
                result = await measure(storage, actors, where, rate, callers, seconds)
                print(
                    f"measured {storage}, {actors} actors: p50 {result.p50_ms:.2f} ms,"
                    f" {result.acks_per_s:,.0f} acks/s, {result.failed} failed",
                    flush=True,
                )
                measured.setdefault((storage, actors), []).append(result)
    results = [combined(measured[storage, n]) for storage in STORAGES for n in actor_counts]
    print()
    print(latency_table(results, rate, callers))
    return results


# -- the run -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the report says of the machine and of the code measured."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "")
    nats = subprocess.run(
        [str(nats_server_executable()), "--version"], capture_output=True, text=True, check=False
    )
    commit = subprocess.run(
        ["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "nats": (nats.stdout.split() or ["?"])[-1],
        "commit": commit.stdout.strip(),
    }


async def sample_load(samples: list[float]) -> None:
    """The 1-minute load average every 5 s, until cancelled: how shared the machine was."""
    while True:
        samples.append(os.getloadavg()[0])
        await asyncio.sleep(5)


def waiting_tasks() -> list[str]:
    """Where each task of this loop is waiting: the innermost frames of its stack."""
    found = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        text = io.StringIO()
        task.print_stack(limit=6, file=text)
        found.append(text.getvalue())
    return found


async def part(name: str, run: Callable[[], Awaitable[Any]], deadline: float) -> Any:
    """One part, within its deadline; one that fails or hangs is reported as such (with where
    it waited), and the others still run."""
    print(f"\n== {name}", flush=True)
    task = asyncio.ensure_future(run())
    done, _ = await asyncio.wait({task}, timeout=deadline)
    if not done:
        stuck = waiting_tasks()
        task.cancel()
        await asyncio.wait({task}, timeout=30)  # its clean-up, if it can
        print(f"{name} did not finish within {deadline:g} s; waiting:\n" + "\n".join(stuck))
        return {"error": f"not done within {deadline:g} s", "waiting": stuck}
    try:
        return task.result()
    except Exception as error:  # a failed part: said in the report, not hidden
        print(f"{name} did not finish: {error!r}", flush=True)
        return {"error": repr(error)}


async def main(options: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "command": " ".join([".venv/bin/python benchmarks/replication.py", *options.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            key: value for key, value in vars(options).items() if key not in ("argv", "reference")
        },
        "machine": machine(),
        "load": [],
    }
    sampler = asyncio.create_task(sample_load(summary["load"]))
    with tempfile.TemporaryDirectory(prefix="accord-replication-") as temporary:
        folder = Path(temporary)
        folder.chmod(0o711)  # the cluster's PostgreSQL, run as a user of its own, passes through
        runs: dict[str, Callable[[], Awaitable[Any]]] = {
            "latency": lambda: latency(
                folder / "latency",
                options.seconds,
                options.rate,
                options.callers,
                options.actors,
                options.latency_rounds,
            ),
            "failover": lambda: replication_faults.failover(
                folder / "failover", options.rounds, options.members, options.seed
            ),
            "zombie": lambda: replication_faults.zombie(
                folder / "zombie", options.rounds, options.seed
            ),
            "restore": lambda: replication_restore.restore_times(
                folder / "restore", options.lengths, options.restore_repeats
            ),
        }
        # Generous: several times what each part takes on a busy 2-core machine.
        deadlines = {
            "latency": len(STORAGES)
            * len(options.actors)
            * options.latency_rounds
            * (2 * options.seconds + 60),
            "failover": 60 + 40 * options.rounds,
            "zombie": 30 + 30 * options.rounds,
            "restore": 60 + sum(options.lengths) * options.restore_repeats / 20,
        }
        try:
            for name in PARTS:
                if name in options.only:
                    summary[name] = await part(name, runs[name], deadlines[name])
        finally:
            sampler.cancel()
    summary["load"].append(os.getloadavg()[0])
    summary["minutes"] = (time.perf_counter() - started) / 60
    return summary


def write(summary: dict[str, Any], folder: Path) -> None:
    """summary.json, the plots and report.md into `folder` (replaced)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    save_figures(summary, folder)
    (folder / "summary.json").write_text(
        json.dumps(summary, indent=1, default=asdict, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (folder / "report.md").write_text(markdown(summary), encoding="utf-8")
    # What the deck's build reads (slides/build.py): each figure's caption and alt text.
    (folder / "captions.json").write_text(
        json.dumps(summary["figures"], indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def numbers(text: str) -> list[int]:
        return [int(part) for part in text.split(",")]

    def parts(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",")]
        unknown = set(chosen) - set(PARTS)
        if unknown:
            raise argparse.ArgumentTypeError(f"no part {sorted(unknown)}: {', '.join(PARTS)}")
        return chosen

    parser.add_argument("--only", type=parts, default=",".join(PARTS), help="parts")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency windows, s")
    parser.add_argument(
        "--latency-rounds", type=int, default=3, help="latency rounds, their medians reported"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="fixed load, writes/s")
    parser.add_argument("--callers", type=int, default=200, help="closed-loop callers")
    parser.add_argument("--actors", type=numbers, default=[1, 100], help="actor counts")
    parser.add_argument("--rounds", type=int, default=10, help="kills, and pauses")
    parser.add_argument("--members", type=int, default=5, help="members of the busy channel")
    parser.add_argument(
        "--lengths", type=numbers, default=[100, 1000, 5000], help="log lengths, in batches"
    )
    parser.add_argument("--restore-repeats", type=int, default=3, help="rebuilds per length")
    parser.add_argument("--seed", type=int, default=9, help="the random moments' seed")
    parser.add_argument(
        "--reference", action="store_true", help=f"also write {REFERENCE.relative_to(PROJECT)}"
    )
    parser.add_argument(
        "--report", type=Path, help="only redraw the report and plots from FOLDER/summary.json"
    )
    options = parser.parse_args(argv)
    options.argv = argv
    return options


def read(folder: Path) -> dict[str, Any]:
    """A run's summary.json, its latency results as Result again."""
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if isinstance(summary.get("latency"), list):
        summary["latency"] = [Result(**result) for result in summary["latency"]]
    return summary


if __name__ == "__main__":
    chosen = arguments(sys.argv[1:])
    if chosen.report:
        write(read(chosen.report), chosen.report)
        print(f"Redrew {chosen.report}/report.md")
    else:
        done = asyncio.run(main(chosen))
        write(done, RESULTS)
        print(f"\nWrote {RESULTS.relative_to(PROJECT)}/report.md")
        if chosen.reference:
            shutil.rmtree(REFERENCE, ignore_errors=True)
            shutil.copytree(RESULTS, REFERENCE)
            print(f"Wrote {REFERENCE.relative_to(PROJECT)}/report.md")
