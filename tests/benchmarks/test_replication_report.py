"""benchmarks/replication_report.py, the reading of benchmarks/replication.py's measurements:
the history checks after the failovers, the zombie count, the targets (met and missed, with
what limits a missed one), the report and its plots, on made-up numbers: no NATS, no cluster."""

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def report(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("replication_report")


def test_a_whole_history_has_nothing_lost_twice_or_missing(report: ModuleType) -> None:
    history = {1: "a", 2: "b", 3: "c"}
    check = report.check_history([history, dict(history)], [("a", 1), ("c", 3)])
    assert vars(check) == {
        "messages": 3, "acked": 2, "lost": 0, "duplicates": 0, "gaps": 0, "conflicts": 0,
        "differing": 0,
        "unseen": 0,
    }  # fmt: skip


def test_lost_duplicated_and_missing_messages_are_counted(report: ModuleType) -> None:
    first = {1: "a", 2: "b", 4: "b", 6: "d"}  # b twice; 3 and 5 missing
    second = {1: "a", 2: "b"}
    acks = [("a", 1), ("c", 3), ("d", 5), ("b", 2)]  # c and d not where they were acked
    check = report.check_history([first, second], acks, conflicts=1)
    assert check.unseen == 2  # the second member never saw seqs 4 and 6
    assert (check.lost, check.duplicates, check.gaps, check.conflicts, check.differing) == (
        2, 1, 2, 1, 1,
    )  # fmt: skip


def test_only_acks_of_the_old_epoch_after_the_takeover_are_stale(report: ModuleType) -> None:
    acks = {1: 4, 2: 4, 3: 4, 10: 5}  # number -> epoch of its ack
    assert report.stale_acks(acks, new_epoch=5, in_log_at_takeover={1, 2, 3}) == 0
    assert report.stale_acks(acks, new_epoch=5, in_log_at_takeover={1, 2}) == 1
    assert report.stale_acks(acks, new_epoch=6, in_log_at_takeover={1, 2, 3}) == 1


def summary(report: ModuleType, r3_acks: float, r3_p50: float, failovers: list[float]) -> Any:
    result = report.Result
    return {
        "command": ".venv/bin/python benchmarks/replication.py",
        "started": "2026-12-07T23:00:00+00:00",
        "minutes": 5.5,
        "settings": {"rate": 200, "seconds": 5, "callers": 200, "restore_repeats": 3},
        "machine": {"cpu": "Test CPU", "cores": 2, "commit": "abc1234"},
        "load": [1.5, 2.5],
        "latency": [
            result("local fsync", 1, 4.0, 9.0, 10_000.0, 0, {"runtime": 0.9, "NATS": 0.0}),
            result("JetStream R3", 1, r3_p50, 30.0, r3_acks, 0, {"runtime": 1.0, "NATS": 0.9}),
        ],
        "failover": {
            "rounds": failovers,
            "handbacks": [3.0] * len(failovers),
            "members": 5,
            "detection_s": 2.0,
            "health_interval": "1s",
            "history": {
                "messages": 900,
                "acked": 900,
                "lost": 0,
                "duplicates": 0,
                "gaps": 0,
                "conflicts": 0,
                "differing": 0,
            },
        },
        "zombie": {
            "rounds": [
                {"acks_before": 50, "stale_acks": 0, "lost": 0, "fenced": True, "takeover_s": 0.2}
            ]
            * 10
        },
        "restore": [
            {
                "batches": n,
                "snapshots": on,
                "rebuild_s": [n / 5000],
                "restore_s": [n / 4000],
                "restore_call_s": [n / 8000],
                "replayed": n,
                "read_bytes": n * 60,
            }
            for n in (100, 1000, 5000)
            for on in (True, False)
        ],
    }


def test_targets_met(report: ModuleType) -> None:
    found = report.targets(summary(report, 6_000.0, 9.0, [0.4, 0.5, 0.6]))
    assert [t.met for t in found] == [True] * 6
    assert "6,000 vs 10,000 acks/s: 0.60x" in found[0].measured
    assert "bound 10.00 ms" in found[1].measured
    assert "p50 0.50 s, max 0.60 s over 3 rounds" in found[2].measured


def test_missed_targets_say_what_limits_them(report: ModuleType) -> None:
    found = report.targets(summary(report, 4_000.0, 10.5, [4.5, 5.0, 1.0]))
    assert [t.met for t in found] == [False, False, False, True, True, True]
    # 1.0 + 0.9 of 2 cores: the CPU.
    assert "2 cores were 1.90 busy" in found[0].limit and "the CPU is the limit" in found[0].limit
    assert found[2].limit, "a missed failover target names what limits it"
    assert all(not t.limit for t in found if t.met)


def test_the_report_and_its_plots(report: ModuleType, tmp_path: Path) -> None:
    written = summary(report, 4_000.0, 9.0, [0.4, 0.5])
    report.save_figures(written, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written["figures"])
    assert len(written["figures"]) == 2
    text = report.markdown(written)
    assert "| ❌ | one busy actor, 3 replicas: sustained acks/s" in text
    assert "| ✅ | paused old owner" in text
    assert "| 5,000 | off | 1000 ms | 1250 ms | 625 ms | 5,000 | 300,000 |" in text
    assert "restore on 5,000 batches took 1250 ms, 50% of it in the restore call" in text
    assert "1-minute load average 1.5 to 2.5" in text
    for name in written["figures"]:
        assert f"]({name})" in text


def test_a_part_that_did_not_finish_is_said(report: ModuleType) -> None:
    written = {"failover": {"error": "TimeoutError('not within 30 s')"}, "restore": {"error": "x"}}
    text = report.markdown(written)
    assert text.count("Did not finish") == 2
    assert report.targets(written) == []


def test_a_member_that_missed_messages_is_described(report: ModuleType) -> None:
    reference = {seq: f"m{seq}" for seq in range(1, 11)}
    member = {seq: text for seq, text in reference.items() if seq not in (3, 4, 8)}
    assert report.missing_runs(reference, member) == [(3, 4), (8, 8)]
    lines = report.unseen_lines(
        [
            {"member": "m1", "first": 3, "last": 4, "own_ack_next": True},
            {"member": "m1", "first": 8, "last": 8, "own_ack_next": False},
        ]
    )
    assert "m1 seqs 3 to 4, m1 seqs 8 to 8. In 1 of 2 runs" in lines[1]
    assert report.unseen_lines([]) == []


def test_a_member_missing_messages_misses_its_target_and_says_why(report: ModuleType) -> None:
    written = summary(report, 6_000.0, 9.0, [0.4])
    written["failover"]["history"].update(differing=1, unseen=2)
    written["failover"]["unseen_runs"] = [
        {"member": "m3", "first": 40, "last": 41, "own_ack_next": True}
    ]
    *_, lost, view, zombie = report.targets(written)
    assert lost.met and zombie.met and not view.met
    assert view.measured == "1 of 4 other members differ from the first, 2 seqs unseen"
    assert "m3 seqs 40 to 41" in view.limit and "own ack" in view.limit


def test_failed_writes_are_told_by_their_error(report: ModuleType) -> None:
    result = report.Result("JetStream R1", 100, 8.0, 300.0, 374.0, 101)
    result.errors = {"TimeoutError": 1, "Fenced": 100}
    assert report.failures(result) == "101 (Fenced 100, TimeoutError 1)"
    assert report.failures(report.Result("local fsync", 1, 7.0, 40.0, 8000.0, 0)) == "0"


def test_rounds_are_combined_by_their_medians(report: ModuleType) -> None:
    result = report.Result
    rounds = [
        result("JetStream R3", 1, 9.0, 30.0, 5000.0, 1, {"runtime": 0.4}, {"Fenced": 1}),
        result("JetStream R3", 1, 12.0, 90.0, 7000.0, 0, {"runtime": 0.6}),
        result("JetStream R3", 1, 10.0, 50.0, 4000.0, 2, {"runtime": 0.5}, {"Fenced": 2}),
    ]
    both = report.combined(rounds)
    assert (both.p50_ms, both.p99_ms, both.acks_per_s, both.failed) == (10.0, 50.0, 5000.0, 3)
    assert both.cpu == {"runtime": 0.5} and both.errors == {"Fenced": 3}
    assert report.spread(both.acks_rounds) == " (4,000 to 7,000)"
    assert report.spread([5000.0]) == ""
