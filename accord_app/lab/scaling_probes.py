"""Measurements and references for chapter 07's self-checks and demos.

- `offer_load`: open-loop arrivals at a given rate to one actor whose turn takes a fixed time,
  in this process (no network): what the utilisation and Little's laws predict, measured;
- `reference_route_key`: the proxy's rule, read off the same structures that generate the
  Caddy config (accord_app/cluster/caddy.py), to compare an attendee's rule with;
- `knee_cases`: step tables with the traps a reading of "sustained throughput" can fall in.
"""

import asyncio
import random
import re
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from accord_app.actors import Actor, Runtime
from accord_app.chat.sharding import Sharding, key_fields, key_template
from accord_app.cluster.caddy import ACTOR_PATHS
from accord_app.lab.loadtest import Latency, Step


class SlowActor(Actor):
    """Its only method takes `cost_ms` of its turn, like a call to a slow service."""

    async def work(self, cost_ms: float) -> None:
        await asyncio.sleep(cost_ms / 1000)


@dataclass(frozen=True)
class Offered:
    """What one actor did with a load: throughput, and how long messages spent inside."""

    rate: float  # offered, messages per second
    handled: float  # messages per second it finished
    mean_ms: float  # mean time from arrival to answer
    p99_ms: float
    inside: float  # mean number of messages inside (queued or running), measured

    def __str__(self) -> str:
        return (
            f"offered {self.rate:5.0f}/s  handled {self.handled:5.0f}/s  mean {self.mean_ms:6.1f}"
            f" ms  p99 {self.p99_ms:6.1f} ms  inside on average {self.inside:5.1f}"
        )


async def offer_load(
    cost_ms: float, rate: float, seconds: float = 2.0, data_dir: Path | None = None
) -> Offered:
    """Messages arrive at `rate` per second (random gaps, like independent users) for
    `seconds`, each asking one actor for `cost_ms` of work; answers are timed."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="accord-offer-"))
    runtime = Runtime(folder, idle_timeout=60)
    slow = runtime.namespace("slow", SlowActor)
    actor = slow.get(slow.id_from_name("one"))
    await actor.work(0)  # constructed before the clock starts
    latencies: list[float] = []
    inside = 0
    samples: list[int] = []
    loop = asyncio.get_running_loop()

    async def one() -> None:
        nonlocal inside
        inside += 1
        started = loop.time()
        await actor.work(cost_ms)
        latencies.append((loop.time() - started) * 1000)
        inside -= 1

    tasks = []
    started = loop.time()
    next_arrival = started
    while next_arrival < started + seconds:
        await asyncio.sleep(max(0.0, next_arrival - loop.time()))
        tasks.append(loop.create_task(one()))
        samples.append(inside)
        next_arrival += random.expovariate(rate)
    finished_in_window = len(latencies)
    elapsed = loop.time() - started
    await asyncio.gather(*tasks)
    await runtime.close()
    ordered = sorted(latencies)
    return Offered(
        rate=rate,
        handled=finished_in_window / elapsed,
        mean_ms=statistics.fmean(latencies),
        p99_ms=ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        inside=statistics.fmean(samples),
    )


def reference_route_key(mode: Sharding | str, path: str) -> str | None:
    """The key the cluster's proxy hashes for `path`, or None if it sends it to any worker."""
    mode = Sharding(mode)
    for pattern, fields in ACTOR_PATHS.values():
        found = re.match(pattern, path)
        if found and key_fields(mode) <= fields:
            return key_template(mode).format(**found.groupdict())
    return None


def step_of(
    offered: float, acked: float, p99_ms: float, failures: int = 0, sent: float | None = None
) -> Step:
    errors = {"ack_timeout": failures} if failures else {}
    ack = Latency(acked, p99_ms / 3, p99_ms, errors)
    names = {"send→ack": {"per_second": acked, "p99_ms": p99_ms, "failures": errors}}
    return Step(offered, offered if sent is None else sent, ack, ack, 0.1, names)


def knee_cases(seed: int | None = None) -> list[tuple[list[Step], float, float]]:
    """(steps, p99 limit in ms, the sustained throughput) cases, with fresh numbers each run.

    The traps: steps out of order of load (a search visits them so), acks that wander below
    the offered rate, the best step exactly at the limit, a hiccup at a low load, a step with
    a good median but a p99 past the limit, a fast step with failures, one that left a fifth
    of what was sent unacked, one whose generators sent far less than offered, and a case
    where no step kept up."""
    rng = random.Random(seed)
    cases = []
    for number in range(3):
        knee = rng.uniform(40, 900)
        limit = rng.choice([100.0, 250.0, 500.0])
        steps = [
            step_of(rate, rate * rng.uniform(0.97, 0.99), limit * rng.uniform(0.1, 0.9))
            for rate in (knee * 0.25, knee * 0.5, knee * 0.8)
        ]
        best = step_of(knee * 0.95, knee * 0.94, limit)  # exactly at the limit: it counts
        steps += [
            best,
            step_of(knee * 1.3, knee * 1.28, limit * 2),  # all acked; the median was in time
            step_of(knee * 1.1, knee * 1.05, limit * 0.7, failures=3),  # fast, but failures
            step_of(knee * 1.5, knee * 1.2, limit * 0.9),  # fast, but left a fifth unacked
            step_of(knee * 2, knee * 0.9, limit * 0.5, sent=knee * 0.9),  # generators fell short
        ]
        rng.shuffle(steps)
        hiccup = step_of(knee * 0.15, knee * 0.15, limit * 1.5)  # a hiccup at a low load
        steps.insert(0 if number == 0 else rng.randrange(len(steps) + 1), hiccup)
        cases.append((steps, limit, best.offered))
    cases.append(([step_of(100, 60, 5000), step_of(50, 40, 900)], 250.0, 0.0))
    return cases
