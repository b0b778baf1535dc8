"""Probes of the channel protocol over real WebSockets, for chapter 05's self-checks and tests.

Each probe creates its own server and channel through the HTTP API, so probes never see each
other's messages, and records what it saw in a Report.
"""

import asyncio
import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from accord_app.lab.checks import Report
from accord_app.lab.server import BackgroundServer

RECEIVE_TIMEOUT = 3.0


async def new_channel(server: BackgroundServer, server_id: str | None = None) -> str:
    """Create a channel (in a new server unless one is given); return its base path."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        if server_id is None:
            name = f"Probe {uuid.uuid4().hex[:6]}"
            server_id = (await client.post("/api/servers", json={"name": name})).json()["id"]
        channel = await client.post(f"/api/servers/{server_id}/channels", json={"name": "probe"})
        return f"/api/servers/{server_id}/channels/{channel.json()['id']}"


async def receive_frames(ws: ClientConnection, count: int, kinds: set[str]) -> list[dict[str, Any]]:
    """The next `count` JSON frames whose type is in `kinds` (others are skipped)."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while len(frames) < count:
            raw = await ws.recv()
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict) and frame.get("type") in kinds:
                frames.append(frame)
    return frames


def _fields(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: frame.get(key) for key in ("id", "seq", "username", "message")}


