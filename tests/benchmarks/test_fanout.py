"""benchmarks/fanout.py: its client's frame scanning, its report, and one short real run.

The real run is tiny (a few members, half-second windows, no pinning): it checks that every
piece works against real servers, not what the numbers are."""

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def fanout(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("fanout")


def server_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    header = bytes([0x80 | opcode, size]) if size < 126 else bytes([0x80 | opcode, 126])
    return header + (size.to_bytes(2, "big") if size >= 126 else b"") + payload


def message(sender: int, sent_at: float, padding: int, kind: str = "message") -> bytes:
    frame = {
        "type": kind,
        "id": "x",
        "seq": 1,
        "message": f"{sender} 0 {sent_at!r} {'x' * padding}",
    }
    return server_frame(0x1, json.dumps(frame, separators=(",", ":")).encode())


def test_complete_frames_finds_every_boundary_and_every_ping(fanout: ModuleType) -> None:
    """Fed in random slices, as TCP delivers them, the stream comes out whole and in order."""
    rng = random.Random(7)
    frames = [
        server_frame(0x9, rng.randbytes(4))
        if rng.random() < 0.02
        else message(1, 2.5, rng.randrange(300))
        for _ in range(2000)
    ]
    stream, pings, passed, partial, pos = b"".join(frames), [], b"", b"", 0
    while pos < len(stream):
        data = partial + stream[pos : pos + rng.randrange(1, 2500)]
        pos += len(data) - len(partial)
        end = fanout.complete_frames(data, lambda opcode, payload: pings.append(payload))
        passed, partial = passed + data[:end], data[end:]
    assert passed == stream and partial == b""
    assert pings == [frame[2:] for frame in frames if frame[0] == 0x89]


def test_a_member_counts_copies_and_sends_again_for_its_own(fanout: ModuleType) -> None:
    class Socket:
        def __init__(self) -> None:
            self.written: list[bytes] = []
            self.on_frames = None

        def write(self, data: bytes) -> None:
            self.written.append(data)

    socket = Socket()
    member = fanout.Member(3, socket, "pad")
    member.tally = fanout.Tally(measuring=True, resend=True)
    # Two copies of other members' messages, two of our own, and Accord's ack of one of ours.
    data = message(1, 1.0, 5) + message(3, 2.0, 5) + message(3, 3.0, 5, "ack") + message(3, 4.0, 5)
    member.on_frames(data + message(13, 5.0, 5))
    assert member.tally.delivered == 4  # the ack is not a copy
    assert sorted(float(sent) for sent in member.tally.stamps[0][1]) == [1.0, 2.0, 4.0, 5.0]
    assert member.tally.sent == 2 and len(socket.written) == 1  # two messages, one write


def window(fanout: ModuleType, target: str, round_no: int, delivered: int, cpu: float) -> object:
    return fanout.WindowResult(
        target=target,
        load="saturation",
        round=round_no,
        seconds=1.0,
        sent=delivered // 10,
        delivered=delivered,
        p50_ms=1.0,
        p99_ms=2.0,
        server_cpu=cpu,
        server_writes=delivered // 4,
        client_cpu=0.5,
        other_cpu=0.0,
        other_server_core=0.0,
        other_client_core=0.0,
        undelivered=0,
    )


def test_ratios_pair_the_windows_of_a_round(fanout: ModuleType) -> None:
    windows = [
        window(fanout, "accord-fast", 0, 80_000, 0.9),
        window(fanout, "baseline-fast", 0, 100_000, 0.3),
        window(fanout, "accord-fast", 1, 30_000, 0.9),  # a noisy round hits both alike
        window(fanout, "baseline-fast", 1, 40_000, 0.3),
        window(fanout, "accord-asgi", 1, 20_000, 1.0),
    ]
    found = {(r.numerator, r.denominator): r for r in fanout.ratios(windows)}
    fast = found["accord-fast", "baseline-fast"]
    assert fast.delivered == pytest.approx((0.8 + 0.75) / 2)
    assert fast.delivered_range == (0.75, 0.8)
    assert found["accord-fast", "accord-asgi"].delivered == pytest.approx(1.5)  # one round
    lines = "\n".join(fanout.ratio_lines(list(found.values())))
    assert "meets the >= 0.7x target" in lines and "MISSES the >= 3x target" in lines


def test_a_short_real_run_writes_its_report(fanout: ModuleType, tmp_path: Path) -> None:
    stem = tmp_path / "run"
    small = ["--channels", "2", "--members", "3", "--servers", "1", "--rate", "5"]
    timing = ["--duration", "0.5", "--warmup", "0.2", "--rounds", "1", "--no-pin", "--no-memory"]
    fanout.main([*small, *timing, "--targets", "accord-fast", "baseline-fast", "--out", str(stem)])
    document = json.loads(stem.with_suffix(".json").read_text())
    summaries = {(s["target"], s["load"]): s for s in document["summaries"]}
    assert set(summaries) == {
        (target, load)
        for target in ("accord-fast", "baseline-fast")
        for load in ("fixed", "saturation")
    }
    for summary in summaries.values():
        assert summary["delivered_per_s"] > 0 and summary["undelivered"] == 0
    assert "accord-fast / baseline-fast" in stem.with_suffix(".md").read_text()


def test_idle_members_keep_no_actor_awake(fanout: ModuleType) -> None:
    config = fanout.parse_args(
        ["--idle-channels", "2", "--idle-members", "5", "--idle-timeout", "0.5", "--no-pin"]
    )
    result = asyncio.run(fanout.measure_memory(fanout.TARGETS["accord-fast"], config))
    assert (result.members, result.channels) == (10, 2)
    assert result.actors_settled == 0  # hibernated, with their sockets open
    assert result.actors_awake == 2  # one message per channel woke each
    assert result.actors_rehibernated == 0
