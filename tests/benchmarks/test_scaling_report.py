"""benchmarks/scaling.py's reading of its runs: sustained throughput, targets, report, plots.

The runs themselves take minutes (`make bench`); here their summary is made up, so every
branch of the report is checked, including the targets it must mark as missed."""

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "benchmarks" / "reference"


@pytest.fixture(scope="module")
def scaling(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("scaling")


def step(offered: float, acked: float, p99: float, failures: int = 0, cpu: float = 0.2) -> dict:
    ack = {
        "count": int(acked * 4),
        "per_second": acked,
        "p50_ms": p99 / 3,
        "p90_ms": p99 / 2,
        "p99_ms": p99,
        "max_ms": p99,
        "failures": {"ack_timeout": failures} if failures else {},
    }
    return {
        "step": 0,
        "offered_per_second": offered,
        "sent_per_second": offered,
        "seconds": 4.0,
        "generator_processes": 2,
        "generator_cpu_max": cpu,
        "worst_lag_ms": 1.0,
        "names": {"send→ack": ack, "send→delivery": {**ack, "per_second": acked}},
    }


def knee_steps(capacity: float) -> list[dict]:
    """A search's steps around a knee at `capacity`: fine below, slow and failing above."""
    return [
        step(rate, min(rate, capacity), 40 if rate <= capacity else 900, int(rate > capacity))
        for rate in (capacity / 2, capacity, capacity * 1.5)
    ]


def load(
    scaling: ModuleType, experiment: str, mode: str, workers: int, steps: list[dict], **fields: Any
) -> dict:
    """A run as run_load() records it: the Load's settings, its steps, the CPU it used."""
    settings = scaling.Load(experiment, mode, workers, **fields)
    return {
        **asdict(settings),
        "label": settings.label,
        "steps": steps,
        "server_cpu": {"workers": 0.5, "proxy": 0.1},
        "seconds": 30.0,
    }


def summary(scaling: ModuleType, channel_at_8: float = 300.0) -> dict[str, Any]:
    capacities = {
        "global": {1: 40, 2: 41, 4: 39, 8: 40},
        "server": {1: 40, 2: 70, 4: 110, 8: 150},
        "channel": {1: 40, 2: 78, 4: 150, 8: channel_at_8},
    }
    blocking = {"cost_ms": 10, "kind": "blocking", "channels": 400, "servers": 40}
    turn = {"cost_ms": 20, "kind": "turn"}
    loads = [
        load(scaling, "scaling", mode, k, knee_steps(capacity), **blocking)
        for mode, by_k in capacities.items()
        for k, capacity in by_k.items()
    ]
    hot = {"rates": (59,), "hot_share": 40 / 59, "hot_members": 20, **turn}
    loads += [
        load(scaling, "turn", "global", 1, knee_steps(45), **turn),
        load(scaling, "turn", "channel", 1, knee_steps(800), **turn),
        load(scaling, "isolation", "global", 1, [step(20, 20, 30)], rates=(20,), **turn),
        load(scaling, "isolation", "global", 1, [step(59, 50, 4000, 3)], **hot),
        load(scaling, "isolation", "channel", 1, [step(20, 20, 30)], rates=(20,), **turn),
        load(scaling, "isolation", "channel", 1, [step(59, 59, 33)], **hot),
        load(scaling, "hot", "channel", 4, knee_steps(42), channels=1, members=4, **turn),
        load(scaling, "proxy", "channel", 1, [step(200, 200, 9)], rates=(200,)),
        load(
            scaling, "proxy", "channel", 1, [step(200, 200, 6, cpu=0.95)], rates=(200,), direct=True
        ),
        load(scaling, "nocost", "global", 1, knee_steps(600)),
        load(scaling, "nocost", "channel", 1, knee_steps(500)),
    ]
    activity = [
        {"mode": mode, "workers": 4, "channels": n, "ms": [base * (n if grows else 1.1)] * 10}
        for mode, base, grows in (("server", 4.0, False), ("channel", 5.0, True))
        for n in (1, 10, 100)
    ]
    return {
        "machine": {
            "cpu": "a test CPU",
            "cores": 2,
            "memory_gib": 24,
            "system": "Linux",
            "python": "3.11",
            "caddy": "v2",
            "locust": "2",
            "commit": "abc",
        },
        "quick": False,
        "started": "2026-12-02T00:00:00+00:00",
        "seconds": 600,
        "p99_limit_ms": 250.0,
        "loads": loads,
        "activity": activity,
        "errors": ["nocost: server, K=1: Locust ran past 100 s"],
    }


def test_findings_read_the_knee_of_every_run(scaling: ModuleType) -> None:
    found = scaling.findings(summary(scaling))
    assert found.scaling["global"] == {1: 40, 2: 41, 4: 39, 8: 40}
    assert found.scaling["channel"][8] == 300
    assert found.turn == {"global": 45, "channel": 800}
    assert found.isolation["channel"] == (30, 33)
    assert found.isolation["global"] == (30, 4000)
    assert found.hot == 42
    assert found.proxy == {"through Caddy": (3.0, 9.0), "straight to the worker": (2.0, 6.0)}
    assert found.nocost == {"global": 600, "channel": 500}
    assert found.activity["channel"][100] == (500.0, 500.0)
    assert found.busy_generators == ["proxy: channel, K=1, direct at 200/s"]


def test_targets_are_met_and_missed_by_the_numbers(scaling: ModuleType) -> None:
    met = {target.what: target.met for target in scaling.findings(summary(scaling)).targets}
    assert all(met.values()), met
    assert len(met) == 8  # turn, 2 x isolation, global flat, channel at K=2/4/8, activity
    missed = scaling.findings(summary(scaling, channel_at_8=200)).targets
    [k8] = [target for target in missed if "K=8" in target.what]
    assert k8.met is False and "target 5.6x" in k8.measured


FIGURES = [
    "one_worker_latency.png",
    "one_worker_throughput.png",
    "scaling_line.png",
    "scaling_load_k8.png",
    "hot_channel.png",
    "no_cost_latency.png",
    "activity_cost.png",
]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header.startswith(b"\x89PNG"), path
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_the_report_and_its_plots_are_written(scaling: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary(scaling)))
    scaling.main(["--report", str(tmp_path), "--note", "the machine was busy"])
    report = (tmp_path / "report.md").read_text()
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert list(captions) == FIGURES
    for name in FIGURES:
        assert png_size(tmp_path / name) == (1920, 1080), name  # 16:9
        assert (tmp_path / name).stat().st_size < 300_000, name
        shown = f"![{captions[name]['alt']}]({name})\n\n*{captions[name]['caption']}*"
        assert shown in report, name  # the same caption in the report as for the deck
        assert "the machine was busy" in captions[name]["caption"]
    assert json.loads((tmp_path / "summary.json").read_text())["note"] == "the machine was busy"
    assert "| ✅ | turn cost, K=1: channel sharding ≥ 10x global" in report
    assert "| channel | 40 | 78 | 150 | 300 |" in report
    assert "Locust ran past 100 s" in report  # a failed run is reported, not hidden
    assert "proxy: channel, K=1, direct at 200/s" in report  # and a busy generator


