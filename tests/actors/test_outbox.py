"""A socket's send queue as bookkeeping: order, byte counts and the verdict on a peer that stops
reading. No event loop, no socket. Small limits keep the numbers readable."""

import pytest

from accord_app.actors import TransportClosed, sockets
from accord_app.actors.gates import InvalidTransition
from accord_app.actors.sockets import Outbox


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "MAX_OUTBOX_BYTES", 10)
    monkeypatch.setattr(sockets, "HARD_OUTBOX_BYTES", 40)


def test_frames_leave_in_the_order_they_came_and_only_data_is_counted() -> None:
    outbox = Outbox()
    close = TransportClosed(1000, "bye")
    for frame in ("abc", b"\x00\x01", close):
        assert outbox.push(frame) is True
    assert (len(outbox), outbox.queued_bytes) == (3, 5)  # the close weighs nothing
    assert outbox.pop() == "abc" and outbox.queued_bytes == 2
    assert outbox.pop() == b"\x00\x01" and outbox.queued_bytes == 0
    assert outbox.pop() is close
    assert outbox.pop() is None and len(outbox) == 0


def test_a_queue_past_the_soft_limit_is_backlogged_until_it_drains() -> None:
    outbox = Outbox()
    outbox.push("x" * 10)
    assert not outbox.backlogged  # at the limit is fine
    outbox.push("y")
    assert outbox.backlogged
    outbox.pop()
    assert not outbox.backlogged


def test_a_backlogged_peer_that_takes_frames_is_kept() -> None:
    outbox = Outbox()
    for _ in range(4):
        outbox.push("x" * 5)
    mark = outbox.sent
    outbox.pop()
    outbox.frame_sent()
    assert outbox.backlogged and outbox.sent == mark + 1
    assert outbox.stalled(mark) is False and not outbox.cut_off


def test_a_backlogged_peer_that_took_nothing_since_the_last_look_is_cut_off() -> None:
    outbox = Outbox()
    for _ in range(4):
        outbox.push("x" * 5)
    assert outbox.stalled(outbox.sent) is True
    assert outbox.cut_off and len(outbox) == 0 and outbox.queued_bytes == 0
    assert outbox.pop() is None
    assert outbox.stalled(outbox.sent) is False  # one verdict: it is cut off already


def test_a_peer_without_a_backlog_is_never_stalled() -> None:
    outbox = Outbox()
    outbox.push("x" * 10)
    assert outbox.stalled(outbox.sent) is False and not outbox.cut_off


def test_a_frame_past_the_hard_limit_cuts_the_peer_off_at_once() -> None:
    outbox = Outbox()
    assert outbox.push("x" * 40) is True  # at the hard limit is still fine
    assert outbox.push("y") is False
    assert outbox.cut_off and len(outbox) == 0 and outbox.queued_bytes == 0


def test_nothing_is_queued_after_a_cut_off() -> None:
    outbox = Outbox()
    outbox.push("x" * 41)
    assert outbox.cut_off
    with pytest.raises(InvalidTransition, match="after the cut-off"):
        outbox.push("resumed?")
    with pytest.raises(InvalidTransition):
        outbox.push(TransportClosed())
    assert len(outbox) == 0
