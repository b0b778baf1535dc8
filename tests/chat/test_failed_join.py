"""A socket whose join fails after the actor accepted it leaves no ghost, on both WebSocket
paths: the web layer closes it, and the runtime hears that close like any other."""

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from websockets.exceptions import ConnectionClosed

from accord_app.actors import HibernatableWebSocket, StorageUnavailable
from accord_app.chat.channel import ChannelActor

if TYPE_CHECKING:
    from tests.chat.conftest import Chat, Wire

pytestmark = pytest.mark.anyio


def failing_replay(self: ChannelActor, ws: HibernatableWebSocket, *args: Any) -> None:
    """A replay that fails, as a failed read of the disk would, once the socket was accepted."""
    raise StorageUnavailable("the replay's read failed")


@pytest.mark.parametrize("chat", ["channel-fast", "channel-asgi"], indirect=True)
async def test_a_join_that_fails_after_accepting_leaves_no_ghost(
    chat: "Chat", wire: "type[Wire]", monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ChannelActor, "replay", failing_replay)
    channel = chat.create_channel()
    async with chat.connect(channel, "ghost", after_seq=0) as ghost:
        with pytest.raises(ConnectionClosed) as closed:
            await wire.recv_json(ghost)  # the failed turn's presence frame is never sent
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    async with chat.connect(channel, "ada") as ada:
        assert await wire.recv_json(ada) == {"type": "presence", "members": ["ada"]}
        deadline = asyncio.get_running_loop().time() + 5
        while [actor.websockets for actor in chat.actors()] != [1]:
            assert asyncio.get_running_loop().time() < deadline, chat.actors()
            await asyncio.sleep(0.01)
