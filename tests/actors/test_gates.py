"""The sans-I/O gates: turn order, queue bound, held outputs, group-commit planning and the
commit cycle. No event loop, no socket, no file."""

import pytest

from accord_app.actors import ActorOverloaded
from accord_app.actors.gates import (
    CommitCycle,
    CommitPhase,
    InvalidTransition,
    Mailbox,
    OutputGate,
)


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


def test_the_last_held_output_is_offered_until_a_write_comes_after_it() -> None:
    gate: OutputGate[str] = OutputGate()
    assert gate.last_held() is None  # nothing held
    gate.wrote()
    gate.send("frame for ada")
    assert gate.last_held() == "frame for ada"  # one sent now would be released with it
    gate.wrote()
    assert gate.last_held() is None  # not any more: a write came between
    gate.send("ack")
    gate.commit_started()
    assert gate.commit_succeeded() == ["frame for ada", "ack"]
    assert gate.last_held() is None


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


def cycle_in(phase: CommitPhase) -> CommitCycle:
    """A commit cycle brought to `phase` by its events."""
    cycle = CommitCycle()
    if phase is CommitPhase.CHECKPOINTING:
        cycle.commit_started()
        cycle.commit_succeeded(wal_is_large=True)
    if phase in (CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING):
        cycle.commit_started()
    if phase is CommitPhase.BROKEN:
        cycle.commit_failed(OSError("fsync failed"), turn_running=True)
    assert cycle.phase is phase
    return cycle


def test_a_commit_goes_out_and_comes_back_while_turns_go_on() -> None:
    cycle = CommitCycle()
    assert cycle.may_start_turn and not cycle.in_flight
    assert cycle.commit_started() is False  # no checkpoint due
    assert cycle.phase is CommitPhase.COMMITTING and cycle.in_flight and cycle.may_start_turn
    cycle.commit_succeeded(wal_is_large=False)
    assert cycle.phase is CommitPhase.IDLE and not cycle.checkpoint_due


def test_a_large_wal_makes_the_next_commit_checkpoint_and_hold_the_turns() -> None:
    cycle = CommitCycle()
    cycle.commit_started()
    cycle.commit_succeeded(wal_is_large=True)
    assert cycle.checkpoint_due and cycle.phase is CommitPhase.IDLE
    assert cycle.commit_started() is True
    assert cycle.phase is CommitPhase.CHECKPOINTING and cycle.in_flight
    assert not cycle.may_start_turn and not cycle.checkpoint_due
    cycle.commit_succeeded(wal_is_large=False)
    assert cycle.may_start_turn and cycle.commit_started() is False


@pytest.mark.parametrize(
    "phase", [CommitPhase.IDLE, CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING]
)
def test_a_failure_between_turns_resets_the_actor_at_once(phase: CommitPhase) -> None:
    cycle = cycle_in(phase)
    assert cycle.commit_failed(OSError("fsync failed"), turn_running=False) is True
    assert cycle.phase is CommitPhase.IDLE and cycle.may_start_turn and not cycle.in_flight
    assert cycle.turn_ended() is None


@pytest.mark.parametrize(
    "phase", [CommitPhase.IDLE, CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING]
)
def test_a_failure_during_a_turn_resets_the_actor_when_the_turn_ends(phase: CommitPhase) -> None:
    cycle = cycle_in(phase)
    error = OSError("fsync failed")
    assert cycle.commit_failed(error, turn_running=True) is False
    assert cycle.phase is CommitPhase.BROKEN
    assert not cycle.in_flight and not cycle.may_start_turn  # the reset comes first
    assert cycle.turn_ended() is error
    assert cycle.phase is CommitPhase.IDLE and cycle.failure is None
    assert cycle.turn_ended() is None  # one reset per failure


@pytest.mark.parametrize(
    "phase", [CommitPhase.IDLE, CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING]
)
def test_a_turn_ending_without_a_failure_changes_nothing(phase: CommitPhase) -> None:
    cycle = cycle_in(phase)
    assert cycle.turn_ended() is None
    assert cycle.phase is phase


def test_a_failing_commit_statement_leaves_a_due_checkpoint_for_the_next_commit() -> None:
    cycle = CommitCycle()
    cycle.commit_started()
    cycle.commit_succeeded(wal_is_large=True)
    cycle.commit_failed(OSError("disk full"), turn_running=False)  # COMMIT itself, from IDLE
    assert cycle.checkpoint_due and cycle.commit_started() is True


@pytest.mark.parametrize(
    ("phase", "event"),
    [
        (CommitPhase.COMMITTING, "commit_started"),
        (CommitPhase.CHECKPOINTING, "commit_started"),  # one commit in flight at a time
        (CommitPhase.BROKEN, "commit_started"),  # nothing is committed before the reset
        (CommitPhase.IDLE, "commit_succeeded"),
        (CommitPhase.BROKEN, "commit_succeeded"),
        (CommitPhase.BROKEN, "commit_failed"),
    ],
)
def test_events_out_of_order_raise(phase: CommitPhase, event: str) -> None:
    cycle = cycle_in(phase)
    calls = {
        "commit_started": cycle.commit_started,
        "commit_succeeded": lambda: cycle.commit_succeeded(wal_is_large=False),
        "commit_failed": lambda: cycle.commit_failed(OSError("again"), turn_running=True),
    }
    with pytest.raises(InvalidTransition, match=rf"{event}\(\) while {phase.name}"):
        calls[event]()
    assert cycle.phase is phase  # and nothing changed
