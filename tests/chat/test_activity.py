"""Each channel's count and latest message, per channel and server-wide, in every sharding mode
(one process; across worker processes in tests/cluster)."""

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

EXPECTED_CALLS = {"channel": "{n} local, 0 remote", "server": "1 local, 0 remote"}


async def test_activity_counts_and_shows_the_latest_message(chat: Any, wire: Any) -> None:
    server_id = chat.create_server()
    channels = [chat.create_channel(server_id, name=f"room {n}") for n in range(3)]
    sent: dict[str, list[dict[str, Any]]] = {}
    for count, channel in enumerate(channels):
        async with wire.connect(chat.ws_uri(channel, "ada")) as ws:
            await wire.recv_json(ws)  # presence
            for number in range(count):
                ack, _ = await wire.send_and_confirm(ws, f"{channel.channel_id} {number}")
                sent.setdefault(channel.channel_id, []).append(ack)
    response = chat.http.get(f"/api/servers/{server_id}/activity")
    assert response.status_code == 200
    assert "x-accord-worker" not in response.headers  # one process: no cluster, no number
    calls = EXPECTED_CALLS.get(chat.mode, "1 local, 0 remote").format(n=3)
    assert response.headers["x-accord-actor-calls"] == calls
    activity = response.json()
    assert [entry["channel_id"] for entry in activity] == [c.channel_id for c in channels]
    assert [entry["messages"] for entry in activity] == [0, 1, 2]
    assert activity[0]["latest"] is None and activity[0]["error"] is None
    last = sent[channels[2].channel_id][-1]
    assert activity[2]["latest"] == {key: last[key] for key in activity[2]["latest"]}
    one = chat.http.get(f"{channels[2].path}/activity")
    assert one.status_code == 200 and one.json() == activity[2]


def test_activity_of_unknown_or_malformed_servers_is_a_clear_error(chat: Any) -> None:
    unknown = chat.http.get("/api/servers/00000000-0000-4000-8000-000000000000/activity")
    assert unknown.status_code == 404 and unknown.json()["code"] == "server_not_found"
    malformed = chat.http.get("/api/servers/not-a-uuid/activity")
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_server_id"
    server_id = chat.create_server()
    assert chat.http.get(f"/api/servers/{server_id}/activity").json() == []
    missing = chat.http.get(
        f"/api/servers/{server_id}/channels/00000000-0000-4000-8000-000000000000/activity"
    )
    assert missing.status_code == 404 and missing.json()["code"] == "channel_not_found"