def test_captions_state_each_runs_own_settings(scaling: ModuleType) -> None:
    made = summary(scaling)
    for run in made["loads"]:
        if run["experiment"] == "scaling" and run["workers"] == 8:
            run["steps"] = run["steps"] * 2  # 6 steps at K=8, 3 elsewhere
            run["seconds"] = 95.0
    captions = {
        drawn.name: drawn.caption for drawn in scaling.figures(made, scaling.findings(made))
    }
    assert (
        "1 worker, a 20 ms turn cost per message, 20 channels of 2 members in 4 servers;"
        " 2 runs of 3 steps of 4 s after 1 s of warm-up, 30 to 30 s each."
    ) in captions["one_worker_latency.png"]
    assert (
        "K = 1, 2, 4, 8 workers, a 10 ms blocking cost per message, 400 channels of 2 members"
        " in 40 servers; 12 runs of 3 to 6 steps of 4 s after 1 s of warm-up, 30 to 95 s each."
    ) in captions["scaling_line.png"]
    assert "8 workers" in captions["scaling_load_k8.png"]
    assert "3 runs of 6 steps" in captions["scaling_load_k8.png"]
    assert "19 quiet channels at 1 message/s each" in captions["hot_channel.png"]
    assert "40 messages/s from 20 members" in captions["hot_channel.png"]
    assert "4 workers, no extra cost, 10 sequential requests" in captions["activity_cost.png"]
    assert "1 worker, no extra cost, 20 channels" in captions["no_cost_latency.png"]
    for caption in captions.values():
        assert caption.endswith(
            "benchmarks/scaling.py, 2026-12-02, Accord abc, a test CPU (2 cores)."
        )


def test_a_partial_run_reports_what_it_has(scaling: ModuleType, tmp_path: Path) -> None:
    partial = summary(scaling)
    partial["loads"] = [run for run in partial["loads"] if run["experiment"] == "scaling"]
    partial["activity"] = []
    found = scaling.write_report(partial, tmp_path)
    assert sorted(path.name for path in tmp_path.glob("*.png")) == [
        "scaling_line.png",
        "scaling_load_k8.png",
    ]
    assert {t.what.split(":")[0] for t in found.targets} == {
        "blocking cost",
        "blocking cost, K=2",
        "blocking cost, K=4",
        "blocking cost, K=8",
    }


def test_the_committed_reference_is_what_the_code_draws(
    scaling: ModuleType, tmp_path: Path
) -> None:
    """The committed report, captions and figures are this code's reading of the committed
    summary.json: redrawn, they come out the same (a change to the report or the plots is
    committed with the redrawn reference: `scaling.py --report benchmarks/reference`)."""
    shutil.copy(REFERENCE / "summary.json", tmp_path)
    scaling.main(["--report", str(tmp_path)])
    for name in ["report.md", "captions.json"]:
        assert (tmp_path / name).read_text() == (REFERENCE / name).read_text(), name
    captions = json.loads((REFERENCE / "captions.json").read_text())
    assert sorted(path.name for path in REFERENCE.glob("*.png")) == sorted(captions)  # no stale
    for name in captions:
        assert png_size(REFERENCE / name) == (1920, 1080), name
        assert (REFERENCE / name).stat().st_size < 300_000, name
