"""A message whose append the log kept but did not answer in time: its outcome is unknown.

The sender is told so (outcome_unknown: "may or may not be stored"), and the retry with the
same nonce converges: the channel finds the stored message, broadcasts it again, and acks
it, so another member sees it (once, by seq) although no later message reveals the gap."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from replica_tools import LOG_TIMEOUT

from accord_app.actors import MemoryDirectTransport, Runtime
from accord_app.actors.errors import LogUnavailable
from accord_app.actors.natslog import NatsLog
from accord_app.actors.replication import Entry
from accord_app.chat.channel import ChannelActor
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio
CHANNEL = "5d1c8e0a-7b2f-4c3d-8e9f-1a2b3c4d5e6f"
DEADLINE = LOG_TIMEOUT + 5.0
NOISE = {"presence", "presence_diff"}  # who is here: not what this test is about
ANSWERS = {"ack", "error"}  # what answers a "message" frame


class UnansweredLog(NatsLog):
    """The real log; once armed, the next batch is appended, then its answer is lost."""

    def __init__(self, cluster: NatsCluster) -> None:
        super().__init__(cluster.urls, replicas=min(3, cluster.servers), timeout=LOG_TIMEOUT)
        self.armed = False
        self.kept: list[int] = []  # the stream sequences of the batches answered with a timeout

    async def append(self, key: str, entry: Entry, expected_last: int) -> tuple[int, float]:
        answer = await super().append(key, entry, expected_last)
        if entry.kind == "batch" and self.armed:
            self.armed = False
            self.kept.append(answer[0])
            raise LogUnavailable("no majority answered in time (the answer was lost)")
        return answer


async def next_frame(client: MemoryDirectTransport) -> dict[str, Any]:
    """The client's next frame that is not about presence."""
    while True:
        frame: dict[str, Any] = json.loads(
            await asyncio.wait_for(client.client_receive(), DEADLINE)
        )
        if frame["type"] not in NOISE:
            return frame


async def answer(client: MemoryDirectTransport) -> dict[str, Any]:
    """The answer to the client's message (the sender is a member too: broadcasts reach it)."""
    while (frame := await next_frame(client))["type"] not in ANSWERS:
        pass
    return frame


async def test_a_kept_but_unanswered_message_reaches_every_member_on_the_senders_retry(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    log = UnansweredLog(nats_cluster)
    await log.connect()
    runtime = Runtime(tmp_path / "host", replication=log, replica_name="1")
    try:
        channels = runtime.namespace("channels", ChannelActor)
        channel = channels.get(channels.id_from_name("general"))
        ada, bob = MemoryDirectTransport(), MemoryDirectTransport()
        await channel.join(ada, CHANNEL, "ada", None)
        await channel.join(bob, CHANNEL, "bob", None)
        log.armed = True
        send = json.dumps({"type": "message", "message": "hello", "nonce": "n-1"})
        ada.client_send(send)
        refused = await answer(ada)
        assert (refused["type"], refused["code"], refused["nonce"]) == (
            "error",
            "outcome_unknown",
            "n-1",
        ), refused
        assert "may or may not be stored" in refused["message"]
        assert "same nonce" in refused["message"]
        assert log.kept, "the append was never made: the test proves nothing"

        ada.client_send(send)  # the retry the error asks for
        ack = await answer(ada)
        assert (ack["type"], ack["nonce"], ack["message"], ack["seq"]) == ("ack", "n-1", "hello", 1)
        ada.client_send(send)  # once more: an ack, and no second broadcast
        assert (await answer(ada))["seq"] == 1
        # A frame after everything above, in the order sent: what bob got before it is all.
        ada.client_send(json.dumps({"type": "typing"}))
        got: list[dict[str, Any]] = []
        while (frame := await next_frame(bob))["type"] != "typing":
            got.append(frame)
        assert [(frame["type"], frame["seq"], frame["message"]) for frame in got] == [
            ("message", 1, "hello")
        ], got
        assert [row["seq"] for row in await channel.history(CHANNEL, 10)] == [1]
    finally:
        await asyncio.wait_for(runtime.close(), DEADLINE)
        await log.close()
