"""Alarms: fire at or after their time, survive a restart, retry with backoff, at least once."""

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from accord_app.actors import Actor, Runtime
from accord_app.actors.alarms import AlarmRetries

pytestmark = pytest.mark.anyio
fired: list[float] = []
failures_left = [0]


class Reminder(Actor):
    async def remind_at(self, at: float) -> None:
        self.storage.set_alarm(at)

    async def cancel(self) -> None:
        self.storage.delete_alarm()

    async def next_alarm(self) -> float | None:
        return self.storage.get_alarm()

    async def attempts_stored(self) -> int:
        attempts: int = self.storage.get("attempts") or 0
        return attempts

    async def alarm(self) -> None:
        assert self.storage.get_alarm() is None  # cleared while its handler runs
        fired.append(time.time())
        self.storage.put("attempts", (self.storage.get("attempts") or 0) + 1)
        if failures_left[0] > 0:
            failures_left[0] -= 1
            raise RuntimeError("alarm handler failed")


class Repeating(Actor):
    async def start(self) -> None:
        self.storage.set_alarm(time.time() + 0.02)

    async def alarm(self) -> None:
        fired.append(time.time())
        if len(fired) < 3:
            self.storage.set_alarm(time.time() + 0.02)


@pytest.fixture(autouse=True)
def reset_records() -> None:
    fired.clear()
    failures_left[0] = 0


async def wait_for(condition: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_alarm_fires_at_or_after_its_time(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    reminders = runtime.namespace("reminders", Reminder)
    stub = reminders.get(reminders.id_from_name("a"))
    at = time.time() + 0.1
    await stub.remind_at(at)
    assert await stub.next_alarm() == at
    await wait_for(lambda: fired)
    assert fired[0] >= at
    assert await stub.next_alarm() is None
    await asyncio.sleep(0.05)
    assert reminders.alarm_index.entries() == {}
    await runtime.close()


async def test_alarm_set_before_a_restart_fires_after_it(tmp_path: Path) -> None:
    first = Runtime(tmp_path)
    reminders = first.namespace("reminders", Reminder)
    at = time.time() + 0.3
    await reminders.get(reminders.id_from_name("a")).remind_at(at)
    await first.close()
    assert fired == []
    second = Runtime(tmp_path)
    second.namespace("reminders", Reminder)  # no call: the index alone brings it back
    await wait_for(lambda: fired)
    assert fired[0] >= at
    await second.close()


async def test_failing_alarm_is_retried_with_backoff(tmp_path: Path) -> None:
    failures_left[0] = 2
    runtime = Runtime(tmp_path, alarm_retry_base=0.05)
    reminders = runtime.namespace("reminders", Reminder)
    stub = reminders.get(reminders.id_from_name("a"))
    await stub.remind_at(time.time())
    await wait_for(lambda: len(fired) == 3)
    gaps = [later - earlier for earlier, later in itertools.pairwise(fired)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # base, then twice the base
    assert await stub.attempts_stored() == 1  # the failed attempts' writes rolled back
    assert await stub.next_alarm() is None
    await runtime.close()


async def test_alarm_that_keeps_failing_is_given_up(tmp_path: Path) -> None:
    failures_left[0] = 100
    runtime = Runtime(tmp_path, alarm_retry_base=0.01, alarm_max_retries=2)
    reminders = runtime.namespace("reminders", Reminder)
    stub = reminders.get(reminders.id_from_name("a"))
    await stub.remind_at(time.time())
    await wait_for(lambda: len(fired) == 3)  # the first attempt and two retries
    await asyncio.sleep(0.1)
    assert len(fired) == 3
    assert await stub.next_alarm() is None
    assert reminders.alarm_index.entries() == {}
    await runtime.close()


async def test_handler_can_set_the_next_alarm(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    repeating = runtime.namespace("repeating", Repeating)
    await repeating.get(repeating.id_from_name("a")).start()
    await wait_for(lambda: len(fired) == 3)
    await runtime.close()


async def test_deleted_alarm_does_not_fire(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    reminders = runtime.namespace("reminders", Reminder)
    stub = reminders.get(reminders.id_from_name("a"))
    await stub.remind_at(time.time() + 0.05)
    await stub.cancel()
    await asyncio.sleep(0.15)
    assert fired == []
    assert reminders.alarm_index.entries() == {}
    await runtime.close()


async def test_early_index_entry_only_corrects_the_index(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    reminders = runtime.namespace("reminders", Reminder)
    actor_id = reminders.id_from_name("a")
    later = time.time() + 60
    await reminders.get(actor_id).remind_at(later)
    reminders.alarm_index.lower(actor_id.hex, time.time() - 1)  # as if a crash left it early
    reminders.scheduler.poke()
    await wait_for(lambda: reminders.alarm_index.entries() == {actor_id.hex: later})
    assert fired == []
    await runtime.close()


def test_retry_delays_double_and_stop_after_the_limit() -> None:
    retries = AlarmRetries(base_delay=2.0, max_retries=6)
    delays = [retries.failed("a", now=100.0) for _ in range(7)]
    assert delays == [102.0, 104.0, 108.0, 116.0, 132.0, 164.0, None]
    assert retries.failed("a", now=0.0) == 2.0  # counting starts over after giving up
    retries.succeeded("a")
    assert retries.failed("a", now=0.0) == 2.0
