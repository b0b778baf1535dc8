"""The live demo of chapter 07 (`make demo`): one actor for everything against one per channel.

Two clusters of two workers, one after the other: "global" sharding (one actor hosts every
channel) and "channel" sharding (an actor per channel). Each message holds its actor for 20 ms
(ACCORD_WORK_MS, of kind "turn"): a simulated cost standing for real work, so that one actor's
limit, 50 messages/s at most, shows on a laptop whose cores are far from busy. The same stepped
load (benchmarks/locustfile.py) runs against each, with the limits meant for people typing
lifted (LIFTED_LIMITS), and the send→ack latencies are printed side by side.
"""

import sys
import tempfile
from pathlib import Path

from accord_app.cluster import Cluster
from accord_app.lab.loadtest import LIFTED_LIMITS, LoadTestResult, Step, run_locust

WORKERS = 2
COST = {"ACCORD_WORK_MS": "20", "ACCORD_WORK_KIND": "turn"}
MODES = ("global", "channel")
RATES = (20, 40, 60)  # messages per second, all members together
STEP_SECONDS = 8.0
EXPECTED = """\
What to expect (send→ack medians, measured on a 2-core machine): at 20 messages/s both answer
in about 25 ms (the 20 ms cost, and the write to disk). One actor for everything takes 50
messages/s at most: at 40 it is busy 80% of the time and its median is 70 to 100 ms; at 60
its queue grows every second and its median climbs to about 1 s, some 40x channel's. One
actor per channel spreads the load over 20 actors: about 25 ms at every step."""
# Failure codes that mean a limit refused the load: the demo would show the limit, not sharding.
REFUSALS = ("refused_429", "rate_limited", "too_many_connections")


def run(mode: str, folder: Path) -> LoadTestResult:
    env = {**LIFTED_LIMITS, **COST}
    what = "one actor for everything" if mode == "global" else f"one actor per {mode}"
    print(f"\n{mode} sharding: {WORKERS} workers, {what}; loading it ...", flush=True)
    with Cluster(WORKERS, mode, folder / mode, port=0, env=env) as cluster:
        return run_locust(
            cluster.url,
            folder / f"locust-{mode}",
            rates=RATES,
            step_seconds=STEP_SECONDS,
            warmup_seconds=2,
            join_seconds=1.5,
            processes=1,
        )


def refused(steps: list[Step]) -> int:
    return sum(
        count
        for step in steps
        for entry in step.names.values()
        for code, count in entry.get("failures", {}).items()
        if code in REFUSALS
    )


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def compare(results: dict[str, LoadTestResult]) -> None:
    """The medians (and p99s) of send→ack, side by side, step by step."""
    print("\nsend→ack       global p50      p99   channel p50      p99")
    for by_mode in zip(*(results[mode].steps for mode in MODES), strict=True):
        cells = "".join(f"{ms(step.ack.p50_ms):>12} {ms(step.ack.p99_ms):>8}" for step in by_mode)
        print(f"{by_mode[0].offered:>4.0f} msg/s {cells}")
    top_global, top_channel = (results[mode].steps[-1].ack.p50_ms for mode in MODES)
    if top_global and top_channel:
        print(
            f"At {RATES[-1]} messages/s, one actor for everything answers"
            f" {top_global / top_channel:.0f}x slower than one actor per channel (medians)."
        )
    for mode in MODES:
        timeouts = sum(step.ack.failures.get("ack_timeout", 0) for step in results[mode].steps)
        if timeouts:
            print(f"{mode}: {timeouts} messages waited more than 5 s for their ack (a failure).")


def main() -> None:
    print(__doc__.split("\n\n", 1)[1].strip())
    print(f"\nSteps of {STEP_SECONDS:.0f} s at {', '.join(map(str, RATES))} messages/s.")
    print(EXPECTED, flush=True)
    with tempfile.TemporaryDirectory(prefix="accord-demo-") as folder:
        results = {mode: run(mode, Path(folder)) for mode in MODES}
    compare(results)
    refusals = sum(refused(result.steps) for result in results.values())
    if refusals:
        sys.exit(f"{refusals} requests were refused by a limit: the limits were not lifted.")


if __name__ == "__main__":
    main()