async def collect(ws: ClientConnection, wanted: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Read JSON frames until `wanted[type]` frames of each type arrived (others are kept too)."""
    seen: dict[str, list[dict[str, Any]]] = {kind: [] for kind in wanted}
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while any(len(seen[kind]) < count for kind, count in wanted.items()):
            try:
                frame = json.loads(await ws.recv())
            except ValueError:
                continue
            if isinstance(frame, dict):
                seen.setdefault(str(frame.get("type")), []).append(frame)
    return seen


async def probe_broadcast(server: BackgroundServer, report: Report) -> None:
    """Two members; each sends; both get every message in seq order; the sender gets an ack."""
    path = await new_channel(server)
    url = f"{server.ws_url}{path}/connect"
    async with connect(f"{url}?username=ada") as ada, connect(f"{url}?username=bob") as bob:
        await ada.send("hello bob")
        await bob.send("hi ada")
        try:
            seen_by_ada = await collect(ada, {"ack": 1, "message": 2})
            seen_by_bob = await collect(bob, {"ack": 1, "message": 2})
        except TimeoutError:
            report.fail(
                "each sender gets an ack, and every member every message",
                hint="ws.send(ack) to the sender, then send {'type': 'message', ...} to each"
                " socket of self.ctx.get_websockets(channel_id)",
            )
            return
        ack = seen_by_ada["ack"][0]
        report.equal(
            {key: ack.get(key) for key in ("username", "message")},
            {"username": "ada", "message": "hello bob"},
            "ada's ack carries her username and text",
        )
        report.expect(isinstance(ack.get("timestamp"), int), "the ack has a timestamp in ms")
        report.equal(
            {ack.get("seq"), seen_by_bob["ack"][0].get("seq")},
            {1, 2},
            "the two messages get seq 1 and 2",
        )
        for name, seen in [("ada", seen_by_ada), ("bob", seen_by_bob)]:
            report.equal(
                [frame.get("seq") for frame in seen["message"]],
                [1, 2],
                f"{name} receives both messages in seq order, the sender included",
            )
        mine = [frame for frame in seen_by_ada["message"] if frame.get("seq") == ack.get("seq")]
        report.equal(
            _fields(mine[0]) if mine else None, _fields(ack), "a message and its ack agree"
        )
        await ada.send("   ")
        try:
            refused = await collect(ada, {"error": 1})
            report.equal(
                refused["error"][0].get("code"),
                "empty_message",
                "an empty message gets an error frame",
                hint="on ProtocolError, ws.send(encode(error.frame()))",
            )
        except TimeoutError:
            report.fail("an empty message gets an error frame", hint="catch ProtocolError")
    other = await new_channel(server, server_id=path.split("/")[3])
    async with connect(f"{server.ws_url}{other}/connect?username=ada") as ada:
        await ada.send("first in another channel")
        try:
            first = await collect(ada, {"ack": 1})
            report.equal(
                first["ack"][0].get("seq"),
                1,
                "another channel of the same server counts from 1",
                hint="one actor may host several channels: WHERE channel_id = ? in your max(seq)",
            )
        except TimeoutError:
            report.fail("a second channel works too", hint="see the first checks above")


async def post_messages(server: BackgroundServer, path: str, count: int, report: Report) -> bool:
    """ada posts "message 1".."message <count>" and waits for their acks."""
    async with connect(f"{server.ws_url}{path}/connect?username=ada") as ada:
        for number in range(1, count + 1):
            await ada.send(f"message {number}")
        try:
            await receive_frames(ada, count, {"ack"})
        except TimeoutError:
            report.fail(f"{count} messages are acked", hint="does exercise 5.1 pass?")
            return False
    return True


async def probe_history(server: BackgroundServer, report: Report) -> None:
    """Messages sent over a socket come back from GET .../messages, newest first."""
    path = await new_channel(server)
    if not await post_messages(server, path, 5, report):
        return
    async with httpx.AsyncClient(base_url=server.url) as client:
        latest = await client.get(f"{path}/messages")
        page = await client.get(f"{path}/messages", params={"limit": 2, "before": 4})
    report.equal(latest.status_code, 200, "GET .../messages answers 200")
    if latest.status_code != 200:
        return
    report.equal(
        [m.get("seq") for m in latest.json()], [5, 4, 3, 2, 1], "the history is newest first"
    )
    report.equal(
        [m.get("message") for m in page.json()],
        ["message 3", "message 2"],
        "limit=2&before=4 gives the two messages before seq 4",
        hint="WHERE seq < before ORDER BY seq DESC LIMIT limit",
    )
    report.equal(
        sorted(latest.json()[0]),
        ["id", "message", "seq", "timestamp", "username"],
        "each message has id, seq, timestamp, username, message",
    )


async def probe_resume(server: BackgroundServer, report: Report) -> None:
    """A member who left at seq 2 comes back with after_seq=2 and gets 3.. in order, once."""
    path = await new_channel(server)
    url = f"{server.ws_url}{path}/connect"
    if not await post_messages(server, path, 6, report):
        return
    for how in ["query", "frame"]:
        query = "?username=bob&after_seq=2" if how == "query" else "?username=bob"
        async with connect(f"{url}{query}") as bob:
            if how == "frame":
                await bob.send(json.dumps({"type": "resume", "after_seq": 2}))
            try:
                replayed = await receive_frames(bob, 4, {"message"})
                marker = await receive_frames(bob, 1, {"resumed"})
            except TimeoutError:
                report.fail(
                    f"resuming ({how}) replays what was missed, then says 'resumed'",
                    hint="send every message with seq > after_seq, then a 'resumed' frame",
                )
                continue
        report.equal(
            [frame.get("seq") for frame in replayed],
            [3, 4, 5, 6],
            f"after_seq=2 ({'on connect' if how == 'query' else 'as a first frame'}) replays"
            " 3..6 in order",
        )
        report.equal(
            {key: marker[0].get(key) for key in ("after_seq", "last_seq")},
            {"after_seq": 2, "last_seq": 6},
            "then a 'resumed' frame with after_seq and last_seq",
        )


async def probe_presence(server: BackgroundServer, report: Report) -> None:
    """Members see who is online: the list on join, then joined and left, once per person
    however many tabs they have open."""
    path = await new_channel(server)
    url = f"{server.ws_url}{path}/connect"
    try:
        async with connect(f"{url}?username=ada") as ada:
            first = await collect(ada, {"presence": 1})
            report.equal(first["presence"][-1].get("members"), ["ada"], "ada alone: ['ada']")
            async with connect(f"{url}?username=bob") as bob:
                on_join = await collect(bob, {"presence": 1})
                report.equal(
                    on_join["presence"][-1].get("members"),
                    ["ada", "bob"],
                    "bob gets the list on join: ['ada', 'bob']",
                    hint="sorted, one entry per person",
                )
                seen = await collect(ada, {"joined": 1})
                report.equal(seen["joined"][0].get("username"), "bob", "ada gets joined: bob")
                async with connect(f"{url}?username=ada") as second_tab:
                    tab = await collect(second_tab, {"presence": 1})
                    report.equal(
                        tab["presence"][-1].get("members"),
                        ["ada", "bob"],
                        "with two tabs open, ada is listed once",
                        hint="members(): a set of usernames, sorted",
                    )
                    await second_tab.send("from my second tab")
                    between = await collect(bob, {"message": 1})
                report.expect(
                    not between.get("joined"),
                    "ada's second tab announces no second 'joined'",
                    hint="send 'joined' only when it is the user's only socket in the channel",
                )
                await ada.send("my first tab is still here")
                between = await collect(bob, {"message": 1})
                report.expect(
                    not between.get("left"),
                    "closing one of ada's two tabs announces no 'left'",
                    hint="send 'left' only when the user has no socket left in the channel",
                )
            gone = await collect(ada, {"left": 1})
            report.equal(gone["left"][0].get("username"), "bob", "ada gets left: bob")
    except TimeoutError:
        report.fail(
            "presence, joined and left frames arrive",
            hint="join: broadcast 'joined' and 'presence'; websocket_close: 'left' and 'presence'",
        )
