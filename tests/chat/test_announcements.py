"""Announcements: one request, every channel of a server, each stored once and broadcast."""

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from accord_app import Settings, create_app
from accord_app.actors.events import ActorEvent, EventKind
from accord_app.app import uvicorn_options
from accord_app.chat.http.announcements import LOCAL_CALLS_IN_FLIGHT
from accord_app.chat.protocol import ANNOUNCER
from accord_app.lab.loadtest import ADMIN_HEADERS, LAB_ADMIN_TOKEN
from accord_app.lab.server import BackgroundServer
from accord_app.web.middleware import RequestLimits

if TYPE_CHECKING:
    from conftest import Chat, Wire

pytestmark = pytest.mark.anyio


async def test_an_announcement_reaches_every_channel_stored_and_broadcast(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    server_id = chat.create_server()
    channels = [chat.create_channel(server_id, name) for name in ["general", "random", "help"]]
    other = chat.create_channel()  # another server's channel hears nothing
    async with chat.connect(channels[1], "ada") as ada, chat.connect(other, "bob") as bob:
        assert (await wire.recv_json(ada))["type"] == "presence"
        assert (await wire.recv_json(bob))["type"] == "presence"
        answer = chat.http.post(
            f"/api/servers/{server_id}/announcements", json={"message": "  Meetup at 7  "}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["delivered"], body["failed"]) == (3, 0)
        assert [d["channel_id"] for d in body["channels"]] == [c.channel_id for c in channels]
        heard = await wire.recv_json(ada)
        assert (heard["type"], heard["username"], heard["message"]) == (
            "message",
            ANNOUNCER,
            "Meetup at 7",
        )
        assert heard["seq"] == body["channels"][1]["message"]["seq"] == 1
        ack, _ = await wire.send_and_confirm(ada, "after it")
        assert ack["seq"] == 2
    for channel in channels:
        assert [m["username"] for m in chat.history(channel)] == (
            ["ada", ANNOUNCER] if channel == channels[1] else [ANNOUNCER]
        )
    assert chat.history(other) == []
    assert answer.headers["X-Accord-Actor-Calls"] == "3 local, 0 remote"  # one process


def test_the_same_idempotency_key_stores_one_announcement(chat: "Chat") -> None:
    channel = chat.create_channel()
    url = f"{channel.path}/announcements"
    first, again = (
        chat.http.post(url, json={"message": "once"}, headers={"Idempotency-Key": "k-1"})
        for _ in range(2)
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = chat.http.post(url, json={"message": "once"}, headers={"Idempotency-Key": "k-2"})
    assert other.json()["seq"] == first.json()["seq"] + 1
    assert [m["message"] for m in chat.history(channel)] == ["once", "once"]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"message": "   "}, "empty_message"), ({"message": "x" * 5000}, "message_too_long")],
)
def test_a_bad_announcement_is_a_400_and_stores_nothing(
    chat: "Chat", body: dict[str, str], code: str
) -> None:
    channel = chat.create_channel()
    for path in [
        f"/api/servers/{channel.server_id}/announcements",
        f"{channel.path}/announcements",
    ]:
        answer = chat.http.post(path, json=body)
        assert answer.status_code == 400 and answer.json()["code"] == code, answer.text
    assert chat.history(channel) == []


def test_unknown_servers_and_channels_are_404s(chat: "Chat") -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    answer = chat.http.post(f"/api/servers/{unknown}/announcements", json={"message": "hi"})
    assert answer.status_code == 404 and answer.json()["code"] == "server_not_found"
    channel = chat.create_channel()
    path = f"/api/servers/{channel.server_id}/channels/{unknown}/announcements"
    answer = chat.http.post(path, json={"message": "hi"})
    assert answer.status_code == 404 and answer.json()["code"] == "channel_not_found"


async def test_nobody_may_join_under_the_announcers_name(chat: "Chat") -> None:
    channel = chat.create_channel()
    with pytest.raises(InvalidStatus) as refused:
        async with chat.connect(channel, ANNOUNCER):
            pass
    assert refused.value.response.status_code == 400


