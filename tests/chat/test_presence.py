"""Presence is gathered: joins and leaves reach the members as one presence_diff frame per
PRESENCE_INTERVAL, not one frame per join to every member (N joins: N² frames)."""

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pytest

from accord_app.chat import channel as channel_module
from accord_app.chat.presence import PRESENCE_INTERVAL, PendingPresence

if TYPE_CHECKING:
    from conftest import Chat, Wire

pytestmark = pytest.mark.anyio

JOINS = 300  # enough to tell N frames per member from N / PRESENCE_INTERVAL-ish
WATCHERS = ("ada", "bob", "cy")
SLACK = 1.0  # seconds a diff may come after its interval on a busy machine


# -- the bookkeeping, alone -------------------------------------------------------------------


def test_a_name_that_ends_where_it_started_is_left_out() -> None:
    pending: PendingPresence[str] = PendingPresence()
    pending.changed("bob", present=True)
    pending.changed("bob", present=False)  # joined and left
    pending.changed("cy", present=False)
    pending.changed("cy", present=True)  # left and came back
    pending.changed("dee", present=True)
    assert pending.take({"cy", "dee"}) == (
        {"type": "presence_diff", "joins": ["dee"], "leaves": []},
        set(),
    )
    assert pending.take({"cy", "dee"}) is None  # taken: nothing pending


def test_a_member_listed_in_between_hears_how_it_ended() -> None:
    pending: PendingPresence[str] = PendingPresence()
    pending.changed("bob", present=True)
    pending.listed("eve's socket")  # eve's list shows bob
    pending.changed("bob", present=False)
    frame, up_to_date = pending.take(set()) or ({}, set())
    assert frame == {"type": "presence_diff", "joins": [], "leaves": ["bob"]}
    assert up_to_date == set()  # eve needs it
    # Once eve has left, her list no longer matters: bob's visit cancels out again.
    pending.changed("bob", present=True)
    pending.listed("eve's socket")
    pending.changed("bob", present=False)
    pending.unlisted("eve's socket")
    assert pending.take(set()) is None


def test_a_joiner_is_not_sent_what_its_list_already_shows() -> None:
    pending: PendingPresence[str] = PendingPresence()
    pending.changed("bob", present=True)
    pending.listed("bob's socket")
    pending.changed("cy", present=True)
    pending.listed("cy's socket")
    frame, up_to_date = pending.take({"bob", "cy"}) or ({}, set())
    assert frame == {"type": "presence_diff", "joins": ["bob", "cy"], "leaves": []}
    assert up_to_date == {"cy's socket"}  # bob's list came before cy's join: he needs it


# -- over real sockets ------------------------------------------------------------------------


async def test_many_joins_cost_each_member_a_few_frames_not_one_per_join(
    channel_chat: "Chat", wire: "type[Wire]"
) -> None:
    chat = channel_chat
    channel = chat.create_channel()
    async with contextlib.AsyncExitStack() as stack:
        watchers = [await stack.enter_async_context(chat.connect(channel, n)) for n in WATCHERS]
        for ws in watchers:
            await wire.members(ws, *WATCHERS)
        names = [f"m{n}" for n in range(JOINS)]
        received = {ws: 0 for ws in watchers}

        started = time.monotonic()
        for batch in range(0, JOINS, 50):  # 50 at a time: joins come faster than intervals
            await asyncio.gather(
                *(
                    stack.enter_async_context(chat.connect(channel, name))
                    for name in names[batch : batch + 50]
                )
            )
        joined_in = time.monotonic() - started
        # Count what each watcher is sent until it sees every joiner.
        counting = [asyncio.create_task(count_frames(wire, ws, received, names)) for ws in watchers]
        await asyncio.gather(*counting)
        intervals = (time.monotonic() - started) / PRESENCE_INTERVAL
        for frames in received.values():
            # One frame per join would be JOINS frames; one per interval is far fewer.
            assert frames <= JOINS / 4, (frames, joined_in)
            assert frames <= intervals + 2, (frames, intervals)
        # The member list stays right: a late joiner gets everyone.
        async with chat.connect(channel, "zed") as zed:
            listed = await wire.recv_json(zed)
            assert listed == {"type": "presence", "members": sorted([*WATCHERS, *names, "zed"])}


async def count_frames(
    wire: "type[Wire]", ws: object, received: dict[object, int], names: list[str]
) -> None:
    """Read `ws`'s presence_diff frames until it has seen every name of `names` join."""
    unseen = set(names)
    while unseen:
        frame = await wire.recv_json(ws)  # type: ignore[arg-type]
        assert frame["type"] == "presence_diff" and frame["leaves"] == [], frame
        unseen.difference_update(frame["joins"])
        received[ws] += 1


async def test_a_join_reaches_a_quiet_channel_within_the_interval(
    channel_chat: "Chat", wire: "type[Wire]"
) -> None:
    chat = channel_chat
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        await wire.members(ada, "ada")
        await asyncio.sleep(2 * PRESENCE_INTERVAL)  # nothing pending any more

        async def next_diff() -> dict[str, object]:
            started = time.monotonic()
            diff = await wire.recv_json(ada, timeout=PRESENCE_INTERVAL + SLACK)
            assert time.monotonic() - started < PRESENCE_INTERVAL + SLACK
            return diff

        async with chat.connect(channel, "bob"):
            assert await next_diff() == {"type": "presence_diff", "joins": ["bob"], "leaves": []}
        assert await next_diff() == {"type": "presence_diff", "joins": [], "leaves": ["bob"]}


async def test_a_join_and_leave_within_one_interval_is_not_announced(
    channel_chat: "Chat", wire: "type[Wire]", monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = channel_chat
    # A long interval (the server runs in this process), so bob's visit surely fits in one.
    monkeypatch.setattr(channel_module, "PRESENCE_INTERVAL", 2.0)
    channel = chat.create_channel()
    async with chat.connect(channel, "ada") as ada:
        await wire.members(ada, "ada")
        async with chat.connect(channel, "bob") as bob:
            await wire.members(bob, "ada", "bob")
        async with chat.connect(channel, "cy") as cy:
            await wire.members(cy, "ada", "cy")
            # ada hears of cy, and never of bob.
            diff = await wire.recv_json(ada, timeout=2.0 + SLACK)
            assert diff == {"type": "presence_diff", "joins": ["ada", "cy"], "leaves": []}
            ack, _ = await wire.send_and_confirm(ada, "who was here?")
            assert ack["seq"] == 1
