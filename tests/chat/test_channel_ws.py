"""The channel contract over a real socket: history, the WebSocket protocol, presence, limits,
hibernation and isolation, in each sharding mode (the fixtures are parametrized)."""

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accord_app.chat.channel import REPLAY_MESSAGES

if TYPE_CHECKING:
    from conftest import ChannelRef, Chat, Wire

pytestmark = pytest.mark.anyio

MESSAGE_FIELDS = ["id", "message", "seq", "timestamp", "username"]


def now_ms() -> int:
    return int(time.time() * 1000)


def stored(frame: dict[str, Any]) -> dict[str, Any]:
    """The fields of a message as history returns them."""
    return {key: frame[key] for key in MESSAGE_FIELDS}


async def fill(
    chat: "Chat", wire: "type[Wire]", channel: "ChannelRef", count: int, username: str = "ada"
) -> list[dict]:
    """Post "m1".."m<count>" (pipelined) and return their message frames, oldest first."""
    async with chat.connect(channel, username) as ws:
        assert (await wire.recv_json(ws))["type"] == "presence"
        for number in range(1, count + 1):
            await ws.send(f"m{number}")
        frames = await wire.recv_frames(ws, 2 * count)
    acks = [stored(frame) for frame in frames if frame["type"] == "ack"]
    messages = [stored(frame) for frame in frames if frame["type"] == "message"]
    assert acks == messages
    assert [m["message"] for m in messages] == [f"m{n}" for n in range(1, count + 1)]
    return messages


# -- history over HTTP -----------------------------------------------------------------------


async def test_history_is_newest_first_with_every_field(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    assert chat.history(channel) == []
    before = now_ms()
    frames = await fill(chat, wire, channel, 3)
    after = now_ms()
    rows = chat.history(channel)
    assert rows == list(reversed(frames))
    assert [row["seq"] for row in rows] == [3, 2, 1]
    assert [row["message"] for row in rows] == ["m3", "m2", "m1"]
    for row in rows:
        assert sorted(row) == MESSAGE_FIELDS
        assert str(uuid.UUID(row["id"])) == row["id"]
        assert row["username"] == "ada"
        assert before - 1 <= row["timestamp"] <= after + 1
    assert [row["timestamp"] for row in rows] == sorted(
        (r["timestamp"] for r in rows), reverse=True
    )
    assert len({row["id"] for row in rows}) == 3


async def test_history_limit_and_before_page_back(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    await fill(chat, wire, channel, 55)
    assert [row["seq"] for row in chat.history(channel)] == list(range(55, 5, -1))  # 50
    assert [row["seq"] for row in chat.history(channel, limit=1)] == [55]
    assert [row["seq"] for row in chat.history(channel, limit=200)] == list(range(55, 0, -1))
    assert [row["seq"] for row in chat.history(channel, limit=10, before=20)] == list(
        range(19, 9, -1)
    )
    assert [row["seq"] for row in chat.history(channel, limit=10, before=4)] == [3, 2, 1]
    assert chat.history(channel, before=1) == []
    # Paging with before= walks the whole channel once.
    seen: list[int] = []
    page = chat.history(channel, limit=7)
    while page:
        seen += [row["seq"] for row in page]
        page = chat.history(channel, limit=7, before=page[-1]["seq"])
    assert seen == list(range(55, 0, -1))


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": -1},
        {"limit": "ten"},
        {"before": "x"},
        {"before": 2**63},
    ],
    ids=["limit-0", "limit-201", "limit-negative", "limit-text", "before-text", "before-huge"],
)
async def test_history_bad_query_is_400(chat: "Chat", query: dict) -> None:
    channel = chat.create_channel()
    response = chat.http.get(f"{channel.path}/messages", params=query)
    assert response.status_code == 400
    body = response.json()
    assert sorted(body) == ["code", "message"]
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]


