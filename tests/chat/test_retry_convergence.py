"""The rule that keeps a retry's broadcast cheap: a retried key whose message is stored
broadcasts it again only if it is among the channel's latest RECENT_MESSAGES, and only once
per seq per instance (a failed commit, the one thing that drops a broadcast, starts a new
one). tests/replication/test_unanswered_append.py shows why it broadcasts at all."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from accord_app.actors import MemoryDirectTransport, Runtime
from accord_app.chat.channel import RECENT_MESSAGES, ChannelActor

pytestmark = pytest.mark.anyio
CHANNEL = "7e3a9c1b-2d4f-4a6b-8c0d-9e1f2a3b4c5d"


async def frames_before_typing(client: MemoryDirectTransport) -> list[dict[str, Any]]:
    """The messages the client got before the next typing notice (presence aside)."""
    got = []
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(client.client_receive(), 5))
        if frame["type"] == "typing":
            return got
        if frame["type"] == "message":
            got.append(frame)


async def test_a_retry_broadcasts_a_recent_message_once_per_instance_and_an_old_one_never(
    tmp_path: Path,
) -> None:
    runtime = Runtime(tmp_path)
    channels = runtime.namespace("channels", ChannelActor)
    channel = channels.get(channels.id_from_name("general"))
    # All at once: they queue in order and share a few group commits, not one fsync each.
    notes = [channel.announce(CHANNEL, f"note {n}", f"key-{n}") for n in range(RECENT_MESSAGES + 1)]
    assert [note["seq"] for note in await asyncio.gather(*notes)] == list(
        range(1, RECENT_MESSAGES + 2)
    )
    # In the instance that broadcast them, a retry (a lost answer) is answered, not broadcast.
    ada, bob = MemoryDirectTransport(), MemoryDirectTransport()
    await channel.join(ada, CHANNEL, "ada", None)
    await channel.join(bob, CHANNEL, "bob", None)
    last = await channel.announce(CHANNEL, f"note {RECENT_MESSAGES}", f"key-{RECENT_MESSAGES}")
    assert last["seq"] == RECENT_MESSAGES + 1
    ada.client_send(json.dumps({"type": "typing"}))
    assert await frames_before_typing(bob) == []
    await runtime.close()

    # A new instance (as after a failed commit): the latest one again, once; the oldest never.
    runtime = Runtime(tmp_path)
    channels = runtime.namespace("channels", ChannelActor)
    channel = channels.get(channels.id_from_name("general"))
    ada, bob = MemoryDirectTransport(), MemoryDirectTransport()
    await channel.join(ada, CHANNEL, "ada", None)
    await channel.join(bob, CHANNEL, "bob", None)
    oldest = await channel.announce(CHANNEL, "note 0", "key-0")
    assert oldest["seq"] == 1
    for _ in range(3):
        await channel.announce(CHANNEL, f"note {RECENT_MESSAGES}", f"key-{RECENT_MESSAGES}")
    ada.client_send(json.dumps({"type": "typing"}))
    got = await frames_before_typing(bob)
    assert [(frame["seq"], frame["message"]) for frame in got] == [
        (RECENT_MESSAGES + 1, f"note {RECENT_MESSAGES}")
    ]
    await runtime.close()
