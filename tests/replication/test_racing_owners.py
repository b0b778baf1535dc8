"""Two hosts that take the same actor at the same moment, as in a handback: the host that
returns opens its next epoch while the interim host still serves the channel's reads. The
log keeps one of the racing appends; the other host must learn that it lost in words the API
knows (a retryable 503), never as an error no one expected (a 500)."""

import asyncio
from pathlib import Path

import httpx
import pytest
from cluster_client import Running
from replica_tools import LOG_TIMEOUT, Notes, replicated_runtime

from accord_app.actors.natslog import NatsLog
from accord_app.actors.replication import Entry, WrongLastSequence
from accord_app.chat.failures import describe_failure
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio
ROUNDS = 8
# Over HTTP the two activations meet within the append's few milliseconds less often.
CHANNELS = 24
READERS = 3  # per worker and channel, at once


async def test_of_two_appends_expecting_the_same_entry_one_is_kept_one_refused(
    nats_cluster: NatsCluster,
) -> None:
    """At once, not one after the other: the stream then refuses the second while the first
    is still being replicated, with an error code of its own (10164, not 10071)."""
    logs = [NatsLog(nats_cluster.urls, timeout=LOG_TIMEOUT) for _ in range(2)]
    for log in logs:
        await log.connect()
    try:
        last = 0
        for number in range(1, ROUNDS + 1):
            appends = [
                log.append("notes.race", Entry(0, "epoch", number, 0, host=str(host)), last)
                for host, log in enumerate(logs, 1)
            ]
            results = await asyncio.gather(*appends, return_exceptions=True)
            kept = [result for result in results if isinstance(result, tuple)]
            refused = [result for result in results if isinstance(result, BaseException)]
            assert len(kept) == 1, results
            assert [type(error) for error in refused] == [WrongLastSequence], refused
            last = kept[0][0]
    finally:
        for log in logs:
            await log.close()


async def test_a_read_on_two_hosts_activating_at_once_is_answered_or_a_503(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    """Each round a new actor, read on both hosts at once: both activations append their
    epoch expecting the same (empty) log. Whoever loses reads again and opens the next epoch
    (fencing the other), or gives up with an error that the API answers with a 503."""
    async with (
        replicated_runtime(nats_cluster, tmp_path / "host-1", "1") as one,
        replicated_runtime(nats_cluster, tmp_path / "host-2", "2") as two,
    ):
        hosts = [one.namespace("notes", Notes), two.namespace("notes", Notes)]
        answered = 0
        for number in range(ROUNDS):
            name = f"channel-{number}"
            reads = [notes.get(notes.id_from_name(name)).numbers() for notes in hosts]
            for result in await asyncio.gather(*reads, return_exceptions=True):
                if isinstance(result, BaseException):
                    failure = describe_failure(result)
                    assert failure.status == 503, f"{result!r} would be a {failure.status}"
                else:
                    assert result == []
                    answered += 1
        assert answered >= ROUNDS  # at least the winner of each round answered


async def test_history_read_on_two_workers_at_once_is_a_200_or_a_retryable_503(
    replicated: Running,
) -> None:
    """The same race between real processes: each round a new channel's history, asked of
    two workers directly at the same moment (as the router and a returned host's members
    do during a handback). Every answer is the history, or a JSON 503 with Retry-After."""
    channels = replicated.create_channels(CHANNELS)
    workers = [replicated.cluster.worker_url(number) for number in (1, 2, 3)]
    async with httpx.AsyncClient(timeout=20.0, trust_env=False) as http:
        for channel in channels:
            urls = [f"{worker}{channel.path}/messages" for worker in workers] * READERS
            reads = [http.get(url) for url in urls]
            for answer in await asyncio.gather(*reads):
                if answer.status_code == 200:
                    assert answer.json() == []
                    continue
                assert answer.status_code == 503, (answer.status_code, answer.text)
                assert answer.headers["retry-after"] and answer.json()["code"], answer.text
