"""Measurements and references for chapter 07's self-checks and demos.

- `offer_load`: open-loop arrivals at a given rate to one actor whose turn takes a fixed time,
  in this process (no network): what the utilisation and Little's laws predict, measured;
- `reference_route_key`: the proxy's rule, read off the same structures that generate the
  Caddy config (accord_app/cluster/caddy.py), to compare an attendee's rule with;
- `knee_cases`: step tables with the traps a reading of "sustained throughput" can fall in,
  and `knee_hint`: what a wrong reading of one missed, in words and rounded numbers.
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
from accord_app.lab.checks import shown
from accord_app.lab.loadtest import ACKED_SHARE, SENT_SHARE, Latency, Step


class SlowActor(Actor):
    """Its only method takes `cost_ms` of its turn, like a call to a slow service."""

    async def work(self, cost_ms: float) -> None:
        await asyncio.sleep(cost_ms / 1000)


@dataclass(frozen=True)
class Offered:
    """What one actor did with a load: throughput, and how long messages spent inside."""

    rate: float  # offered, messages per second: the mean rate of the random arrivals
    arrived: float  # messages per second that did arrive: a few seconds' count wanders
    handled: float  # messages per second it finished
    mean_ms: float  # mean time from arrival to answer
    p99_ms: float
    inside: float  # mean number of messages inside (queued or running), measured

    def __str__(self) -> str:
        return (
            f"offered {self.rate:3.0f}/s  arrived {self.arrived:3.0f}/s  handled"
            f" {self.handled:3.0f}/s  mean {self.mean_ms:4.0f} ms  p99 {self.p99_ms:4.0f} ms"
            f"  inside on average {self.inside:4.1f}"
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
        arrived=len(tasks) / elapsed,
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
    the offered rate, a hiccup at a low load, a step with a good median but a p99 past the
    limit, a fast step with failures, one that left a fifth of what was sent unacked, one whose
    generators sent far less than offered, one whose generators sent more than offered but that
    acked only the offered load (not 95% of what it sent), and a case where no step kept up.
    The best step of each table sits on a boundary of the rule: its p99 exactly at the limit
    (table 1), its generators a little short, so that it acked under 85% of the offered load
    but over 95% of what it sent (table 2), or both (table 3)."""
    rng = random.Random(seed)
    cases = []
    for number in range(3):
        knee = rng.uniform(40, 900)
        limit = rng.choice([100.0, 250.0, 500.0])
        steps = [
            step_of(rate, rate * rng.uniform(0.97, 0.99), limit * rng.uniform(0.1, 0.9))
            for rate in (knee * 0.25, knee * 0.5, knee * 0.8)
        ]
        at_limit = number != 1
        short = number != 0
        offered = knee * 0.95
        sent = offered * rng.uniform(0.86, 0.87) if short else None
        acked = (sent or offered) * rng.uniform(0.96, 0.97)
        p99 = limit if at_limit else limit * rng.uniform(0.3, 0.7)
        best = step_of(offered, acked, p99, sent=sent)
        steps += [
            best,
            step_of(knee * 1.3, knee * 1.28, limit * 2),  # all acked; the median was in time
            step_of(knee * 1.1, knee * 1.05, limit * 0.7, failures=3),  # fast, but failures
            step_of(knee * 1.2, knee * 1.2, limit * 0.6, sent=knee * 1.32),  # 91% of sent
            step_of(knee * 1.5, knee * 1.2, limit * 0.9),  # fast, but left a fifth unacked
            step_of(knee * 2, knee * 0.9, limit * 0.5, sent=knee * 0.9),  # generators fell short
        ]
        rng.shuffle(steps)
        hiccup = step_of(knee * 0.15, knee * 0.15, limit * 1.5)  # a hiccup at a low load
        steps.insert(0 if number == 0 else rng.randrange(len(steps) + 1), hiccup)
        cases.append((steps, limit, best.offered))
    cases.append(([step_of(100, 60, 5000), step_of(50, 40, 900)], 250.0, 0.0))
    return cases