def test_announcing_needs_the_admin_token_and_is_off_without_one(
    chat: "Chat", chat_without_admin_token: "Chat"
) -> None:
    channel = chat.create_channel()
    paths = [f"/api/servers/{channel.server_id}/announcements", f"{channel.path}/announcements"]
    # The fixture's client sends the token by default: each of these replaces it. A worker's
    # internal header, without the router's secret, is no privilege either.
    none, wrong = {"Authorization": ""}, {"Authorization": "Bearer not-the-token"}
    for headers in [none, wrong, {**none, "X-Accord-Internal": "x"}]:
        for path in paths:
            answer = chat.http.post(path, json={"message": "free pizza"}, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "admin_token_required"
    assert chat.history(channel) == []
    # A server started without ACCORD_ADMIN_TOKEN refuses everyone, and says how to turn it on.
    off = chat_without_admin_token
    other = off.create_channel()
    for path in [f"/api/servers/{other.server_id}/announcements", f"{other.path}/announcements"]:
        answer = off.http.post(path, json={"message": "free pizza"})
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "announcements_disabled"
        assert "ACCORD_ADMIN_TOKEN" in answer.json()["message"]
    assert off.history(other) == []


def test_an_idempotency_key_sent_again_with_another_text_is_refused(chat: "Chat") -> None:
    server_id = chat.create_server()
    channels = [chat.create_channel(server_id, name) for name in ["general", "random"]]
    for path in [f"{channels[0].path}/announcements", f"/api/servers/{server_id}/announcements"]:
        key = {"Idempotency-Key": f"key-{len(path)}"}
        first = chat.http.post(path, json={"message": "Meetup at 7"}, headers=key)
        assert first.status_code in (200, 201), first.text
        again = chat.http.post(path, json={"message": "Meetup at 8"}, headers=key)
        assert again.status_code == 422, again.text
        assert again.json()["code"] == "idempotency_key_reused"
    assert [m["message"] for m in chat.history(channels[0])] == ["Meetup at 7"] * 2
    assert [m["message"] for m in chat.history(channels[1])] == ["Meetup at 7"]


CHANNELS = 64


def test_an_announcement_writes_to_a_few_channels_at_a_time(tmp_path: Path) -> None:
    """200 channels' writes at once would queue 200 fsyncs ahead of every member's message;
    the fan-out keeps a few under way (LOCAL_CALLS_IN_FLIGHT), and still answers for each
    channel. Seen in the runtime's own turn events: each call's turn (with the actor's
    wake-up) is one span, and at no moment are more of them under way than that. 64 channels,
    twice what went out at once before, each created with an fsync of the catalog's."""
    settings = replace(
        Settings(data_dir=tmp_path, admin_token=LAB_ADMIN_TOKEN),
        request_limits=RequestLimits(per_second=1e9, burst=10**9),
    )
    app = create_app(settings)
    spans: list[tuple[float, float]] = []  # each turn's start and end, time.time()

    def on_turn(event: ActorEvent) -> None:
        spans.append((event.at - (event.seconds or 0.0), event.at))

    with (
        BackgroundServer(app, **uvicorn_options(settings)) as server,
        httpx.Client(base_url=server.url, trust_env=False, timeout=30) as http,
    ):
        server_id = http.post("/api/servers", json={"name": "Big"}).json()["id"]
        for number in range(CHANNELS):
            path = f"/api/servers/{server_id}/channels"
            assert http.post(path, json={"name": f"room {number}"}).status_code == 201
        stop = app.state.channels.runtime.observe(on_turn, {EventKind.TURN})
        try:
            answer = http.post(
                f"/api/servers/{server_id}/announcements",
                json={"message": "Doors close at 9"},
                headers=ADMIN_HEADERS,
            )
        finally:
            stop()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["delivered"], body["failed"]) == (CHANNELS, 0)
    assert len({d["channel_id"] for d in body["channels"]}) == CHANNELS
    assert len(spans) == CHANNELS  # one turn per channel's actor
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    under_way = most = 0
    for _, step in edges:
        under_way += step
        most = max(most, under_way)
    assert most <= LOCAL_CALLS_IN_FLIGHT
