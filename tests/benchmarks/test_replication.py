"""benchmarks/replication.py: one tiny real run of its latency part (short windows, 1 and 2
actors) against real NATS servers, and its table. It checks that every piece works, not what
the numbers are; its other parts' reading is tests/benchmarks/test_replication_report.py's."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def replication(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("replication")


@pytest.mark.anyio
async def test_a_short_run_measures_every_storage(
    replication: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    results = await replication.latency(
        tmp_path, seconds=0.3, rate=100, callers=8, actor_counts=[1, 2]
    )
    assert all(r.cpu["runtime"] > 0 for r in results), results
    assert all(r.cpu["NATS"] > 0 for r in results if r.storage != "local fsync"), results
    out = capsys.readouterr().out
    for storage in replication.STORAGES:
        for actors in (1, 2):
            assert f"measured {storage}, {actors} actors: p50 " in out
    assert out.count(" actors: p50 x") == 4, out  # R1 and R3, for 1 and 2 actors
    assert " acks/s x0.00" not in out, out


def test_the_table_gives_ratios_to_local_fsync(replication: ModuleType) -> None:
    result = replication.Result
    results = [
        result("local fsync", 1, 2.0, 4.0, 1000.0, 0),
        result("JetStream R3", 1, 3.0, 12.0, 500.0, 0),
    ]
    text = replication.latency_table(results, rate=200, callers=10)
    assert "JetStream R3     1 actors: p50 x1.50, p99 x3.00, acks/s x0.50" in text


@pytest.mark.anyio
async def test_a_part_that_hangs_is_stopped_and_says_where_it_waited(
    replication: ModuleType,
) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise ValueError("no such server")

    found = await replication.part("stuck", hangs, deadline=0.2)
    assert found["error"] == "not done within 0.2 s"
    assert any("in hangs" in where for where in found["waiting"]), found["waiting"]
    assert await replication.part("broken", fails, deadline=5) == {
        "error": "ValueError('no such server')"
    }


def test_a_written_run_is_read_back_and_redrawn(replication: ModuleType, tmp_path: Path) -> None:
    result = replication.Result("local fsync", 1, 2.0, 4.0, 1000.0, 0, {"runtime": 0.5})
    written = {"command": "c", "settings": {"rate": 200}, "latency": [result], "load": [1.0]}
    replication.write(written, tmp_path)
    again = replication.read(tmp_path)
    assert again["latency"] == [result]
    assert (tmp_path / "report.md").read_text() == replication.markdown(again)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["replication_targets.png"]


@pytest.mark.anyio
async def test_a_short_restore_run_times_both_ways(replication: ModuleType, tmp_path: Path) -> None:
    """The restore part on a log of a dozen batches, a snapshot due every 5: with snapshots the
    rebuild replays the few batches after the last one, without it replays them all."""
    rows = await replication.replication_restore.restore_times(
        tmp_path, [12], repeats=1, snapshot_every=(5, 4 * 1024 * 1024)
    )
    assert [row["snapshots"] for row in rows] == [True, False], rows
    assert all(len(row["restore_s"]) == 1 and "error" not in row for row in rows), rows
    assert rows[0]["replayed"] <= 6 < 12 <= rows[1]["replayed"], rows
