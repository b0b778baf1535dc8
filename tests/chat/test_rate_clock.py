"""The channel's rate limits on a clock the test turns by hand (ChannelActor.clock): refills
without sleeping, and without a loaded machine's slowness adding tokens."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord_app.actors import MemoryDirectTransport, Runtime
from accord_app.chat.channel import ChannelActor
from accord_app.chat.ratelimit import ChatLimits, ClientLimits

pytestmark = pytest.mark.anyio
CHANNEL = "5f0c2a9e-3d4b-4c8e-a1f2-9b7d6e5c4a30"


class HandClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def now(self) -> float:
        return self.seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[HandClock]:
    hand = HandClock()
    limits = ChatLimits(messages_per_second=1, burst=3, typing_interval=2)
    monkeypatch.setattr(ChannelActor, "clock", hand)
    monkeypatch.setattr(ChannelActor, "limits", limits)
    monkeypatch.setattr(ChannelActor, "clients", ClientLimits(limits))
    yield hand


async def answer(client: MemoryDirectTransport) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(client.client_receive(), 5))
    return frame


async def test_a_connection_gets_its_burst_then_one_message_a_second(
    tmp_path: Path, clock: HandClock
) -> None:
    runtime = Runtime(tmp_path)
    channels = runtime.namespace("channels", ChannelActor)
    ada = MemoryDirectTransport()
    await channels.get(channels.id_from_name("general")).join(ada, CHANNEL, "ada", None)
    assert (await answer(ada))["type"] == "presence"

    async def send(text: str) -> str:
        ada.client_send(json.dumps({"type": "message", "message": text}))
        first = await answer(ada)
        if first["type"] == "ack":
            assert (await answer(ada))["type"] == "message"  # its broadcast
        return str(first.get("code", first["type"]))

    assert [await send(f"burst {n}") for n in range(4)] == ["ack"] * 3 + ["rate_limited"]
    clock.seconds += 0.9
    assert await send("too soon") == "rate_limited"
    clock.seconds += 0.2  # a whole token since the last one was spent
    assert await send("on time") == "ack"
    await runtime.close()
