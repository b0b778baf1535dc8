"""Probes of the channel protocol over real WebSockets, for chapter 05's and 06's self-checks.

Each probe creates its own server and channels through the HTTP API, so probes never see each
other's messages, and records what it saw in a Report. Every wait is short (RECEIVE_TIMEOUT):
a missing frame is a failed expectation after a few seconds, not a minute of silence.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from accord_app.actors import Actor, ActorContext
from accord_app.lab.checks import Report
from accord_app.lab.server import BackgroundServer

RECEIVE_TIMEOUT = 3.0
# How long to wait for frames that should not come (a second ack, a duplicate).
QUIET = 0.2
A = TypeVar("A", bound=type[Actor])


def unordered(actor_class: A) -> A:
    """`actor_class`, whose SELECTs without ORDER BY return their rows backwards.

    SQLite promises no order without ORDER BY; in practice it often follows the primary key,
    which hides a missing ORDER BY. This pragma makes it show."""

    def __init__(self: Actor, ctx: ActorContext) -> None:
        ctx.storage.connection.execute("PRAGMA reverse_unordered_selects = ON")
        actor_class.__init__(self, ctx)

    return type(actor_class.__name__, (actor_class,), {"__init__": __init__})  # type: ignore[return-value]


def open_socket(server: BackgroundServer, path: str, query: str) -> Any:
    """A WebSocket to `path`/connect that gives up opening after RECEIVE_TIMEOUT, and closing
    after a second (a member the actor never took in gets no answer to its close)."""
    url = f"{server.ws_url}{path}/connect?{query}"
    return connect(url, open_timeout=RECEIVE_TIMEOUT, close_timeout=1.0)


async def new_channel(server: BackgroundServer, server_id: str | None = None) -> str:
    """Create a channel (in a new server unless one is given); return its base path."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        if server_id is None:
            name = f"Probe {uuid.uuid4().hex[:6]}"
            server_id = (await client.post("/api/servers", json={"name": name})).json()["id"]
        channel = await client.post(f"/api/servers/{server_id}/channels", json={"name": "probe"})
        return f"/api/servers/{server_id}/channels/{channel.json()['id']}"


def sibling_of(path: str) -> str:
    """The server's part of a channel's path, to create another channel beside it."""
    return path.split("/")[3]


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


