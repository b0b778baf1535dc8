"""What a DirectTransport received, on its way to the runtime: bookkeeping that only needs
futures (the turns), no socket."""

import asyncio

import pytest

from accord_app.actors import TransportClosed
from accord_app.actors.sockets import Inbox

pytestmark = pytest.mark.anyio


async def test_the_inbox_hands_over_one_message_per_turn_in_order_then_the_close() -> None:
    idle: list[int] = []
    inbox = Inbox(on_idle=lambda: idle.append(len(inbox)))
    loop = asyncio.get_running_loop()
    turns: list[asyncio.Future[None]] = []
    given: list[str | bytes] = []

    def on_frame(data: str | bytes) -> asyncio.Future[None]:
        given.append(data)
        turns.append(loop.create_future())
        return turns[-1]

    closes: list[int] = []
    inbox.push("before listen")  # kept until someone listens
    inbox.listen(on_frame, lambda closed: closes.append(closed.code))
    for item in ["second", b"third", TransportClosed(1001, "gone")]:
        inbox.push(item)
    assert given == ["before listen"] and len(inbox) == 3  # the first turn is running
    for expected in [["before listen", "second"], ["before listen", "second", b"third"]]:
        turns[-1].set_result(None)
        await asyncio.sleep(0)  # done callbacks run on the loop
        assert given == expected and not closes
    turns[-1].set_result(None)
    await asyncio.sleep(0)
    assert closes == [1001] and len(inbox) == 0
    assert idle == [0, 0]  # each time the queue emptied: after listen(), after the close
