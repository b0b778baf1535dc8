"""A client that drops mid-stream and reconnects with ?after_seq= misses nothing and sees
nothing twice: the replay and the live stream meet exactly at the seq it asked for."""

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from conftest import Chat, Wire

pytestmark = pytest.mark.anyio

# Every sharding mode on the fast path (the default), and the ASGI path in one: how a socket is
# written does not depend on which actor hosts the channel (the protocol suite,
# test_channel_ws.py, crosses all six).
EACH_MODE_AND_ASGI = ["channel-fast", "server-fast", "global-fast", "channel-asgi"]

SENDERS = ("ada", "bob")
PER_SENDER = 50
DROP_AFTER = 20  # messages the listener reads before its connection dies
RECONNECT_AFTER = 60  # acks the senders have had when it comes back (of 100)
TIMEOUT = 20.0


def fields(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: frame[key] for key in ("id", "seq", "timestamp", "username", "message")}


@pytest.mark.parametrize("chat", EACH_MODE_AND_ASGI, indirect=True)
async def test_a_dropped_client_resumes_exactly_once_in_order(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    total = len(SENDERS) * PER_SENDER
    acked = 0
    enough_acks = asyncio.Event()

    async def sender(name: str, ws: ClientConnection) -> list[dict[str, Any]]:
        """Send one message at a time, each after the previous one's ack; return the stream."""
        nonlocal acked
        stream = []
        for number in range(PER_SENDER):
            await ws.send(f"{name} {number}")
            while True:
                frame = await wire.recv_json(ws)
                if frame["type"] == "message":
                    stream.append(fields(frame))
                elif frame["type"] == "ack":
                    break
            acked += 1
            if acked >= RECONNECT_AFTER:
                enough_acks.set()
        while len(stream) < total:
            frame = await wire.recv_json(ws)
            if frame["type"] == "message":
                stream.append(fields(frame))
        return stream

    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.members(ada, "ada", "bob")
        await wire.members(bob, "ada", "bob")
        cy = await chat.connect(channel, "cy")
        assert await wire.recv_json(cy) == {"type": "presence", "members": ["ada", "bob", "cy"]}
        senders = asyncio.gather(sender("ada", ada), sender("bob", bob))

        first_session: list[dict[str, Any]] = []
        async with asyncio.timeout(TIMEOUT):
            while len(first_session) < DROP_AFTER:
                frame = json.loads(await cy.recv())
                assert frame["type"] == "message", frame
                first_session.append(fields(frame))
        # Drop without a close handshake, as a lost network would.
        cy.transport.abort()
        with pytest.raises(ConnectionClosed):
            await cy.recv()
        last_seen = first_session[-1]["seq"]

        await asyncio.wait_for(enough_acks.wait(), TIMEOUT)
        async with chat.connect(channel, "cy", after_seq=last_seen) as cy:
            presence = await wire.recv_json(cy)
            assert presence["type"] == "presence" and "cy" in presence["members"]
            replayed: list[dict[str, Any]] = []
            async with asyncio.timeout(TIMEOUT):
                while (frame := await wire.recv_json(cy))["type"] == "message":
                    replayed.append(fields(frame))
            assert frame["type"] == "resumed", frame
            assert frame["after_seq"] == last_seen
            assert frame["last_seq"] == (replayed[-1]["seq"] if replayed else last_seen)
            # It was away while at least RECONNECT_AFTER - DROP_AFTER messages were sent.
            assert len(replayed) >= RECONNECT_AFTER - last_seen
            live: list[dict[str, Any]] = []
            async with asyncio.timeout(TIMEOUT):
                while len(first_session) + len(replayed) + len(live) < total:
                    frame = await wire.recv_json(cy)
                    assert frame["type"] in ("message", "presence_diff"), frame
                    if frame["type"] == "message":
                        live.append(fields(frame))
            streams = await asyncio.wait_for(senders, TIMEOUT)
            # One more message after everything: it arrives live, right after the rest.
            ack, _ = await wire.send_and_confirm(ada, "the end")
            last = await wire.recv_json(cy)
            assert fields(last) == fields(ack)
            assert ack["seq"] == total + 1

    seen = first_session + replayed + live
    assert [m["seq"] for m in seen] == list(range(1, total + 1))  # no gap, no duplicate
    assert seen == streams[0] == streams[1]  # the same messages the others saw, in order
    assert seen == list(reversed(chat.history(channel, limit=200)))[:total]
    for name in SENDERS:
        mine = [m["message"] for m in seen if m["username"] == name]
        assert mine == [f"{name} {n}" for n in range(PER_SENDER)]