async def test_history_bad_and_unknown_ids(chat: "Chat") -> None:
    channel = chat.create_channel()
    other_server = chat.create_server("Other")
    unknown = str(uuid.uuid4())
    cases = [
        (f"/api/servers/not-a-uuid/channels/{channel.channel_id}", 400, "invalid_server_id"),
        (f"/api/servers/{channel.server_id}/channels/not-a-uuid", 400, "invalid_channel_id"),
        (f"/api/servers/{unknown}/channels/{channel.channel_id}", 404, "server_not_found"),
        (f"/api/servers/{channel.server_id}/channels/{unknown}", 404, "channel_not_found"),
        # A real channel under the wrong server does not exist there.
        (f"/api/servers/{other_server}/channels/{channel.channel_id}", 404, "channel_not_found"),
    ]
    for path, status, code in cases:
        response = chat.http.get(f"{path}/messages")
        assert (response.status_code, response.json()["code"]) == (status, code), path
        assert sorted(response.json()) == ["code", "message"]


# -- connecting ------------------------------------------------------------------------------


async def test_plain_get_on_connect_is_426(chat: "Chat") -> None:
    channel = chat.create_channel()
    response = chat.http.get(f"{channel.path}/connect", params={"username": "ada"})
    assert response.status_code == 426
    assert response.json()["code"] == "upgrade_required"
    assert sorted(response.json()) == ["code", "message"]


async def test_connect_refusals_come_before_the_upgrade(chat: "Chat") -> None:
    channel = chat.create_channel()
    unknown = str(uuid.uuid4())
    bad_server = chat.ref("not-a-uuid", channel.channel_id)
    bad_channel = chat.ref(channel.server_id, "not-a-uuid")
    cases: list[tuple[ChannelRef, str | None, dict, int, str]] = [
        (chat.ref(unknown, channel.channel_id), "ada", {}, 404, "server_not_found"),
        (chat.ref(channel.server_id, unknown), "ada", {}, 404, "channel_not_found"),
        (bad_server, "ada", {}, 400, "invalid_server_id"),
        (bad_channel, "ada", {}, 400, "invalid_channel_id"),
        (channel, None, {}, 400, "invalid_username"),
        (channel, "", {}, 400, "invalid_username"),
        (channel, "   ", {}, 400, "invalid_username"),
        (channel, "x" * 33, {}, 400, "invalid_username"),
        (channel, "ada", {"after_seq": "soon"}, 400, "invalid_after_seq"),
        (channel, "ada", {"after_seq": "²"}, 400, "invalid_after_seq"),
        (channel, "ada", {"after_seq": str(2**63)}, 400, "invalid_after_seq"),
    ]
    for target, username, params, status, code in cases:
        with pytest.raises(InvalidStatus) as refused:
            async with chat.connect(target, username, **params):
                pass
        response = refused.value.response
        body = json.loads(bytes(response.body))
        assert (response.status_code, body["code"]) == (status, code), (target, username)
        assert sorted(body) == ["code", "message"]
    # Nothing was stored or joined by the refusals.
    assert chat.history(channel) == []


