"""Fan-outs over local calls (server and global sharding, and channel sharding in one process)
answer per channel, like remote ones: a channel that fails is that channel's answer, and the
others' work stands."""

from typing import TYPE_CHECKING, Any

import pytest

from accord_app.actors import StorageUnavailable
from accord_app.chat.channel import ChannelActor

if TYPE_CHECKING:
    from conftest import Chat

pytestmark = pytest.mark.anyio
LOCAL = ["server-fast", "global-asgi", "channel-fast"]


def failing_in(channel_id: str, method: Any) -> Any:
    """`method`, failing for one channel as a damaged read would."""

    async def wrapped(self: ChannelActor, *args: Any) -> Any:
        if channel_id in (args[0] if isinstance(args[0], list) else [args[0]]):
            raise StorageUnavailable("the channel's storage failed")
        return await method(self, *args)

    return wrapped


@pytest.mark.parametrize("chat", LOCAL, indirect=True)
def test_an_announcement_answers_per_channel_and_a_retry_stores_once(
    chat: "Chat", monkeypatch: pytest.MonkeyPatch
) -> None:
    server_id = chat.create_server()
    channels = [chat.create_channel(server_id, name) for name in ["general", "random", "help"]]
    url = f"/api/servers/{server_id}/announcements"
    headers = {"Idempotency-Key": "meetup-1"}
    with monkeypatch.context() as patch:
        patch.setattr(
            ChannelActor, "announce", failing_in(channels[1].channel_id, ChannelActor.announce)
        )
        answer = chat.http.post(url, json={"message": "Meetup"}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["delivered"], body["failed"]) == (2, 1)
    assert body["channels"][1]["error"]["code"] == "storage_unavailable"
    retry = chat.http.post(url, json={"message": "Meetup"}, headers=headers)
    assert (retry.json()["delivered"], retry.json()["failed"]) == (3, 0)
    for channel in channels:  # stored once in each, the failed one by the retry
        assert [m["message"] for m in chat.history(channel)] == ["Meetup"]


@pytest.mark.parametrize("chat", LOCAL, indirect=True)
def test_activity_answers_per_channel(chat: "Chat", monkeypatch: pytest.MonkeyPatch) -> None:
    server_id = chat.create_server()
    channels = [chat.create_channel(server_id, name) for name in ["general", "random"]]
    monkeypatch.setattr(
        ChannelActor, "activity", failing_in(channels[1].channel_id, ChannelActor.activity)
    )
    answer = chat.http.get(f"/api/servers/{server_id}/activity")
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert rows[1]["error"]["code"] == "storage_unavailable"
    # One actor hosts both channels under server and global sharding: its failure is each
    # channel's answer. Under channel sharding the other channel answers.
    expected = None if chat.mode == "channel" else "storage_unavailable"
    assert (rows[0]["error"] or {}).get("code") == expected