async def collect(
    ws: ClientConnection, wanted: dict[str, int], me: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Read JSON frames until `wanted[type]` frames of each type arrived (others are kept too).

    The finished app gathers joins and leaves into presence_diff frames; they are counted as
    the "joined" and "left" frames of the chapter's actor, one per name, leaving out `me` (the
    reader's own join, which the diff may repeat)."""
    seen: dict[str, list[dict[str, Any]]] = {kind: [] for kind in wanted}
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while any(len(seen[kind]) < count for kind, count in wanted.items()):
            try:
                frame = json.loads(await ws.recv())
            except ValueError:
                continue
            if isinstance(frame, dict):
                for event in _one_per_name(frame, me):
                    seen.setdefault(str(event.get("type")), []).append(event)
    return seen


def _one_per_name(frame: dict[str, Any], me: str | None) -> list[dict[str, Any]]:
    if frame.get("type") != "presence_diff":
        return [frame]
    return [
        {"type": kind, "username": name}
        for kind, key in (("joined", "joins"), ("left", "leaves"))
        for name in frame.get(key) or []
        if name != me
    ]


async def collect_until_quiet(
    ws: ClientConnection, wanted: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """Like collect(), but what arrived before the timeout instead of TimeoutError; frames
    beyond those wanted are caught too if they come within a moment."""
    seen: dict[str, list[dict[str, Any]]] = {kind: [] for kind in wanted}
    deadline = asyncio.get_running_loop().time() + RECEIVE_TIMEOUT
    while True:
        done = all(len(seen[kind]) >= count for kind, count in wanted.items())
        left = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(QUIET if done else max(left, 0)):
                raw = await ws.recv()
        except TimeoutError:
            return seen
        try:
            frame = json.loads(raw)
        except ValueError:
            continue
        if isinstance(frame, dict):
            seen.setdefault(str(frame.get("type")), []).append(frame)


def answered(report: Report, response: httpx.Response, what: str, exercise: str) -> bool:
    """Expect a 200; a 5xx means the attendee's code raised on the server."""
    hint = f"it answered {response.status_code}"
    if response.status_code >= 500:
        hint += (
            f": your code raised on the server (the error is printed under this cell)."
            f" Is exercise {exercise} solved?"
        )
    return report.expect(response.status_code == 200, what, hint)


async def probe_broadcast(
    server: BackgroundServer,
    report: Report,
    restart: Callable[[], BackgroundServer] | None = None,
) -> None:
    """Two members; each sends; both get every message in seq order; the sender gets an ack.

    With `restart`, the app is started again on the same data and a third message must get
    seq 3: only what was stored survives."""
    path = await new_channel(server)
    async with open_socket(server, path, "username=ada") as ada:
        async with open_socket(server, path, "username=bob") as bob:
            await ada.send("hello bob")
            await bob.send("hi ada")
            seen_by_ada = await collect_until_quiet(ada, {"ack": 1, "message": 2})
            seen_by_bob = await collect_until_quiet(bob, {"ack": 1, "message": 2})
        for name, seen in [("ada", seen_by_ada), ("bob", seen_by_bob)]:
            seqs = [frame.get("seq") for frame in seen["message"]]
            if len(seqs) == 2 and seqs != [1, 2]:
                hint = (
                    f"a new channel's first message gets seq 1, not {seqs[0]}: take the highest"
                    " seq of this channel (WHERE channel_id = ?) plus one"
                )
            else:
                hint = (
                    "broadcast {'type': 'message', ...} to every socket of"
                    " self.ctx.get_websockets(channel_id), the sender's too"
                )
            report.equal(
                seqs,
                [1, 2],
                f"{name} receives both messages in seq order, the sender included",
                hint=hint,
            )
        if not report.expect(
            len(seen_by_ada["ack"]) == 1 and len(seen_by_bob["ack"]) == 1,
            "each sender gets one ack",
            hint="ws.send(encode({'type': 'ack', **message})) to the sender alone",
        ):
            return
        ack = seen_by_ada["ack"][0]
        report.equal(
            {key: ack.get(key) for key in ("username", "message")},
            {"username": "ada", "message": "hello bob"},
            "ada's ack carries her username and text",
        )
        timestamp = ack.get("timestamp")
        report.expect(
            isinstance(timestamp, int) and abs(timestamp - time.time() * 1000) < 600_000,
            "the ack's timestamp is now, in milliseconds since 1970",
            hint=f"got {timestamp!r}: int(time.time() * 1000)",
        )
        report.equal(
            {ack.get("seq"), seen_by_bob["ack"][0].get("seq")},
            {1, 2},
            "the two messages get seq 1 and 2",
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
    other = await new_channel(server, server_id=sibling_of(path))
    async with open_socket(server, other, "username=ada") as ada:
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
    if restart is not None:
        await _probe_after_restart(restart(), path, report)


async def _probe_after_restart(server: BackgroundServer, path: str, report: Report) -> None:
    async with open_socket(server, path, "username=ada") as ada:
        await ada.send("after a restart")
        try:
            seq = (await collect(ada, {"ack": 1}))["ack"][0].get("seq")
        except TimeoutError:
            seq = "no ack"
    report.equal(
        seq,
        3,
        "after a restart, the channel's next message gets seq 3",
        hint="a restarted app knows only what was stored: INSERT each message, and take the"
        " next seq from the table, not from an attribute",
    )


async def post_messages(server: BackgroundServer, path: str, count: int, report: Report) -> bool:
    """ada posts "message 1".."message <count>" and waits for their acks."""
    async with open_socket(server, path, "username=ada") as ada:
        for number in range(1, count + 1):
            await ada.send(f"message {number}")
        try:
            await receive_frames(ada, count, {"ack"})
        except TimeoutError:
            report.fail(f"{count} messages are acked", hint="does exercise 5.1 pass?")
            return False
    return True


async def probe_history(server: BackgroundServer, report: Report) -> None:
    """Messages sent over a socket come back from GET .../messages, newest first, and only
    the channel's own (a sibling channel of the same server has messages too)."""
    path = await new_channel(server)
    sibling = await new_channel(server, server_id=sibling_of(path))
    if not await post_messages(server, sibling, 3, report):
        return
    if not await post_messages(server, path, 5, report):
        return
    async with httpx.AsyncClient(base_url=server.url) as client:
        latest = await client.get(f"{path}/messages")
        if not answered(report, latest, "GET .../messages answers 200", "5.2"):
            return
        page = await client.get(f"{path}/messages", params={"limit": 2, "before": 4})
    report.equal(
        [(m.get("seq"), m.get("message")) for m in latest.json()],
        [(seq, f"message {seq}") for seq in [5, 4, 3, 2, 1]],
        "the history is the channel's 5 messages, newest first",
        hint="WHERE channel_id = ? (a sibling channel's messages live in the same table)"
        " ORDER BY seq DESC",
    )
    if not answered(report, page, "GET .../messages?limit=2&before=4 answers 200", "5.2"):
        return
    report.equal(
        [m.get("message") for m in page.json()],
        ["message 3", "message 2"],
        "limit=2&before=4 gives the two messages before seq 4",
        hint="WHERE seq < before ORDER BY seq DESC LIMIT limit",
    )
    report.equal(
        sorted(latest.json()[0]) if latest.json() else [],
        ["id", "message", "seq", "timestamp", "username"],
        "each message has id, seq, timestamp, username, message",
    )


async def read_replay(ws: ClientConnection) -> tuple[list[int], dict[str, Any] | None]:
    """The seqs of the messages replayed, up to the 'resumed' frame (None if it never came)."""
    seqs: list[int] = []
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while True:
                try:
                    frame = json.loads(await ws.recv())
                except ValueError:
                    continue
                if isinstance(frame, dict) and frame.get("type") == "message":
                    seqs.append(frame.get("seq"))  # type: ignore[arg-type]
                elif isinstance(frame, dict) and frame.get("type") == "resumed":
                    return seqs, frame
    except TimeoutError:
        return seqs, None


def _replay_hint(seqs: list[int], expected: list[int]) -> str:
    if not set(seqs) <= set(expected) or not set(expected) <= set(seqs):
        return "SELECT this channel's messages (channel_id = ?) with seq > after_seq"
    if len(seqs) > len(set(seqs)):
        return "some messages came more than once: send each row once"
    return "ORDER BY seq (without it, rows come in any order; here, backwards)"


async def probe_resume(server: BackgroundServer, report: Report) -> None:
    """A member who left at seq 2 comes back with after_seq=2 and gets 3.. in order, once,
    then a 'resumed' frame; one who missed nothing gets the 'resumed' frame alone."""
    path = await new_channel(server)
    sibling = await new_channel(server, server_id=sibling_of(path))
    if not await post_messages(server, sibling, 8, report):
        return
    if not await post_messages(server, path, 6, report):
        return
    cases = [("query", 2), ("frame", 2), ("query", 6)]
    for how, after_seq in cases:
        query = f"username=bob&after_seq={after_seq}" if how == "query" else "username=bob"
        async with open_socket(server, path, query) as bob:
            if how == "frame":
                await bob.send(json.dumps({"type": "resume", "after_seq": after_seq}))
            seqs, resumed = await read_replay(bob)
        expected = list(range(after_seq + 1, 7))
        where = "on connect" if how == "query" else "as a first frame"
        report.equal(
            seqs,
            expected,
            f"after_seq={after_seq} ({where}) replays {expected or 'nothing'}, in order, once each",
            hint=_replay_hint(seqs, expected),
        )
        report.equal(
            None if resumed is None else {k: resumed.get(k) for k in ("after_seq", "last_seq")},
            {"after_seq": after_seq, "last_seq": 6},
            "then a 'resumed' frame with after_seq and the channel's last_seq",
            hint="after the replay, send {'type': 'resumed', 'after_seq': after_seq,"
            " 'last_seq': <this channel's max(seq)>}",
        )


async def probe_presence(
    server: BackgroundServer, report: Report, lists_for_everyone: bool = True
) -> None:
    """Members see who is online: the list on join, then joined and left, once per person
    however many tabs they have open, and only the members of their own channel (carol sits
    in a sibling channel all along).

    Chapter 06 sends the new list to every member at each change. The finished app sends
    the list to the newcomer only, and to the others who joined and left, gathered into one
    presence_diff per interval (chat/presence.py): N joins then cost each member a few frames
    instead of N lists of N names. lists_for_everyone=False probes that."""
    path = await new_channel(server)
    sibling = await new_channel(server, server_id=sibling_of(path))
    try:
        async with open_socket(server, sibling, "username=carol"):
            await _probe_presence(server, path, report, lists_for_everyone)
    except TimeoutError:
        report.fail(
            "presence, joined and left frames arrive",
            hint="join: broadcast 'joined' and 'presence'; websocket_close: 'left' and 'presence'",
        )


async def _probe_presence(
    server: BackgroundServer, path: str, report: Report, lists_for_everyone: bool
) -> None:
    async with open_socket(server, path, "username=ada") as ada:
        first = await collect(ada, {"presence": 1})
        report.equal(
            first["presence"][-1].get("members"),
            ["ada"],
            "ada alone: ['ada']",
            hint="members(channel_id): the sockets of this channel only (carol is in another)",
        )
        async with open_socket(server, path, "username=bob") as bob:
            on_join = await collect(bob, {"presence": 1})
            report.equal(
                on_join["presence"][-1].get("members"),
                ["ada", "bob"],
                "bob gets the list on join: ['ada', 'bob']",
                hint="sorted, one entry per person",
            )
            seen = await collect(ada, {"joined": 1}, me="ada")
            report.equal(seen["joined"][0].get("username"), "bob", "ada gets joined: bob")
            if lists_for_everyone:
                await _expect_members(
                    ada,
                    seen,
                    ["ada", "bob"],
                    report,
                    "ada gets the new list too",
                    hint="broadcast 'presence' to every member, not only to the newcomer",
                )
            async with open_socket(server, path, "username=ada") as second_tab:
                tab = await collect(second_tab, {"presence": 1})
                report.equal(
                    tab["presence"][-1].get("members"),
                    ["ada", "bob"],
                    "with two tabs open, ada is listed once",
                    hint="members(): a set of usernames, sorted",
                )
                await second_tab.send("from my second tab")
                between = await collect(bob, {"message": 1}, me="bob")
            report.expect(
                not between.get("joined"),
                "ada's second tab announces no second 'joined'",
                hint="send 'joined' only when it is the user's only socket in the channel",
            )
            await ada.send("my first tab is still here")
            between = await collect(bob, {"message": 1}, me="bob")
            report.expect(
                not between.get("left"),
                "closing one of ada's two tabs announces no 'left'",
                hint="send 'left' only when the user has no socket left in the channel",
            )
        gone = await collect(ada, {"left": 1}, me="ada")
        report.equal(gone["left"][0].get("username"), "bob", "ada gets left: bob")
        if lists_for_everyone:
            await _expect_members(
                ada,
                gone,
                ["ada"],
                report,
                "then the list without bob: ['ada']",
                hint="after 'left', broadcast 'presence' as well",
            )


async def _expect_members(
    ws: ClientConnection,
    seen: dict[str, list[dict[str, Any]]],
    members: list[str],
    report: Report,
    what: str,
    hint: str,
) -> None:
    """A 'presence' frame listing `members`, among those `seen` already or the next ones."""
    lists = [frame.get("members") for frame in seen.get("presence", [])]
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while members not in lists:
                lists += [
                    f.get("members") for f in (await collect(ws, {"presence": 1}))["presence"]
                ]
    except TimeoutError:
        got = f"the last list was {lists[-1]!r}" if lists else "no 'presence' frame came"
        report.fail(what, hint=f"{got}: {hint}")
        return
    report.expect(True, what)