async def test_username_is_trimmed_and_32_chars_is_fine(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    long_name = "y" * 32
    async with chat.connect(channel, "  ada  ") as ada, chat.connect(channel, long_name) as other:
        assert await wire.recv_json(ada) == {"type": "presence", "members": ["ada"]}
        assert await wire.recv_json(other) == {"type": "presence", "members": ["ada", long_name]}
        await wire.members(ada, "ada", long_name)
        ack, _ = await wire.send_and_confirm(ada, "hi")
        assert ack["username"] == "ada"


# -- messages ----------------------------------------------------------------------------------


async def test_message_is_acked_to_sender_and_broadcast_to_everyone(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.members(ada, "ada", "bob")
        await wire.members(bob, "ada", "bob")
        before = now_ms()
        ack, echo = await wire.send_and_confirm(ada, "hello bob")
        received = await wire.recv_json(bob)
        after = now_ms()
    assert ack["type"] == "ack" and echo["type"] == "message" and received["type"] == "message"
    assert stored(ack) == stored(echo) == stored(received)
    assert sorted(received) == sorted(["type", *MESSAGE_FIELDS])
    assert (ack["seq"], ack["username"], ack["message"]) == (1, "ada", "hello bob")
    assert str(uuid.UUID(ack["id"])) == ack["id"]
    assert before - 1 <= ack["timestamp"] <= after + 1
    assert chat.history(channel) == [stored(ack)]


async def test_concurrent_senders_get_gap_free_seqs_in_the_same_order(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    names, per_sender = ["ada", "bob", "cy"], 20
    total = len(names) * per_sender
    async with (
        chat.connect(channel, "ada") as ada,
        chat.connect(channel, "bob") as bob,
        chat.connect(channel, "cy") as cy,
    ):
        sockets = [ada, bob, cy]
        for ws in sockets:
            await wire.members(ws, *names)

        async def run(name: str, ws: Any) -> tuple[list[dict], list[dict]]:
            for number in range(per_sender):
                await ws.send(f"{name}-{number}")
            acks, messages = [], []
            while len(acks) < per_sender or len(messages) < total:
                frame = await wire.recv_json(ws)
                (acks if frame["type"] == "ack" else messages).append(frame)
            return acks, messages

        results = await asyncio.gather(*(run(n, ws) for n, ws in zip(names, sockets, strict=True)))
    sequences = [[stored(m) for m in messages] for _, messages in results]
    assert [m["seq"] for m in sequences[0]] == list(range(1, total + 1))
    assert sequences[0] == sequences[1] == sequences[2]
    assert {m["type"] for _, messages in results for m in messages} == {"message"}
    for name, (acks, _) in zip(names, results, strict=True):
        # Each sender's messages keep the order it sent them in, and its acks match the stream.
        assert [a["message"] for a in acks] == [f"{name}-{n}" for n in range(per_sender)]
        mine = [m for m in sequences[0] if m["username"] == name]
        assert [stored(a) for a in acks] == mine
        assert [m["message"] for m in mine] == [f"{name}-{n}" for n in range(per_sender)]
    assert chat.history(channel, limit=200) == list(reversed(sequences[0]))


async def test_resume_with_after_seq_on_connect(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    frames = await fill(chat, wire, channel, 5)
    async with chat.connect(channel, "bob", after_seq=2) as bob:
        assert await wire.recv_json(bob) == {"type": "presence", "members": ["bob"]}
        replayed = await wire.recv_frames(bob, 3)
        assert [f["type"] for f in replayed] == ["message"] * 3
        assert [stored(f) for f in replayed] == frames[2:]
        assert await wire.recv_json(bob) == {
            "type": "resumed",
            "after_seq": 2,
            "last_seq": 5,
            "more": False,
        }
        ack, echo = await wire.send_and_confirm(bob, "live")
        assert ack["seq"] == echo["seq"] == 6
    async with chat.connect(channel, "cy", after_seq=6) as cy:
        assert (await wire.recv_json(cy))["type"] == "presence"
        assert await wire.recv_json(cy) == {
            "type": "resumed",
            "after_seq": 6,
            "last_seq": 6,
            "more": False,
        }


async def test_resume_with_a_first_frame(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    empty = chat.create_channel(channel.server_id, "empty")
    frames = await fill(chat, wire, channel, 5)
    async with chat.connect(channel, "bob") as bob, chat.connect(empty, "bob") as lonely:
        assert await wire.recv_json(bob) == {"type": "presence", "members": ["bob"]}
        await bob.send(json.dumps({"type": "resume", "after_seq": 3}))
        assert [stored(f) for f in await wire.recv_frames(bob, 2)] == frames[3:]
        assert await wire.recv_json(bob) == {
            "type": "resumed",
            "after_seq": 3,
            "last_seq": 5,
            "more": False,
        }
        await bob.send(json.dumps({"type": "resume", "after_seq": 0}))
        assert [stored(f) for f in await wire.recv_frames(bob, 5)] == frames
        assert await wire.recv_json(bob) == {
            "type": "resumed",
            "after_seq": 0,
            "last_seq": 5,
            "more": False,
        }
        ack, _ = await wire.send_and_confirm(bob, "after resume")
        assert ack["seq"] == 6
        assert await wire.recv_json(lonely) == {"type": "presence", "members": ["bob"]}
        await lonely.send(json.dumps({"type": "resume", "after_seq": 0}))
        assert await wire.recv_json(lonely) == {
            "type": "resumed",
            "after_seq": 0,
            "last_seq": 0,
            "more": False,
        }


async def test_a_nonce_is_stored_once_and_acked_twice_the_same(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    frame = json.dumps({"type": "message", "message": "once", "nonce": "n-1"})
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.recv_frames(ada, 2)
        await wire.recv_json(bob)
        first_ack, _ = await wire.send_and_confirm(ada, frame)
        await ada.send(frame)
        second_ack = await wire.recv_json(ada)
        assert second_ack == first_ack
        assert (first_ack["type"], first_ack["seq"], first_ack["nonce"]) == ("ack", 1, "n-1")
        # The retry is not broadcast: bob's next frame after the first copy is the next message.
        assert (await wire.recv_json(bob))["seq"] == 1
        after, _ = await wire.send_and_confirm(ada, "next")
        assert after["seq"] == 2
        assert stored(await wire.recv_json(bob)) == stored(after)
        # The same nonce from another user is another message.
        bob_ack, _ = await wire.send_and_confirm(bob, frame)
        assert bob_ack["seq"] == 3 and bob_ack["id"] != first_ack["id"]
    assert [row["message"] for row in chat.history(channel)] == ["once", "next", "once"]
    assert chat.history(channel)[-1] == stored(first_ack)


# -- presence and typing ---------------------------------------------------------------------


async def test_presence_joined_and_left_count_users_not_sockets(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        assert await wire.recv_json(ada) == {"type": "presence", "members": ["ada"]}
        async with chat.connect(channel, "bob") as bob:
            assert await wire.recv_json(bob) == {"type": "presence", "members": ["ada", "bob"]}
            diff = await wire.recv_json(ada)  # ada's own join too, if it was still pending
            assert diff["type"] == "presence_diff" and "bob" in diff["joins"], diff
            assert set(diff["joins"]) <= {"ada", "bob"} and diff["leaves"] == [], diff
            async with chat.connect(channel, "bob") as bob_again:
                assert await wire.recv_json(bob_again) == {
                    "type": "presence",
                    "members": ["ada", "bob"],
                }
            # bob's second socket came and went: ada and bob heard nothing of it.
            ack, _ = await wire.send_and_confirm(ada, "still here")
            assert (await wire.recv_json(bob))["seq"] == ack["seq"]
        diff = {"type": "presence_diff", "joins": [], "leaves": ["bob"]}
        assert await wire.recv_json(ada) == diff
        async with chat.connect(channel, "cy") as cy:
            assert await wire.recv_json(cy) == {"type": "presence", "members": ["ada", "cy"]}
            diff = {"type": "presence_diff", "joins": ["cy"], "leaves": []}
            assert await wire.recv_json(ada) == diff


async def test_typing_goes_to_the_others_and_is_not_stored(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.members(ada, "ada", "bob")
        await wire.members(bob, "ada", "bob")
        await ada.send(json.dumps({"type": "typing"}))
        assert await wire.recv_json(bob) == {"type": "typing", "username": "ada"}
        # ada does not hear her own typing: her next frames are her message's.
        ack, _ = await wire.send_and_confirm(ada, "typed")
        assert ack["seq"] == 1
        assert (await wire.recv_json(bob))["seq"] == 1
    assert [row["message"] for row in chat.history(channel)] == ["typed"]


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("", "empty_message"),
        ("   ", "empty_message"),
        ("x" * 2001, "message_too_long"),
        (json.dumps({"type": "message", "message": "y" * 2001}), "message_too_long"),
        (json.dumps({"type": "zap"}), "unknown_type"),
        (b"\x00binary", "binary_frame"),
    ],
    ids=["empty", "blank", "too-long", "too-long-json", "unknown-type", "binary"],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    chat: "Chat", wire: "type[Wire]", frame: str | bytes, code: str
) -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        await wire.recv_json(ada)
        await ada.send(frame)
        error = await wire.recv_json(ada)
        assert sorted(error) == ["code", "message", "type"]
        assert (error["type"], error["code"]) == ("error", code)
        assert isinstance(error["message"], str) and error["message"]
        ack, _ = await wire.send_and_confirm(ada, "z" * 2000)  # the longest message is fine
        assert ack["seq"] == 1
    assert [row["seq"] for row in chat.history(channel)] == [1]


async def test_a_frame_over_16_kib_closes_with_1009(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.members(ada, "ada", "bob")
        await wire.members(bob, "ada", "bob")
        await bob.send("x" * (16 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await wire.recv_json(bob)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        left = {"type": "presence_diff", "joins": [], "leaves": ["bob"]}
        assert await wire.recv_json(ada) == left
        ack, _ = await wire.send_and_confirm(ada, "bob is gone")
        assert ack["seq"] == 1


async def test_a_flood_is_rate_limited_and_the_socket_stays_open(
    rate_limited_chat: "Chat", wire: "type[Wire]"
) -> None:
    chat = rate_limited_chat
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.recv_frames(ada, 2)
        await wire.recv_json(bob)
        for number in range(5):
            await ada.send(f"flood {number}")
        frames = await wire.recv_frames(ada, 3 * 2 + 2)  # 3 acks + 3 echoes, 2 errors
        acks = [f for f in frames if f["type"] == "ack"]
        errors = [f for f in frames if f["type"] == "error"]
        assert [a["message"] for a in acks] == ["flood 0", "flood 1", "flood 2"]
        assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"]
        assert [f["seq"] for f in frames if f["type"] == "message"] == [1, 2, 3]
        assert [f["seq"] for f in await wire.recv_frames(bob, 3)] == [1, 2, 3]
        # bob has his own bucket, and ada gets a token back within a second.
        bob_ack, _ = await wire.send_and_confirm(bob, "bob's turn")
        assert bob_ack["seq"] == 4
        await asyncio.sleep(1.1)
        ack, _ = await wire.send_and_confirm(ada, "after the pause")
        assert ack["seq"] == 5
    assert [row["seq"] for row in chat.history(channel)] == [5, 4, 3, 2, 1]


async def test_resumes_pay_the_rate_limit_too(
    rate_limited_chat: "Chat", wire: "type[Wire]"
) -> None:
    chat = rate_limited_chat
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        await wire.recv_json(ada)
        for _ in range(4):
            await ada.send(json.dumps({"type": "resume", "after_seq": 0}))
        frames = await wire.recv_frames(ada, 4)
    assert [f["type"] for f in frames] == ["resumed", "resumed", "resumed", "error"]
    assert frames[-1]["code"] == "rate_limited"


# -- hibernation -------------------------------------------------------------------------------


async def test_hibernated_actor_wakes_for_a_message_and_keeps_its_members(
    sleepy_chat: "Chat",
    wire: "type[Wire]",
) -> None:
    chat = sleepy_chat
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada, chat.connect(channel, "bob") as bob:
        await wire.members(ada, "ada", "bob")
        await wire.members(bob, "ada", "bob")
        first, _ = await wire.send_and_confirm(ada, "before sleep")
        assert (await wire.recv_json(bob))["seq"] == 1
        await chat.wait_hibernated()
        assert [(info.live, info.websockets) for info in chat.actors()] == [(False, 2)]
        # The sockets stayed open; a message wakes the actor, seq continues from storage.
        ack, _ = await wire.send_and_confirm(bob, "wake up")
        assert ack["seq"] == 2
        assert stored(await wire.recv_json(ada)) == stored(ack)
        await chat.wait_hibernated()
        # Presence after waking comes from the attachments.
        async with chat.connect(channel, "cy") as cy:
            assert await wire.recv_json(cy) == {"type": "presence", "members": ["ada", "bob", "cy"]}
            joined = {"type": "presence_diff", "joins": ["cy"], "leaves": []}
            assert await wire.recv_json(ada) == joined
            assert await wire.recv_json(bob) == joined
            await chat.wait_hibernated()
        left = {"type": "presence_diff", "joins": [], "leaves": ["cy"]}
        assert await wire.recv_json(ada) == left
        assert await wire.recv_json(bob) == left
        await chat.wait_hibernated()
        await bob.close()
        left = {"type": "presence_diff", "joins": [], "leaves": ["bob"]}
        assert await wire.recv_json(ada) == left
    assert [row["message"] for row in chat.history(channel)] == ["wake up", "before sleep"]
    assert chat.history(channel)[-1] == stored(first)


async def test_ping_is_answered_without_waking_the_actor(
    sleepy_chat: "Chat", wire: "type[Wire]"
) -> None:
    chat = sleepy_chat
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        await wire.recv_json(ada)
        await ada.send("ping")
        async with asyncio.timeout(5):
            assert await ada.recv() == "pong"
        await chat.wait_hibernated()
        for _ in range(3):
            await ada.send("ping")
            async with asyncio.timeout(5):
                assert await ada.recv() == "pong"
            assert chat.live_count() == 0
        assert [info.live for info in chat.actors()] == [False]
        # "ping" is never a stored message.
        ack, _ = await wire.send_and_confirm(ada, "pings are not messages")
        assert ack["seq"] == 1
    assert [row["message"] for row in chat.history(channel)] == ["pings are not messages"]


# -- isolation -----------------------------------------------------------------------------------


async def test_channels_are_isolated_and_actors_follow_the_sharding(
    chat: "Chat", wire: "type[Wire]"
) -> None:
    first = chat.create_channel(name="first")
    sibling = chat.create_channel(first.server_id, name="sibling")
    elsewhere = chat.create_channel(name="elsewhere")  # on another server
    # The global actor may exist already (the server is shared by this module's tests).
    actors_before = len(chat.actors()) if chat.mode != "global" else 0
    channels = [first, sibling, elsewhere]
    async with (
        chat.connect(first, "ada") as a,
        chat.connect(sibling, "ada") as b,
        chat.connect(elsewhere, "ada") as c,
    ):
        sockets = [a, b, c]
        for ws in sockets:
            # ada is alone in each channel, though she is in all three.
            assert await wire.recv_json(ws) == {"type": "presence", "members": ["ada"]}
        for round_ in range(1, 3):
            for index, ws in enumerate(sockets):
                ack, _ = await wire.send_and_confirm(ws, f"channel {index} round {round_}")
                assert ack["seq"] == round_
        await a.send(json.dumps({"type": "typing"}))
        await asyncio.sleep(0.2)
        for ws in sockets:  # nothing else arrived anywhere (typing has no one else to go to)
            await ws.send(json.dumps({"type": "resume", "after_seq": 2}))
            assert await wire.recv_json(ws) == {
                "type": "resumed",
                "after_seq": 2,
                "last_seq": 2,
                "more": False,
            }
    for index, channel in enumerate(channels):
        rows = chat.history(channel)
        assert [(r["seq"], r["message"]) for r in rows] == [
            (2, f"channel {index} round 2"),
            (1, f"channel {index} round 1"),
        ]
    # The server is shared by this module's tests: count the actors this test added.
    expected_actors = {"channel": 3, "server": 2, "global": 1}[chat.mode]
    assert len(chat.actors()) - actors_before == expected_actors


async def test_members_of_other_channels_hear_nothing(chat: "Chat", wire: "type[Wire]") -> None:
    first = chat.create_channel(name="first")
    sibling = chat.create_channel(first.server_id, name="sibling")
    elsewhere = chat.create_channel(name="elsewhere")
    async with (
        chat.connect(first, "ada") as ada,
        chat.connect(sibling, "bob") as bob,
        chat.connect(elsewhere, "cy") as cy,
    ):
        for ws, name in [(ada, "ada"), (bob, "bob"), (cy, "cy")]:
            assert await wire.recv_json(ws) == {"type": "presence", "members": [name]}
        await wire.send_and_confirm(ada, "for first only")
        await ada.send(json.dumps({"type": "typing"}))
        async with chat.connect(first, "dee") as dee:
            assert await wire.recv_json(dee) == {"type": "presence", "members": ["ada", "dee"]}
            await wire.members(ada, "ada", "dee")
        await wire.members(ada, "ada")
        # bob and cy got no message, typing or presence: their next frames are their own.
        for ws in (bob, cy):
            ack, _ = await wire.send_and_confirm(ws, "mine")
            assert ack["seq"] == 1
    assert len(chat.history(first)) == 1


async def test_a_long_absence_is_replayed_in_slices(chat: "Chat", wire: "type[Wire]") -> None:
    """More than REPLAY_MESSAGES missed: a first slice with more=true, then the rest on asking
    again, so one resume can never overflow a healthy client's send queue."""
    channel = chat.create_channel()
    frames = await fill(chat, wire, channel, REPLAY_MESSAGES + 5)
    async with chat.connect(channel, "bob", after_seq=0) as bob:
        assert (await wire.recv_json(bob))["type"] == "presence"
        first = await wire.recv_frames(bob, REPLAY_MESSAGES)
        assert [stored(f) for f in first] == frames[:REPLAY_MESSAGES]
        assert await wire.recv_json(bob) == {
            "type": "resumed",
            "after_seq": 0,
            "last_seq": REPLAY_MESSAGES,
            "more": True,
        }
        await bob.send(json.dumps({"type": "resume", "after_seq": REPLAY_MESSAGES}))
        rest = await wire.recv_frames(bob, 5)
        assert [stored(f) for f in rest] == frames[REPLAY_MESSAGES:]
        assert (await wire.recv_json(bob))["more"] is False
