"""The Locust load test, for real: a short headless run against a two-worker cluster."""

from pathlib import Path

import pytest

from accord_app.cluster import Cluster
from accord_app.lab.loadtest import LIFTED_LIMITS, LoadTestError, run_locust, sustained_throughput


def test_a_short_distributed_run_acks_and_delivers_everything(tmp_path: Path) -> None:
    with Cluster(2, "channel", tmp_path / "data", port=0, env=LIFTED_LIMITS) as cluster:
        result = run_locust(
            cluster.url,
            tmp_path / "locust",
            rates=[20, 40],
            # A member sends every 0.6 s at 20/s: in 4 s steps, whole sends in or out of the
            # window moved the measured rate by 15-20%, past the 85% a step must send.
            step_seconds=6,
            warmup_seconds=1,
            join_seconds=1.5,
            channels=6,
            servers=2,
            members=2,
            readers=1,
            processes=2,
        )
    assert [step.offered for step in result.steps] == [20, 40]
    for step in result.steps:
        assert step.failures == 0, step.names
        # Every message is acked, and every message reaches the channel's other member.
        assert step.sent > 0.7 * step.offered, step
        assert step.acked > 0.7 * step.offered and step.delivered > 0.7 * step.offered
        assert step.ack.p50_ms is not None and 0 < step.ack.p50_ms < 1000
        assert 0 < step.generator_cpu < 1
    assert sustained_throughput(result.steps, p99_limit_ms=1000) > 30
    # Locust's own statistics, from its CSV: the same request types, no failure.
    rows = {(row["Type"], row["Name"]): row for row in result.stats}
    for name in ["send→ack", "send→delivery"]:
        assert int(rows["WS", name]["Request Count"]) > 100
        assert int(rows["WS", name]["Failure Count"]) == 0
    assert int(rows["GET", "history"]["Request Count"]) > 0
    assert int(rows["GET", "history"]["Failure Count"]) == 0


def test_refused_connections_count_as_failures_with_their_code(tmp_path: Path) -> None:
    # The default rate limit (5 messages/s per connection, bursts of 10) refuses most of a
    # 100 messages/s load on two members: the refusals must show, not vanish.
    with Cluster(1, "channel", tmp_path / "data", port=0) as cluster:
        result = run_locust(
            cluster.url,
            tmp_path / "locust",
            rates=[100],
            step_seconds=4,
            warmup_seconds=1,
            join_seconds=1.5,
            channels=1,
            servers=1,
            members=2,
            processes=1,
        )
    [step] = result.steps
    assert step.ack.failures.get("rate_limited", 0) > 50, step.names
    assert sustained_throughput(result.steps, p99_limit_ms=1000) == 0


def test_only_loopback_is_ever_loaded(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match="loopback"):
        run_locust("http://192.0.2.1:8787", tmp_path, rates=[1])
