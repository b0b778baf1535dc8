"""A member's name that renders like a present member's is refused at join, with the reason
in an error frame and the close; the same name again (a second tab) is that member, and once
the member has left, the name is free."""

from typing import TYPE_CHECKING

import pytest
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from conftest import Chat, Wire

pytestmark = pytest.mark.anyio

# "ada" with Latin alphas (U+0251), all in Cyrillic, and "rn" for "m".
LOOK_ALIKES = [("ada", "\u0251d\u0251"), ("ada", "\u0430\u0501\u0430"), ("mary", "rnary")]


@pytest.mark.parametrize(("present", "impostor"), LOOK_ALIKES)
async def test_a_name_that_looks_like_a_present_members_is_refused(
    chat: "Chat", wire: "type[Wire]", present: str, impostor: str
) -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, present) as member:
        assert await wire.recv_json(member) == {"type": "presence", "members": [present]}
        async with chat.connect(channel, impostor) as refused:
            error = await wire.recv_json(refused)
            assert error["type"] == "error" and error["code"] == "username_looks_like"
            assert repr(present) in error["message"] and "Choose another" in error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                await wire.recv_json(refused)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with chat.connect(channel, present) as second_tab:  # the member, not a look-alike
            presence = await wire.recv_json(second_tab)
            assert presence == {"type": "presence", "members": [present]}
        # The member heard of no one: no presence_diff for the impostor, none for a second tab.
        await member.send("still alone?")
        assert (await wire.recv_json(member))["type"] == "ack"
    async with chat.connect(channel, impostor) as later:  # the member left: the name is free
        assert await wire.recv_json(later) == {"type": "presence", "members": [impostor]}
