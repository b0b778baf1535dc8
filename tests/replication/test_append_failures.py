"""An append that fails in a way nobody foresaw must still answer every write waiting for it.

A batch's turns wait in the output gate for the batch's append to the log. Whatever ends that
append (a known error, one the log's client was never meant to raise, a cancellation from
inside the client), each waiting caller gets an error within the log's deadline, the actor
starts again from the log, later writes are acked, and the runtime still closes."""

import asyncio
from pathlib import Path

import pytest
from replica_tools import LOG_TIMEOUT, Notes

from accord_app.actors import Runtime
from accord_app.actors.errors import ActorError
from accord_app.actors.natslog import NatsLog
from accord_app.actors.replication import Entry
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio
# Writes sent while the failing append is in flight: they make up the next batch.
WAITING = 20
DEADLINE = LOG_TIMEOUT + 5.0  # the runtime's own deadline is the log's plus a second


class FailingLog(NatsLog):
    """The real log, whose second batch append waits until `release` is set, then raises
    `error` instead of appending."""

    def __init__(self, cluster: NatsCluster, error: BaseException) -> None:
        super().__init__(cluster.urls, replicas=min(3, cluster.servers), timeout=LOG_TIMEOUT)
        self.error = error
        self.batches = 0
        self.failing = asyncio.Event()
        self.release = asyncio.Event()

    async def append(self, key: str, entry: Entry, expected_last: int) -> tuple[int, float]:
        if entry.kind == "batch":
            self.batches += 1
            if self.batches == 2:
                self.failing.set()
                await self.release.wait()
                raise self.error
        return await super().append(key, entry, expected_last)


@pytest.mark.parametrize(
    "error",
    [
        # What a client's own task being torn down (a reconnect, a closed connection) can
        # leave in an awaiting coroutine: not an Exception, and not this task's cancellation.
        asyncio.CancelledError(),
        RuntimeError("an error the log's client was never meant to raise"),
    ],
    ids=["cancelled-inside", "unexpected-error"],
)
async def test_every_write_waiting_for_a_failed_append_gets_an_error(
    nats_cluster: NatsCluster, tmp_path: Path, error: BaseException
) -> None:
    log = FailingLog(nats_cluster, error)
    await log.connect()
    runtime = Runtime(tmp_path / "host", replication=log, replica_name="1")
    try:
        notes = runtime.namespace("notes", Notes)
        stub = notes.get(notes.id_from_name("a"))
        await stub.add(1)  # batch 1: appended
        failing = asyncio.ensure_future(stub.add(2))  # batch 2: its append will fail
        await asyncio.wait_for(log.failing.wait(), DEADLINE)
        waiting = [asyncio.ensure_future(stub.add(n)) for n in range(3, 3 + WAITING)]
        await asyncio.sleep(0.05)  # their turns run and wait for the next batch
        log.release.set()
        _, pending = await asyncio.wait([failing, *waiting], timeout=DEADLINE)
        assert not pending, f"{len(pending)} of {WAITING + 1} writes never answered"
        outcomes = [task.exception() for task in (failing, *waiting)]
        assert all(isinstance(outcome, ActorError) for outcome in outcomes), outcomes
        # The actor starts again from the log: only acknowledged writes are in it.
        assert await asyncio.wait_for(stub.add(100), DEADLINE) == 100
        assert await asyncio.wait_for(stub.numbers(), DEADLINE) == [1, 100]
    finally:
        await asyncio.wait_for(runtime.close(), DEADLINE)
        await log.close()
