"""One actor or many: the scaling benchmark behind chapter 07 (`make bench`).

    .venv/bin/python benchmarks/scaling.py            # everything, about 30 minutes
    .venv/bin/python benchmarks/scaling.py --quick    # fixed steps, fewer runs: about 2 minutes
    .venv/bin/python benchmarks/scaling.py --report benchmarks/reference   # redraw a report

Every experiment starts a real cluster (accord_app.cluster: K worker processes behind Caddy)
on loopback, and loads it with the Locust test in benchmarks/locustfile.py (a master and two
generator processes). Results go to benchmarks/results/scaling-<date>/ (git-ignored):
summary.json (every step of every run), report.md, one figure per point (drawn by
accord_app/lab/plots.py, as the deck's and chapter 07's are) with its caption in
captions.json, and each run's Locust CSVs.

The experiments (full run; --quick keeps a few):

- scaling: 400 channels in 40 servers, 2 members each, a per-message cost of 10 ms of kind
  "blocking" (the worker's event loop waits: each worker behaves like a one-core machine, so K
  workers act like K machines even on a 2-core laptop). For sharding global, server, channel
  x K = 1, 2, 4, 8: the offered load searches for the knee, and the sustained throughput is
  the highest step whose send→ack p99 stays under 250 ms with no failure.
- turn: 20 channels, one worker, a 20 ms cost of kind "turn" (only the actor waits: the
  process and the core stay free). One actor is one line: global vs channel sharding.
- isolation: the same, at a fixed light load (1 message/s per channel), without and with one
  hot channel taking 40 more messages/s: the quiet channels' p99 in each mode.
- hot: one channel alone on four workers: its throughput is one actor's, whatever K.
- activity: GET /api/servers/{id}/activity on 4 workers, for servers of 1 to 1000 channels:
  one actor call with server sharding, one per channel (across processes) with channel
  sharding. No per-message cost.
- proxy: the same light load (no cost) through Caddy and straight to the worker, twice each.
- nocost: the cost off, one worker: global vs channel, to show why on one process fewer actors
  do better (fewer commits and files for the same messages; the event loop is the limit).

How it can mislead: two cores run the workers, Caddy and the load generators together. Every
step records the generators' CPU (a generator near 100% of a core flags the step) and every
run the workers' and the proxy's. Loopback only: no network latency. Durability is real
(fsync per commit). Run it twice before trusting a difference of 10%.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from matplotlib.figure import Figure

from accord_app.cluster import Cluster, ClusterError
from accord_app.cluster.caddy import caddy_executable
from accord_app.lab import plots
from accord_app.lab.loadtest import (
    GENERATOR_BUSY,
    LIFTED_LIMITS,
    LoadTestError,
    Step,
    run_locust,
    sustained_throughput,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "benchmarks" / "results"
P99_LIMIT_MS = 250.0
MODES = ["global", "server", "channel"]
# Load tests open hundreds of sockets from one address; the per-connection limit is not what
# is measured here.


@dataclass(frozen=True)
class Load:
    """One cluster, loaded by one Locust run."""

    experiment: str
    mode: str
    workers: int
    cost_ms: float = 0.0
    kind: str = "turn"
    channels: int = 20
    servers: int = 4
    members: int = 2
    rates: tuple[float, ...] = ()  # fixed steps; empty: search for the knee
    search_from: float = 20.0  # unless a run with fewer workers found a knee already
    precision: float = 1.08  # the search stops when the knee is known within this factor
    hot_share: float = 0.0
    hot_members: int = 0  # the hot channel's (0: --members)
    direct: bool = False  # straight to worker 1, not through the proxy
    step_seconds: float = 4.0
    warmup_seconds: float = 1.0
    min_samples: int = 400  # a step lasts long enough for this many messages (a steadier p99)
    repeat: int = 0

    @property
    def label(self) -> str:
        cost = f", {self.cost_ms:g} ms {self.kind}" if self.cost_ms else ""
        hot = f", hot {self.hot_share:.0%}" if self.hot_share else ""
        path = ", direct" if self.direct else ""
        return f"{self.experiment}: {self.mode}, K={self.workers}{cost}{hot}{path}"


@dataclass(frozen=True)
class ActivityPlan:
    modes: tuple[str, ...]
    workers: int
    sizes: tuple[int, ...]
    samples: int


@dataclass(frozen=True)
class Plan:
    loads: list[Load]
    activity: ActivityPlan | None


def full_plan() -> Plan:
    scaling = Load(
        "scaling",
        "",
        1,
        cost_ms=10,
        kind="blocking",
        channels=400,
        servers=40,
        search_from=40,
        step_seconds=5,
        warmup_seconds=1.5,
    )
    turn = replace(
        scaling, experiment="turn", cost_ms=20, kind="turn", channels=20, servers=4, search_from=30
    )
    quiet = Load(
        "isolation", "", 1, cost_ms=20, kind="turn", rates=(20,), step_seconds=20, warmup_seconds=3
    )
    # A popular channel: 20 members, 2 messages/s each. (The runtime reads one message per
    # connection at a time, so a couple of busy connections could not crowd the others out.)
    quiet_hot = replace(quiet, rates=(59,), hot_share=40 / 59, hot_members=20)
    light = Load("proxy", "channel", 1, rates=(200,), step_seconds=8, warmup_seconds=2)
    loads = [
        *(replace(scaling, mode=m, workers=k) for m in MODES for k in (1, 2, 4, 8)),
        *(replace(turn, mode=m) for m in ("global", "channel")),
        *(replace(load, mode=m) for m in ("global", "channel") for load in (quiet, quiet_hot)),
        replace(
            turn, experiment="hot", mode="channel", workers=4, channels=1, servers=1, members=4
        ),
        *(replace(light, direct=d, repeat=r) for r in (0, 1) for d in (False, True)),
        *(
            replace(turn, experiment="nocost", mode=m, cost_ms=0, search_from=100)
            for m in ("global", "channel")
        ),
    ]
    return Plan(loads, ActivityPlan(tuple(MODES), 4, (1, 10, 100, 1000), 30))


def quick_plan() -> Plan:
    # Fixed steps around one actor's ceiling (1000 / 20 ms = 50/s) instead of a search: a
    # rough knee in a couple of minutes, to see the shape before the full run.
    scaling = Load(
        "scaling",
        "",
        1,
        cost_ms=20,
        kind="blocking",
        channels=100,
        servers=10,
        rates=(20, 30, 40, 50),
        step_seconds=5,
    )
    loads = [replace(scaling, mode="global", workers=k) for k in (1, 2)]
    loads.append(replace(scaling, mode="channel", workers=2, rates=(20, 35, 50, 65, 80, 100)))
    return Plan(loads, ActivityPlan(("server", "channel"), 2, (1, 10, 100), 10))


# -- running -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def output(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
        except OSError:
            return ""

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in output(["cat", "/proc/cpuinfo"]).splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "caddy": output([str(caddy_executable()), "version"]).split(" ")[0].strip(),
        "locust": " ".join(output([sys.executable, "-m", "locust", "--version"]).split()[1:2]),
        "commit": output(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD"]).strip(),
    }


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_load(load: Load, search_from: float, folder: Path) -> dict[str, Any]:
    env = {**LIFTED_LIMITS, "ACCORD_WORK_MS": f"{load.cost_ms:g}", "ACCORD_WORK_KIND": load.kind}
    started = time.monotonic()
    with Cluster(load.workers, load.mode, folder / "data", port=0, env=env) as cluster:
        workers = [cluster.pid(n) for n in range(1, load.workers + 1)]
        proxy = [cluster.proxy_pid] if cluster.proxy_pid else []
        before = (cpu_seconds(workers), cpu_seconds(proxy), time.monotonic())
        result = run_locust(
            cluster.worker_url(1) if load.direct else cluster.url,
            folder / "locust",
            rates=load.rates,
            search_from=0.0 if load.rates else search_from,
            precision=load.precision,
            step_seconds=load.step_seconds,
            min_samples=0 if load.rates else load.min_samples,
            warmup_seconds=load.warmup_seconds,
            servers=load.servers,
            channels=load.channels,
            members=load.members,
            hot_share=load.hot_share,
            hot_members=load.hot_members,
            stop_p99_ms=P99_LIMIT_MS,
        )
        seconds = time.monotonic() - before[2]
        server_cpu = {
            "workers": (cpu_seconds(workers) - before[0]) / seconds,
            "proxy": (cpu_seconds(proxy) - before[1]) / seconds,
        }
    shutil.rmtree(folder / "data", ignore_errors=True)  # the actors' files: not results
    steps = json.loads((result.folder / "steps.json").read_text())["steps"]
    return {
        **asdict(load),
        "label": load.label,
        "search_from": 0.0 if load.rates else search_from,
        "steps": steps,
        "server_cpu": server_cpu,
        "seconds": time.monotonic() - started,
    }


def run_activity(plan: ActivityPlan, mode: str, folder: Path) -> list[dict[str, Any]]:
    """Servers of each size; then `samples` sequential GETs of each one's activity."""
    found = []
    with (
        Cluster(plan.workers, mode, folder / "data", port=0, env=LIFTED_LIMITS) as cluster,
        httpx.Client(base_url=cluster.url, timeout=60, trust_env=False) as http,
    ):
        for size in plan.sizes:
            server_id = http.post("/api/servers", json={"name": f"{size} channels"}).json()["id"]
            for number in range(size):
                response = http.post(
                    f"/api/servers/{server_id}/channels", json={"name": f"channel {number}"}
                )
                response.raise_for_status()
            path = f"/api/servers/{server_id}/activity"
            for _ in range(2):  # wakes the actors (and creates their files) before measuring
                http.get(path).raise_for_status()
            samples = []
            # Enough samples for a p99 where a request is quick; a few where it takes seconds.
            for _ in range(plan.samples if size <= 100 else max(5, plan.samples // 4)):
                started = time.perf_counter()
                response = http.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                assert len(response.json()) == size
            found.append({"mode": mode, "workers": plan.workers, "channels": size, "ms": samples})
    shutil.rmtree(folder / "data", ignore_errors=True)
    return found


def progress(done: int, total: int, started: float, label: str) -> None:
    elapsed = time.monotonic() - started
    left = elapsed / done * (total - done) if done else 0
    bar = "#" * round(20 * done / total) + "-" * (20 - round(20 * done / total))
    print(
        f"[{bar}] {done}/{total} · {elapsed / 60:.1f} min"
        + (f" · ~{left / 60:.0f} min left" if done else "")
        + f" · {label}",
        flush=True,
    )


def previous_knee(runs: list[dict[str, Any]], load: Load) -> float | None:
    """The sustained throughput of the same experiment and mode with fewer workers."""
    knees = [
        sustained_throughput([Step.of(s) for s in run["steps"]], P99_LIMIT_MS)
        for run in runs
        if (run["experiment"], run["mode"]) == (load.experiment, load.mode)
        and run["workers"] < load.workers
        and not run["rates"]
    ]
    return max(knees) if knees and max(knees) > 0 else None


def run_plan(plan: Plan, folder: Path, quick: bool, only: set[str]) -> dict[str, Any]:
    loads = [load for load in plan.loads if not only or load.experiment in only]
    activity = plan.activity if not only or "activity" in only else None
    summary: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "p99_limit_ms": P99_LIMIT_MS,
        "loads": [],
        "activity": [],
        "errors": [],
    }
    total = len(loads) + (len(activity.modes) if activity else 0)
    started = time.monotonic()
    for index, load in enumerate(loads):
        progress(index, total, started, load.label)
        knee = previous_knee(summary["loads"], load)
        name = load.label.replace(": ", "-").replace(", ", "-").replace(" ", "")
        try:
            summary["loads"].append(
                run_load(load, knee or load.search_from, folder / "runs" / name)
            )
        except (ClusterError, LoadTestError) as error:  # the others can still run
            print(f"  {load.label} failed: {error}", flush=True)
            summary["errors"].append(f"{load.label}: {error}")
        save(summary, folder)
    for index, mode in enumerate(activity.modes if activity else ()):
        assert activity is not None
        progress(len(loads) + index, total, started, f"activity: {mode}, K={activity.workers}")
        try:
            summary["activity"] += run_activity(
                activity, mode, folder / "runs" / f"activity-{mode}"
            )
        except (ClusterError, httpx.HTTPError) as error:
            print(f"  activity ({mode}) failed: {error}", flush=True)
            summary["errors"].append(f"activity ({mode}): {error}")
        save(summary, folder)
    progress(total, total, started, "done")
    summary["seconds"] = time.monotonic() - started
    save(summary, folder)
    return summary


def save(summary: dict[str, Any], folder: Path) -> None:
    (folder / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


# -- what the runs say ---------------------------------------------------------------------------


def steps_of(run: dict[str, Any]) -> list[Step]:
    return [Step.of(step) for step in run["steps"]]


def runs_of(summary: dict[str, Any], experiment: str) -> list[dict[str, Any]]:
    return [run for run in summary["loads"] if run["experiment"] == experiment]


def sustained_by_mode(summary: dict[str, Any], experiment: str) -> dict[str, dict[int, float]]:
    """{mode: {K: sustained messages/s}}, modes in the order global, server, channel."""
    found: dict[str, dict[int, float]] = {}
    for mode in MODES:
        for run in runs_of(summary, experiment):
            if run["mode"] == mode:
                value = sustained_throughput(steps_of(run), summary["p99_limit_ms"])
                found.setdefault(mode, {})[run["workers"]] = value
    return found


def quiet_p99(run: dict[str, Any]) -> float | None:
    """The quiet channels' send→ack p99 of a one-step run (the hot channel is named apart)."""
    [step] = steps_of(run) or [None]
    return None if step is None else step.ack.p99_ms


@dataclass
class Target:
    what: str
    measured: str
    met: bool | None  # None: not measured in this run


@dataclass
class Findings:
    scaling: dict[str, dict[int, float]] = field(default_factory=dict)
    turn: dict[str, float] = field(default_factory=dict)
    isolation: dict[str, tuple[float, float]] = field(default_factory=dict)
    hot: float | None = None
    proxy: dict[str, tuple[float, float]] = field(default_factory=dict)  # path: (p50, p99)
    nocost: dict[str, float] = field(default_factory=dict)
    activity: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    busy_generators: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def findings(summary: dict[str, Any]) -> Findings:
    found = Findings()
    limit = summary["p99_limit_ms"]
    found.scaling = sustained_by_mode(summary, "scaling")
    found.turn = {mode: by_k[1] for mode, by_k in sustained_by_mode(summary, "turn").items()}
    found.nocost = {mode: by_k[1] for mode, by_k in sustained_by_mode(summary, "nocost").items()}
    for mode in MODES:
        runs = [run for run in runs_of(summary, "isolation") if run["mode"] == mode]
        calm = [quiet_p99(run) for run in runs if not run["hot_share"]]
        hot = [quiet_p99(run) for run in runs if run["hot_share"]]
        if calm and hot and calm[0] is not None and hot[0] is not None:
            found.isolation[mode] = (calm[0], hot[0])
    hot_runs = runs_of(summary, "hot")
    if hot_runs:
        found.hot = sustained_throughput(steps_of(hot_runs[0]), limit)
    for direct, path in ((False, "through Caddy"), (True, "straight to the worker")):
        steps = [steps_of(run)[0] for run in runs_of(summary, "proxy") if run["direct"] == direct]
        if steps:
            found.proxy[path] = (
                statistics.median(s.ack.p50_ms or 0.0 for s in steps),
                statistics.median(s.ack.p99_ms or 0.0 for s in steps),
            )
    for entry in summary["activity"]:
        found.activity.setdefault(entry["mode"], {})[entry["channels"]] = (
            percentile(entry["ms"], 0.5),
            percentile(entry["ms"], 0.99),
        )
    for run in summary["loads"]:
        for step in steps_of(run):
            if step.generator_cpu > GENERATOR_BUSY:
                found.busy_generators.append(f"{run['label']} at {step.offered:.0f}/s")
    found.targets = targets(found)
    return found


def targets(found: Findings) -> list[Target]:
    result = []
    turn = found.turn
    if "global" in turn and "channel" in turn:
        ratio = turn["channel"] / turn["global"] if turn["global"] else float("inf")
        result.append(
            Target(
                "turn cost, K=1: channel sharding ≥ 10x global's sustained throughput",
                f"{turn['channel']:.0f} vs {turn['global']:.0f} messages/s: {ratio:.1f}x",
                ratio >= 10,
            )
        )
    for mode, needed, check in (
        ("channel", "unchanged (within 20%)", lambda r: r <= 1.2),
        ("global", "grows ≥ 5x", lambda r: r >= 5),
    ):
        if mode in found.isolation:
            calm, hot = found.isolation[mode]
            result.append(
                Target(
                    f"quiet channels' p99 beside a hot channel, {mode} sharding: {needed}",
                    f"{calm:.0f} → {hot:.0f} ms ({hot / calm:.1f}x)",
                    check(hot / calm),
                )
            )
    scaling = found.scaling
    if "global" in scaling and len(scaling["global"]) > 1:
        values = scaling["global"]
        base = values[min(values)]
        spread = max(abs(v / base - 1) for v in values.values()) if base else float("inf")
        result.append(
            Target(
                "blocking cost: global's sustained throughput within ±15% as K grows",
                ", ".join(f"K={k}: {v:.0f}" for k, v in sorted(values.items()))
                + f" (at most {spread:.0%} from K={min(values)})",
                spread <= 0.15,
            )
        )
    if "global" in scaling and "channel" in scaling:
        for k, value in sorted(scaling["channel"].items()):
            base = scaling["global"].get(k)
            if k == 1 or not base:
                continue
            result.append(
                Target(
                    f"blocking cost, K={k}: channel sharding ≥ 0.7·K x global",
                    f"{value:.0f} vs {base:.0f} messages/s: {value / base:.1f}x (target"
                    f" {0.7 * k:.1f}x)",
                    value >= 0.7 * k * base,
                )
            )
    if "server" in found.activity and "channel" in found.activity:
        largest = max(set(found.activity["server"]) & set(found.activity["channel"]))
        smallest = min(found.activity["channel"])
        channel, server = found.activity["channel"], found.activity["server"]
        result.append(
            Target(
                "activity endpoint: channel sharding's p99 grows with the channels while"
                " server sharding's stays flat",
                f"channel {channel[smallest][1]:.0f} → {channel[largest][1]:.0f} ms, server"
                f" {server[smallest][1]:.0f} → {server[largest][1]:.0f} ms"
                f" ({smallest} → {largest} channels)",
                channel[largest][1] / channel[smallest][1]
                > 2 * server[largest][1] / server[smallest][1],
            )
        )
    return result


# -- the report ------------------------------------------------------------------------------------


@dataclass
class Drawn:
    """One figure of the report, with the caption and alt text that go wherever it is shown
    (report.md, captions.json for the deck)."""

    name: str
    figure: Figure
    caption: str
    alt: str


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def where(summary: dict[str, Any]) -> str:
    m = summary["machine"]
    note = f"; {summary['note']}" if summary.get("note") else ""
    return (
        f"benchmarks/scaling.py, {summary['started'][:10]}, Accord {m['commit']}, {m['cpu']}"
        f" ({m['cores']} cores{note})."
    )


def run_settings(runs: Sequence[dict[str, Any]]) -> str:
    """The settings the runs of one figure share, and their steps and durations, from the
    runs themselves: workers, cost, channels, steps, step length, time."""
    first = runs[0]
    workers = sorted({run["workers"] for run in runs})
    on = (
        f"{plural(workers[0], 'worker')}"
        if len(workers) == 1
        else "K = " + ", ".join(str(k) for k in workers) + " workers"
    )
    steps = [len(run["steps"]) for run in runs]
    seconds = [run["seconds"] for run in runs]
    if len(runs) == 1:
        counted, timed = plural(steps[0], "step"), f"{seconds[0]:.0f} s"
    else:
        spread = f"{min(steps)} to {max(steps)}" if min(steps) < max(steps) else f"{steps[0]}"
        counted = f"{plural(len(runs), 'run')} of {spread} step{'s' if max(steps) > 1 else ''}"
        timed = f"{min(seconds):.0f} to {max(seconds):.0f} s each"
    cost = f"a {cost_of(first)} cost per message" if first.get("cost_ms") else "no extra cost"
    return (
        f"{on}, {cost}, {first['channels']} channels of"
        f" {first['members']} members in {first['servers']} servers; {counted} of"
        f" {first['step_seconds']:g} s after {first['warmup_seconds']:g} s of warm-up,"
        f" {timed}."
    )


def figures(summary: dict[str, Any], found: Findings) -> list[Drawn]:
    """The figures that this run's data can fill, each with its caption."""
    drawn = []
    limit = summary["p99_limit_ms"]
    turn_runs = runs_of(summary, "turn")
    turn = {run["mode"]: steps_of(run) for run in turn_runs}
    if turn:
        drawn += [
            Drawn(
                "one_worker_latency.png",
                plots.latency_figure(turn, limit_ms=limit),
                "Only one actor: send→ack p99 against the offered load, one actor for every"
                " channel (global) or one per channel. "
                + run_settings(turn_runs)
                + f" Dashed: the {limit:g} ms limit. "
                + where(summary),
                "send→ack p99 against offered load on one worker, global and channel sharding",
            ),
            Drawn(
                "one_worker_throughput.png",
                plots.throughput_figure(turn),
                "Messages acked per second against the offered load; dotted: keeping up. "
                + run_settings(turn_runs)
                + " "
                + where(summary),
                "acked against offered messages per second on one worker, global and channel",
            ),
        ]
    if found.scaling:
        scaling_runs = runs_of(summary, "scaling")
        drawn.append(
            Drawn(
                "scaling_line.png",
                plots.scaling_figure(found.scaling, ideal="channel"),
                "Sustained throughput (the highest offered load with send→ack p99 under"
                f" {limit:g} ms, no failure, ≥ 95% acked) against the number of workers, per"
                " sharding mode; dotted: K times channel sharding's one-worker figure. "
                + run_settings(scaling_runs)
                + " "
                + where(summary),
                "sustained messages per second against workers, per sharding mode",
            )
        )
        top = max(run["workers"] for run in scaling_runs)
        at_top = [run for run in scaling_runs if run["workers"] == top]
        drawn.append(
            Drawn(
                f"scaling_load_k{top}.png",
                plots.throughput_figure({run["mode"]: steps_of(run) for run in at_top}),
                f"Messages acked per second against the offered load on {top} workers, per"
                " sharding mode; dotted: keeping up. "
                + run_settings(at_top)
                + " "
                + where(summary),
                f"acked against offered messages per second on {top} workers, per mode",
            )
        )
    if found.isolation:
        isolation_runs = [
            run for run in runs_of(summary, "isolation") if run["mode"] in found.isolation
        ]
        calm = [run for run in isolation_runs if not run["hot_share"]]
        hot = [run for run in isolation_runs if run["hot_share"]]
        per_channel = calm[0]["rates"][0] / calm[0]["channels"]
        hot_rate = hot[0]["rates"][0] * hot[0]["hot_share"]
        drawn.append(
            Drawn(
                "hot_channel.png",
                plots.isolation_figure(found.isolation, limit_ms=limit),
                f"Send→ack p99 of {calm[0]['channels'] - 1} quiet channels at"
                f" {per_channel:g} message/s each, alone and beside one hot channel taking"
                f" {hot_rate:.0f} messages/s from {hot[0]['hot_members']} members. "
                + run_settings(isolation_runs)
                + f" Dashed: the {limit:g} ms limit. "
                + where(summary),
                "quiet channels' p99 alone and beside a hot channel, per sharding mode",
            )
        )
    nocost_runs = runs_of(summary, "nocost")
    if nocost_runs:
        drawn.append(
            Drawn(
                "no_cost_latency.png",
                plots.latency_figure(
                    {run["mode"]: steps_of(run) for run in nocost_runs}, limit_ms=limit
                ),
                "Without the extra cost, on one process: send→ack p99 against the offered load,"
                " one actor for every channel (global) or one per channel. The event loop, not"
                " an actor, is the limit, and fewer actors share each commit. "
                + run_settings(nocost_runs)
                + f" Dashed: the {limit:g} ms limit. "
                + where(summary),
                "send→ack p99 against offered load with no extra cost, global and channel",
            )
        )
    if found.activity:
        entries = summary["activity"]
        samples = sorted({len(entry["ms"]) for entry in entries})
        drawn.append(
            Drawn(
                "activity_cost.png",
                plots.activity_figure(found.activity),
                "The price of many actors: p99 of GET /api/servers/{id}/activity (the latest"
                " message of every channel) against the channels in the server, per sharding"
                f" mode. {plural(entries[0]['workers'], 'worker')}, no extra cost,"
                f" {' to '.join(str(n) for n in samples[:: max(1, len(samples) - 1)])} sequential"
                " requests per size. " + where(summary),
                "activity endpoint p99 against channels per server, per sharding mode",
            )
        )
    return drawn


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def setting(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """How an experiment's runs were set up (its first run's settings)."""
    found: dict[str, Any] = next(r for r in summary["loads"] if r["experiment"] == experiment)
    return found


def cost_of(run: dict[str, Any]) -> str:
    return f"{run['cost_ms']:g} ms {run['kind']}" if run.get("cost_ms") else "no extra cost"


def report(summary: dict[str, Any], found: Findings, drawn: Sequence[Drawn]) -> str:
    m = summary["machine"]
    note = summary.get("note", "")
    ticks = {True: "✅", False: "❌", None: "-"}
    captioned = {figure.name: figure for figure in drawn}

    def shown(*prefixes: str) -> list[str]:
        """The figures whose names start so, each with its caption."""
        return [
            f"![{figure.alt}]({name})\n\n*{figure.caption}*"
            for name, figure in captioned.items()
            if name.startswith(prefixes)
        ]

    parts = [
        "# One actor or many: scaling results",
        f"{'Quick run' if summary['quick'] else 'Full run'} of `benchmarks/scaling.py`, started"
        f" {summary['started']}, {summary.get('seconds', 0) / 60:.1f} minutes. Machine:"
        f" {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['system']}, Python"
        f" {m['python']}, Caddy {m['caddy']}, Locust {m['locust']}, Accord"
        f" {m['commit']}{'. ' + note[:1].upper() + note[1:] if note else ''}."
        " Sustained throughput = the highest step whose send→ack p99 stayed"
        f" under {summary['p99_limit_ms']:g} ms with no failure and ≥ 95% of what was sent"
        " acked.",
        "## Targets",
        table(
            ["", "target", "measured"], [[ticks[t.met], t.what, t.measured] for t in found.targets]
        ),
    ]
    if found.scaling:
        ks = sorted({k for values in found.scaling.values() for k in values})
        rows = [
            [mode, *(f"{values[k]:.0f}" if k in values else "" for k in ks)]
            for mode, values in found.scaling.items()
        ]
        run = setting(summary, "scaling")
        parts += [
            f"## Scaling: sustained messages/s ({cost_of(run)} cost per message)",
            f"Each worker's event loop waits {run['cost_ms']:g} ms per message, so one worker is"
            " one small machine. Global sharding puts every channel in one actor, on one"
            f" worker: adding workers adds nothing. Channel sharding spreads {run['channels']}"
            " actors over the workers by rendezvous hashing; the busiest worker sets the pace,"
            f" so it scales a little below Kx. Server sharding has {run['servers']} actors to"
            f" spread. Every channel has {run['members']} members.",
            table(["mode", *(f"K={k}" for k in ks)], rows),
            *shown("scaling_"),
        ]
    if found.turn:
        run = setting(summary, "turn")
        parts += [
            f"## One actor is one line ({cost_of(run)} cost, one worker,"
            f" {run['channels']} channels)",
            table(
                ["mode", "sustained messages/s"], [[m, f"{v:.0f}"] for m, v in found.turn.items()]
            ),
            f"One actor serves at most 1000 / {run['cost_ms']:g} ="
            f" {1000 / run['cost_ms']:.0f} messages/s; with one actor per channel, the channels'"
            " actors wait side by side in one process. Cloudflare documents ~1000 requests/s as"
            " one Durable Object's soft limit: the same line, at 1 ms per request.",
            *shown("one_worker_"),
        ]
    if found.isolation:
        rows = [[m, f"{calm:.0f}", f"{hot:.0f}"] for m, (calm, hot) in found.isolation.items()]
        calm_run = next(run for run in runs_of(summary, "isolation") if not run["hot_share"])
        hot_run = next(run for run in runs_of(summary, "isolation") if run["hot_share"])
        per_channel = calm_run["rates"][0] / calm_run["channels"]
        hot_rate = hot_run["rates"][0] * hot_run["hot_share"]
        parts += [
            "## Isolation: quiet channels beside a hot one",
            f"{calm_run['channels'] - 1} quiet channels at {per_channel:g} message/s each,"
            f" without and with another channel taking {hot_rate:.0f} messages/s"
            f" ({cost_of(calm_run)} cost, one worker).",
            table(["mode", "quiet p99, no hot channel (ms)", "quiet p99, hot channel (ms)"], rows),
            *shown("hot_channel"),
        ]
    if found.hot is not None:
        run = setting(summary, "hot")
        parts += [
            "## A hot channel is still one actor",
            f"One channel alone, channel sharding on {run['workers']} workers, {cost_of(run)}"
            f" cost: {found.hot:.0f} messages/s sustained, the ceiling of one actor whatever K."
            " Sharding by channel cannot split one channel; what would is splitting its work:"
            " post through several actors (say, by sender) and fan out through a tree of relay"
            " actors, accepting that messages are no longer in one total order.",
        ]
    if found.activity:
        sizes = sorted({n for points in found.activity.values() for n in points})
        rows = [
            [mode, *(f"{p[n][0]:.1f} / {p[n][1]:.1f}" if n in p else "" for n in sizes)]
            for mode, p in found.activity.items()
        ]
        parts += [
            "## The cost side: reading many actors (GET /api/servers/{id}/activity, p50 / p99 ms)",
            "With server or global sharding one actor answers for the whole server; with"
            " channel sharding each channel's actor is asked, most of them on other workers,"
            " through the proxy. The answer waits for the slowest.",
            table(["mode", *(f"{n} channels" for n in sizes)], rows),
            *shown("activity_"),
        ]
    if found.proxy:
        rows = [[path, f"{p50:.1f}", f"{p99:.1f}"] for path, (p50, p99) in found.proxy.items()]
        parts += [
            "## The proxy's own cost (one worker, 200 messages/s, no cost; medians of 2 runs)",
            table(["path", "send→ack p50 (ms)", "p99 (ms)"], rows),
        ]
    if found.nocost:
        parts += [
            "## With the cost off (one worker)",
            table(
                ["mode", "sustained messages/s"], [[m, f"{v:.0f}"] for m, v in found.nocost.items()]
            ),
            "Without a cost the event loop is the limit, not the actor, and fewer actors do"
            " slightly better: each commit (one fsync) and each wake-up is shared by more"
            " messages. Sharding pays off once one actor's line, or one machine, is full.",
            *shown("no_cost"),
        ]
    if summary.get("errors"):
        parts += ["## Runs that failed", "\n".join(f"- {error}" for error in summary["errors"])]
    parts += [
        "## The generators",
        "Every step records its busiest load-generator process."
        + (
            " Busy (> 85% of a core), so the server may not have been the limit: "
            + "; ".join(found.busy_generators)
            if found.busy_generators
            else " None was busier than 85% of a core: the server was the limit."
        ),
        "## Runs",
        table(
            ["run", "steps", "workers' CPU", "proxy's CPU", "seconds"],
            [
                [
                    run["label"],
                    str(len(run["steps"])),
                    f"{run['server_cpu']['workers']:.0%}",
                    f"{run['server_cpu']['proxy']:.0%}",
                    f"{run['seconds']:.0f}",
                ]
                for run in summary["loads"]
            ],
        ),
    ]
    return "\n\n".join(parts) + "\n"


def write_report(summary: dict[str, Any], folder: Path) -> Findings:
    found = findings(summary)
    drawn = figures(summary, found)
    for figure in drawn:
        plots.save(figure.figure, folder / figure.name)
    captions = {figure.name: {"caption": figure.caption, "alt": figure.alt} for figure in drawn}
    (folder / "captions.json").write_text(
        json.dumps(captions, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (folder / "report.md").write_text(report(summary, found, drawn), encoding="utf-8")
    return found


def main(argv: list[str] | None = None, plan_for: Callable[[bool], Plan] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fixed steps, fewer runs: about 2 minutes"
    )
    parser.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/...)")
    parser.add_argument(
        "--only", default="", help="comma-separated experiments, e.g. scaling,activity"
    )
    parser.add_argument("--report", type=Path, help="redraw the report of an existing folder")
    parser.add_argument(
        "--note",
        default="",
        help="the conditions, in the report's settings and every caption (e.g. 'machine"
        " shared with other work'); kept in summary.json",
    )
    args = parser.parse_args(argv)
    if args.report:
        summary = json.loads((args.report / "summary.json").read_text())
        if args.note:
            summary["note"] = args.note
            save(summary, args.report)
        found = write_report(summary, args.report)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = args.out or RESULTS_DIR / f"scaling-{stamp}{'-quick' if args.quick else ''}"
        folder.mkdir(parents=True, exist_ok=True)
        plan = (plan_for or (lambda quick: quick_plan() if quick else full_plan()))(args.quick)
        only = {name for name in args.only.split(",") if name}
        summary = run_plan(plan, folder, args.quick, only)
        if args.note:
            summary["note"] = args.note
            save(summary, folder)
        found = write_report(summary, folder)
        print(f"Results in {folder}: report.md, summary.json, plots.")
    for target in found.targets:
        mark = {True: "met", False: "MISSED", None: "-"}[target.met]
        print(f"  [{mark}] {target.what}: {target.measured}")


if __name__ == "__main__":
    main()