def shortfalls(step: Step, p99_limit_ms: float) -> list[str]:
    """Why the server did not keep up with `step`, by the rules of loadtest.kept_up, in words;
    none if it did."""
    found = []
    p99 = step.ack.p99_ms
    if p99 is None:
        found.append("nothing was acked")
    elif p99 > p99_limit_ms:
        found.append(f"its p99 was {p99:.0f} ms, above the {p99_limit_ms:g} ms limit")
    if step.failures:
        found.append(f"it had {step.failures} failure{'s' if step.failures > 1 else ''}")
    if step.acked < ACKED_SHARE * step.sent:
        also = (
            " (acks are compared with what was sent, not with the offered load)"
            if step.acked >= ACKED_SHARE * step.offered
            else ""
        )
        found.append(f"it acked only {step.acked / step.sent:.0%} of what it sent{also}")
    if step.sent < SENT_SHARE * step.offered:
        found.append(
            f"its generators sent only {step.sent / step.offered:.0%} of the offered load: the"
            " step measured the generators, not the server"
        )
    return found


def last_good_before_a_bad_one(steps: list[Step], p99_limit_ms: float) -> float:
    """The offered load of the last step that kept up before the first that did not, in the
    order of the list: a tempting reading, and a wrong one."""
    good = 0.0
    for step in steps:
        if shortfalls(step, p99_limit_ms):
            break
        good = step.offered
    return good


def _near(value: float, other: float) -> bool:
    return abs(value - other) <= 1e-6 * max(1.0, abs(other))


def knee_hint(steps: list[Step], p99_limit_ms: float, expected: float, got: object) -> str:
    """What a reading `got` of the sustained throughput missed, for steps whose right reading is
    `expected`: the step it answered and why that one does not count, or the step it skipped
    and why that one does."""
    rule = (
        f"the rule: p99 ≤ {p99_limit_ms:g} ms, no failure, acked ≥ 95% of sent, sent ≥ 85% of"
        " offered; answer the highest offered load of those steps"
    )
    if isinstance(got, bool) or not isinstance(got, int | float):
        return f"got {shown(got)}: answer a number of messages per second ({rule})"
    value = float(got)
    said = f"you said {value:.1f}/s"
    chosen = next((step for step in steps if _near(value, step.offered)), None)
    acked = next((step for step in steps if _near(value, step.acked)), None)
    if chosen is None and acked is not None:
        return (
            f"{said}: that is what the step offered {acked.offered:.1f}/s acked. Answer the"
            " offered load: a few seconds' acks wander with the random send times"
        )
    which = []
    if chosen is not None and chosen is steps[-1]:
        which.append("the last step in the list, and steps come in any order")
    if chosen is not None and _near(value, max(step.offered for step in steps)):
        which.append("the highest load offered, kept up or not")
    said += f" ({'; '.join(which)})" if which else ""
    missed = [] if chosen is None else shortfalls(chosen, p99_limit_ms)
    if missed:
        return f"{said}, but the server did not keep up with that step: {'; '.join(missed)}"
    best = next((step for step in steps if _near(expected, step.offered)), None)
    if best is None or value > expected:
        return f"{said}: {rule}"
    counts = []
    if best.ack.p99_ms is not None and _near(best.ack.p99_ms, p99_limit_ms):
        counts.append("its p99 is exactly the limit, and within the limit includes it (≤)")
    if best.acked < ACKED_SHARE * best.offered:
        counts.append(
            f"it acked {best.acked / best.offered:.0%} of the offered load but"
            f" {best.acked / best.sent:.0%} of what it sent: the 95% rule compares acks with"
            " what was sent"
        )
    if best.acked < SENT_SHARE * best.offered:
        counts.append(
            f"its generators sent {best.sent / best.offered:.0%} of the offered load, enough:"
            " the 85% rule is about what was sent, not what was acked"
        )
    if _near(value, last_good_before_a_bad_one(steps, p99_limit_ms)):
        counts.append(
            "a step before it in the list did not keep up, and that does not end the search:"
            " one hiccup says nothing about the capacity"
        )
    if 0 < expected - value < 1:
        counts.append("do not round the offered load")
    why = f": {'; '.join(counts)}" if counts else ""
    return f"{said}, but the step offered {expected:.1f}/s kept up and is higher{why}"
