"""The sans-I/O gates: turn order, queue bound, held outputs and group-commit planning.
No event loop, no socket, no file."""

import pytest

from accord_app.actors import ActorOverloaded
from accord_app.actors.gates import Mailbox, OutputGate


def test_mailbox_runs_one_turn_at_a_time_in_arrival_order() -> None:
    mailbox: Mailbox[str] = Mailbox(max_queue=10)
    for event in "abc":
        mailbox.push(event)
    assert mailbox.start_turn() == "a"
    assert mailbox.start_turn() is None  # "a" is still running
    mailbox.finish_turn()
    assert mailbox.start_turn() == "b"
    mailbox.finish_turn()
    assert mailbox.start_turn() == "c"
    assert not mailbox.idle
    mailbox.finish_turn()
    assert mailbox.idle and mailbox.start_turn() is None


def test_mailbox_bound_refuses_at_once_but_not_unbounded_events() -> None:
    mailbox: Mailbox[int] = Mailbox(max_queue=2)
    mailbox.push(1)
    mailbox.push(2)
    with pytest.raises(ActorOverloaded, match="max_queue=2"):
        mailbox.push(3)
    mailbox.push(4, bounded=False)  # a socket's close must never be refused
    assert len(mailbox) == 3
    assert [mailbox.start_turn(), len(mailbox)] == [1, 2]


def test_output_without_pending_writes_is_released_at_once() -> None:
    gate: OutputGate[str] = OutputGate()
    assert gate.send("reply") is True
    assert not gate.busy and not gate.should_commit()


def test_output_is_held_until_the_write_before_it_is_durable() -> None:
    gate: OutputGate[str] = OutputGate()
    gate.wrote()
    assert gate.send("ack 1") is False
    assert gate.should_commit()
    assert gate.commit_started() == 1
    assert gate.commit_succeeded() == ["ack 1"]
    assert not gate.busy


def test_turns_during_a_commit_share_the_next_commit() -> None:
    gate: OutputGate[str] = OutputGate()
    gate.wrote()
    gate.send("ack 1")
    gate.commit_started()
    for n in (2, 3, 4):  # three turns write while commit 1 is in flight
        gate.wrote()
        gate.send(f"ack {n}")
    assert not gate.should_commit()  # one commit in flight at a time
    assert gate.commit_succeeded() == ["ack 1"]
    assert gate.should_commit()
    assert gate.commit_started() == 4
    assert gate.commit_succeeded() == ["ack 2", "ack 3", "ack 4"]


def test_output_after_a_read_only_turn_still_waits_for_earlier_writes() -> None:
    gate: OutputGate[str] = OutputGate()
    gate.wrote()
    gate.send("ack of the write")
    assert gate.send("reply of a read that followed") is False
    gate.commit_started()
    assert gate.commit_succeeded() == ["ack of the write", "reply of a read that followed"]


def test_failed_commit_drops_every_held_output() -> None:
    gate: OutputGate[str] = OutputGate()
    gate.wrote()
    gate.send("ack 1")
    gate.commit_started()
    gate.wrote()
    gate.send("ack 2")
    assert gate.commit_failed() == ["ack 1", "ack 2"]
    assert not gate.busy
    assert gate.send("after the reset") is True
