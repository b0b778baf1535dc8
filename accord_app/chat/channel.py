"""The channel actor: stores a channel's messages and fans them out to its members.

Every channel's messages live in the actor that the sharding key names (one per channel by
default, see sharding.py), so one actor may host several channels: rows carry their
channel_id, and each socket is tagged with its channel. The protocol itself is in protocol.py.

The actor never waits for the disk by itself: it writes and sends, and the runtime's output
gate holds the ack and the broadcast until the write is durable. A member can therefore never
see a message that a crash could take back.
"""

import time
import uuid
from collections.abc import Container
from typing import Any, ClassVar

from accord_app.actors import Actor, ActorContext, HibernatableWebSocket, Transport
from accord_app.chat.cost import MessageCost
from accord_app.chat.failures import describe_failure
from accord_app.chat.frame_guard import FrameGuard
from accord_app.chat.presence import PRESENCE_INTERVAL, PendingPresence
from accord_app.chat.protocol import (
    ANNOUNCER,
    ClientFrame,
    ProtocolError,
    Resume,
    SendMessage,
    Typing,
    clean_message,
    encode,
    parse_frame,
)
from accord_app.chat.ratelimit import (
    MONOTONIC,
    ChatLimits,
    ClientLimits,
    Clock,
    ConnectionBudget,
    TokenBucket,
)
from accord_app.chat.roster import Roster
from accord_app.observe.metrics import Metrics

SCHEMA = [
    # WITHOUT ROWID: the rows are stored in (channel_id, seq) order, which is the order every
    # query reads them in.
    """CREATE TABLE messages (
        channel_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        username TEXT NOT NULL,
        message TEXT NOT NULL,
        nonce TEXT,
        PRIMARY KEY (channel_id, seq)
    ) WITHOUT ROWID""",
    # A retried send (same user, same nonce) finds its first copy here instead of a new seq.
    """CREATE UNIQUE INDEX messages_by_nonce ON messages (channel_id, username, nonce)
        WHERE nonce IS NOT NULL""",
]
COLUMNS = "id, seq, timestamp, username, message"
# The close code for a connection that keeps sending refused frames (RFC 6455: "policy
# violation").
CLOSE_POLICY = 1008
# One replay sends at most this many messages, or about this many characters, then says
# "more": the client asks again. A whole day of a busy channel in one go could fill the
# socket's bounded send queue (sockets.MAX_OUTBOX_BYTES) and get a healthy client cut off,
# and a slice is one turn, sent without a pause: slices of 1000 held the event loop for tens
# of ms on the ASGI path (benchmarks/abuse.py's replays), every other member's ack with them.
REPLAY_MESSAGES = 200
REPLAY_CHARS = 128 * 1024
# A retry that finds its message stored broadcasts it again only if it is among the channel's
# latest RECENT_MESSAGES: an older one's gap has shown, a member has since seen later seqs.
RECENT_MESSAGES = 100


class KeyReused(Exception):
    """An announcement's idempotency key already names another text in this channel."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"The Idempotency-Key {key!r} already names another announcement: use a new key for"
            " each new text, and the same one only to send the same text again."
        )


def budget_of(ws: HibernatableWebSocket) -> ConnectionBudget | None:
    """The budget the web layer gave the socket's connection (None in memory)."""
    budget = getattr(getattr(ws.transport, "frame_guard", None), "budget", None)
    return budget if isinstance(budget, ConnectionBudget) else None


def record(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in ("id", "seq", "timestamp", "username", "message")}


class ChannelActor(Actor):
    limits: ClassVar[ChatLimits] = ChatLimits()
    # What each client address may still do, shared by every actor of the process.
    clients: ClassVar[ClientLimits] = ClientLimits(ChatLimits())
    cost: ClassVar[MessageCost] = MessageCost()  # extra work per message; none by default
    # What the rate limits and typing notices read the time from; tests turn one by hand.
    clock: ClassVar[Clock] = MONOTONIC
    # Counts the refused frames (GET /metrics); None: not counted.
    metrics: ClassVar[Metrics | None] = None

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        sql = self.storage.sql
        if not sql.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'"):
            for statement in SCHEMA:
                sql.execute(statement)
        # Only caches and rate-limit state live in memory: all of it may be lost on hibernation.
        self.last_seq: dict[str, int] = {}
        self.last_timestamp: dict[str, int] = {}
        self.buckets: dict[HibernatableWebSocket, TokenBucket] = {}
        self.last_typing: dict[HibernatableWebSocket, float] = {}
        self.strikes: dict[HibernatableWebSocket, int] = {}  # refused frames in a row
        # (channel_id, username) per socket, parsed once from its attachment.
        self.members_of: dict[HibernatableWebSocket, tuple[str, str]] = {}
        # Who is in each channel (roster.py), built from the sockets when first needed.
        self.rosters: dict[str, Roster[HibernatableWebSocket]] = {}
        # Joins and leaves not yet announced, per channel, and whether the timer that announces
        # them is set (presence.py). The timer keeps the actor awake until it has run, so they
        # are never lost to hibernation.
        self.pending: dict[str, PendingPresence[HibernatableWebSocket]] = {}
        self.announcing = False
        # The recent seqs of each channel this instance has broadcast (see converge()).
        self.broadcast_seqs: dict[str, set[int]] = {}
        self.ctx.set_websocket_auto_response("ping", "pong")

    # -- RPC, called by the HTTP layer ---------------------------------------------------------

    async def restore(self, bookmark: str | None, at: float | None) -> dict[str, str]:
        """Point-in-time recovery: the channel goes back to `bookmark`, or to its state at time
        `at`, when it next starts, which is at once (its members are moved and reconnect).
        The bookmark restored and one that undoes it."""
        storage = self.storage
        target = bookmark if bookmark is not None else await storage.get_bookmark_for_time(at or 0)
        undo = await storage.on_next_session_restore_bookmark(target)
        return {"restored": target, "undo": undo}

    async def history(
        self, channel_id: str, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The latest `limit` messages (before `before`, if given), newest first."""
        rows = self.storage.sql.execute(
            f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            channel_id,
            before if before is not None else 2**62,
            limit,
        )
        return [record(row) for row in rows]

    async def activity(self, channel_ids: list[str]) -> list[dict[str, Any]]:
        """Each channel's message count and latest message (None before the first): what an
        unread-badge sidebar needs. One call answers for every channel this actor hosts."""
        found = []
        for channel_id in channel_ids:
            rows = self.storage.sql.execute(
                f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? ORDER BY seq DESC LIMIT 1",
                channel_id,
            )
            latest = record(rows[0]) if rows else None
            # seq counts 1, 2, 3, ... without gaps, so the latest seq is the count.
            count = latest["seq"] if latest else 0
            found.append({"channel_id": channel_id, "messages": count, "latest": latest})
        return found

    async def join(
        self, transport: Transport, channel_id: str, username: str, after_seq: int | None
    ) -> None:
        """Take over a connected socket: presence first, then any missed messages. A name
        that looks like a present member's is refused: an error frame, then the close."""
        roster = self.roster(channel_id)
        present = roster.look_alike(username)
        ws = self.ctx.accept_websocket(transport, tags=[channel_id])
        if present is not None:
            reason = f"The username {username!r} looks like {present!r}'s, who is here."
            self.send_error(ws, ProtocolError("username_looks_like", f"{reason} Choose another."))
            ws.close(CLOSE_POLICY, "username looks like a member's")  # no close event follows
            return
        ws.serialize_attachment({"channel_id": channel_id, "username": username})
        self.members_of[ws] = (channel_id, username)
        if roster.add(ws, username):
            self.presence_changed(channel_id).changed(username, present=True)
        ws.send(encode({"type": "presence", "members": roster.names()}))
        # The others hear of the joiner in the next presence_diff (presence.py), and so does
        # the joiner of whatever changes after this list.
        if channel_id in self.pending:
            self.pending[channel_id].listed(ws)
        if after_seq is not None:
            self.replay(ws, channel_id, after_seq)

    # -- socket events ---------------------------------------------------------------------------

    async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
        frame = self.admit(ws, data)
        if frame is None:
            return
        channel_id, username = self.who(ws)
        if isinstance(frame, SendMessage):
            await self.cost.spend()  # inside the turn: nothing else reaches this actor meanwhile
            self.post(ws, channel_id, username, frame)
        elif isinstance(frame, Resume):
            self.replay(ws, channel_id, frame.after_seq)
        elif isinstance(frame, Typing):
            self.relay_typing(ws, channel_id, username)

    def admit(self, ws: HibernatableWebSocket, data: str | bytes) -> ClientFrame | None:
        """The frame, once paid for; None if refused (with an error frame, and a strike).

        Every frame costs a token of its connection's bucket and of its client's, whatever it
        asks (a retry, a frame that is refused as malformed), so none of them makes the server
        work for free. The exception is the one typing notice per typing_interval that is
        relayed: the page sends no more than that, so an honest member never pays for typing,
        and a client that sends more pays for every extra. A connection that gets STRIKES
        refusals in a row is closed: it is not talking to us in good faith."""
        refusal: ProtocolError | None = None
        frame: ClientFrame | None = None
        if isinstance(data, bytes):
            refusal = ProtocolError("binary_frame", "Send text frames, not binary.")
        else:
            try:
                frame = parse_frame(data)
            except ProtocolError as error:
                refusal = error
        if isinstance(frame, Typing) and self.typing_due(ws):
            return frame
        nonce = frame.nonce if isinstance(frame, SendMessage) else getattr(refusal, "nonce", None)
        if not self.within_rate(ws, nonce):
            self.strike(ws)
            return None
        if refusal is not None:
            self.send_error(ws, refusal)
            self.strike(ws)
            return None
        return frame

    def strike(self, ws: HibernatableWebSocket) -> None:
        self.strikes[ws] = self.strikes.get(ws, 0) + 1
        if self.strikes[ws] >= self.limits.strikes:
            guard = getattr(ws.transport, "frame_guard", None)
            if isinstance(guard, FrameGuard):
                guard.flooded()  # its address waits in the penalty box before reconnecting
            ws.close(CLOSE_POLICY, f"{self.limits.strikes} refused frames in a row")
            self.forget(ws)  # no close event follows a close from this side

    async def websocket_close(self, ws: HibernatableWebSocket, code: int, reason: str) -> None:
        self.forget(ws)

    async def websocket_error(self, ws: HibernatableWebSocket, error: Exception) -> None:
        self.forget(ws)

    @classmethod
    def websocket_refused(
        cls, ws: HibernatableWebSocket, data: str | bytes, error: Exception
    ) -> None:
        """The message came to nothing (see Actor.websocket_refused): an error frame with the
        message's nonce, so the client knows which one to send again."""
        nonce = None
        if isinstance(data, str):
            try:
                frame = parse_frame(data)
            except ProtocolError as refused:
                nonce = refused.nonce
            else:
                nonce = frame.nonce if isinstance(frame, SendMessage) else None
        failure = describe_failure(error)
        cls.send_error(ws, ProtocolError(failure.code, failure.sentence, nonce))

    @classmethod
    def websocket_auto_response_paid(cls, ws: HibernatableWebSocket) -> bool:
        """The text "ping" is answered by the runtime, not by a turn: it pays its token
        through the connection's frame guard, which refuses it (no "pong") past the budget
        and closes the connection after `strikes` refusals in a row."""
        guard = getattr(ws.transport, "frame_guard", None)
        return not isinstance(guard, FrameGuard) or guard.pay()

    # -- the work ----------------------------------------------------------------------------------

    def post(
        self, ws: HibernatableWebSocket, channel_id: str, username: str, frame: SendMessage
    ) -> None:
        if frame.nonce is not None:
            stored = self.storage.sql.execute(
                f"SELECT {COLUMNS} FROM messages"
                " WHERE channel_id = ? AND username = ? AND nonce = ?",
                channel_id,
                username,
                frame.nonce,
            )
            if stored and stored[0]["message"] != frame.text:
                # Not a retry: a client reusing nonces would lose this message silently.
                reused = "This nonce already names another message: use a new nonce each time."
                self.send_error(ws, ProtocolError("nonce_reused", reused, frame.nonce))
                return
            if stored:  # a retry: the members get it (again, if need be), then the first ack
                self.converge(channel_id, record(stored[0]))
                ws.send(encode({"type": "ack", **record(stored[0]), "nonce": frame.nonce}))
                return
        self.strikes.pop(ws, None)  # a message stored: the connection is in good standing
        message = self.store(channel_id, username, frame.text, frame.nonce)
        ack = {"type": "ack", **message}
        if frame.nonce is not None:
            ack["nonce"] = frame.nonce
        ws.send(encode(ack))
        self.broadcast_message(channel_id, message)

    def store(self, channel_id: str, username: str, text: str, nonce: str | None) -> dict[str, Any]:
        """Number a message, INSERT it, and return it as the protocol sends it."""
        message: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "seq": self.next_seq(channel_id),
            # Never earlier than the previous message, even if the clock steps back.
            "timestamp": max(int(time.time() * 1000), self.last_timestamp.get(channel_id, 0)),
            "username": username,
            "message": text,
        }
        self.storage.sql.execute(
            "INSERT INTO messages (channel_id, seq, id, timestamp, username, message, nonce)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            channel_id,
            message["seq"],
            message["id"],
            message["timestamp"],
            username,
            text,
            nonce,
        )
        self.last_seq[channel_id] = message["seq"]
        self.last_timestamp[channel_id] = message["timestamp"]
        return message

    async def announce(self, channel_id: str, text: str, request_id: str) -> dict[str, Any]:
        """Store an announcement in the channel and broadcast it to its members.

        Called across hosts, where a reply can be lost after the work was done: the caller may
        then ask again with the same request_id, and gets the first announcement back instead
        of a second one. The id is kept as the message's nonce, which post() uses the same way
        for a member's retries."""
        stored = self.storage.sql.execute(
            f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? AND username = ? AND nonce = ?",
            channel_id,
            ANNOUNCER,
            request_id,
        )
        text = clean_message(text)
        if stored and stored[0]["message"] != text:
            # Not a retry: the caller reuses a key, and would lose this text silently.
            raise KeyReused(request_id)
        if stored:
            self.converge(channel_id, record(stored[0]))
            return record(stored[0])
        message = self.store(channel_id, ANNOUNCER, text, request_id)
        self.broadcast_message(channel_id, message)
        return message

    def broadcast_message(self, channel_id: str, message: dict[str, Any]) -> None:
        """Send a stored message to every member, and remember that this instance did."""
        seqs = self.broadcast_seqs.setdefault(channel_id, set())
        seqs.add(message["seq"])
        if len(seqs) > 2 * RECENT_MESSAGES:  # keep the recent ones only, at a linear cost
            oldest = self.next_seq(channel_id) - RECENT_MESSAGES
            seqs.difference_update([seq for seq in seqs if seq < oldest])
        self.broadcast(channel_id, {"type": "message", **message})

    def converge(self, channel_id: str, message: dict[str, Any]) -> None:
        """A retried nonce or Idempotency-Key found its message stored: broadcast it again
        unless this instance already has. Members dedupe by seq, so a second copy is harmless.

        Why: a commit whose answer was unknown (a log timeout) dropped the first broadcast, and
        the write was kept all the same; no member would see that seq until a later one showed
        the gap, and never if it was the last. The rule, so that it stays cheap and no
        amplifier: only a message among the channel's latest RECENT_MESSAGES, and at most once
        per seq per instance. A failed commit (the one thing that drops a broadcast) resets the
        instance and this memory with it, so the first retry after it broadcasts; further
        retries of the same nonce, or a retry after a lost ack, get their ack only. Each retry
        pays its frame's token, and makes at most the one broadcast its first send made."""
        seq = message["seq"]
        if seq in self.broadcast_seqs.get(channel_id, ()):
            return
        if seq >= self.next_seq(channel_id) - RECENT_MESSAGES:
            self.broadcast_message(channel_id, message)

    def within_rate(self, ws: HibernatableWebSocket, nonce: str | None = None) -> bool:
        """Spend a token of this socket's bucket and of its client's, or send a rate_limited
        error and say no."""
        now = self.clock.now()
        bucket = self.bucket_of(ws, now)
        client = self.client_of(ws)
        if not bucket.take(now):
            wait = bucket.retry_after()
        elif not self.clients.take(client, now):
            bucket.tokens += 1  # not this connection's fault: give its token back
            wait = self.clients.retry_after(client)
        else:
            return True
        message = f"Slow down: try again in {wait:.1f} s."
        self.send_error(ws, ProtocolError("rate_limited", message, nonce))
        return False

    def charge(self, ws: HibernatableWebSocket, tokens: float) -> None:
        """Charge work already done (a long replay) to the socket and its client; the debt
        delays their next frames."""
        now = self.clock.now()
        bucket = self.bucket_of(ws, now)
        bucket.refill(now)
        bucket.tokens -= tokens
        self.clients.charge(self.client_of(ws), now, tokens)

    def bucket_of(self, ws: HibernatableWebSocket, now: float) -> TokenBucket:
        """The socket's own bucket: the one its connection's budget holds, which the
        WebSocket protocol spends from for pings, pongs and fragments; in memory (tests,
        notebooks) the transport has none, and the actor keeps one."""
        budget = budget_of(ws)
        if budget is not None:
            return budget.bucket
        return self.buckets.setdefault(
            ws, TokenBucket(self.limits.messages_per_second, self.limits.burst, updated=now)
        )

    @staticmethod
    def client_of(ws: HibernatableWebSocket) -> str:
        """The client address the web layer gave the socket's transport ("local" if none)."""
        return str(getattr(ws.transport, "client", "local"))

    def next_seq(self, channel_id: str) -> int:
        if channel_id not in self.last_seq:
            rows = self.storage.sql.execute(
                "SELECT coalesce(max(seq), 0) AS seq, coalesce(max(timestamp), 0) AS timestamp"
                " FROM messages WHERE channel_id = ?",
                channel_id,
            )
            self.last_seq[channel_id] = rows[0]["seq"]
            self.last_timestamp[channel_id] = rows[0]["timestamp"]
        return self.last_seq[channel_id] + 1

    def replay(self, ws: HibernatableWebSocket, channel_id: str, after_seq: int) -> None:
        """Send the messages after `after_seq`, oldest first, then a "resumed" marker whose
        "more" says whether the client should ask again from the last seq it got."""
        rows = self.storage.sql.execute(
            f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            channel_id,
            after_seq,
            min(REPLAY_MESSAGES, self.replay_allowance(ws)),
        )
        sent, last_sent = 0, None
        for row in rows:
            if sent > REPLAY_CHARS:
                break
            frame = encode({"type": "message", **record(row)})
            ws.send(frame)
            sent += len(frame)
            last_sent = row["seq"]
        channel_last = self.next_seq(channel_id) - 1
        last_seq = channel_last if last_sent is None else last_sent
        more = last_seq < channel_last
        resumed = {"type": "resumed", "after_seq": after_seq, "last_seq": last_seq, "more": more}
        ws.send(encode(resumed))
        # Replaying is the most expensive thing a client can ask: it pays by the message.
        self.charge(ws, len(rows) / self.limits.replay_messages_per_token)

    def replay_allowance(self, ws: HibernatableWebSocket) -> int:
        """How many messages the socket and its client can pay for now (at least one): a slice
        is cut to that, so 20 sockets of one client cannot all ask for a full slice at once."""
        now = self.clock.now()
        buckets = [self.clients.bucket(self.client_of(ws), now), self.bucket_of(ws, now)]
        for bucket in buckets:
            bucket.refill(now)
        tokens = min(bucket.tokens for bucket in buckets)
        return max(1, int(tokens * self.limits.replay_messages_per_token))

    def typing_due(self, ws: HibernatableWebSocket) -> bool:
        """Whether a typing notice from `ws` would be relayed now (one per typing_interval)."""
        return self.clock.now() - self.last_typing.get(ws, -1e9) >= self.limits.typing_interval

    def relay_typing(self, ws: HibernatableWebSocket, channel_id: str, username: str) -> None:
        if not self.typing_due(ws):
            return  # typing notices are hints: dropping extras is harmless
        self.last_typing[ws] = self.clock.now()
        self.broadcast(channel_id, {"type": "typing", "username": username}, skip={ws})

    def forget(self, ws: HibernatableWebSocket) -> None:
        self.buckets.pop(ws, None)
        self.last_typing.pop(ws, None)
        self.strikes.pop(ws, None)
        channel_id, username = self.who(ws)
        del self.members_of[ws]
        if channel_id in self.pending:
            self.pending[channel_id].unlisted(ws)
        if channel_id not in self.rosters:
            # Built now, from the sockets still open (the runtime has already let go of this one).
            if username not in self.roster(channel_id).counts:
                self.presence_changed(channel_id).changed(username, present=False)
        elif self.rosters[channel_id].remove(ws, username):
            self.presence_changed(channel_id).changed(username, present=False)

    def presence_changed(self, channel_id: str) -> PendingPresence[HibernatableWebSocket]:
        """The channel's pending changes, with the timer set that will announce them."""
        if not self.announcing:
            self.announcing = True
            self.ctx.call_later(PRESENCE_INTERVAL, self._announce_presence)
        return self.pending.setdefault(channel_id, PendingPresence())

    async def _announce_presence(self) -> None:
        """Tell each channel's members who joined and left since they were last told: one
        frame per member per PRESENCE_INTERVAL, however many came and went."""
        self.announcing = False
        pending, self.pending = self.pending, {}
        for channel_id, changes in pending.items():
            diff = changes.take(self.roster(channel_id).counts)
            if diff is not None:  # else what happened cancelled out
                frame, up_to_date = diff
                self.broadcast(channel_id, frame, skip=up_to_date)

    # -- members -----------------------------------------------------------------------------------

    def who(self, ws: HibernatableWebSocket) -> tuple[str, str]:
        known = self.members_of.get(ws)
        if known is None:
            attachment = ws.deserialize_attachment()
            known = self.members_of[ws] = (attachment["channel_id"], attachment["username"])
        return known

    def roster(self, channel_id: str) -> Roster[HibernatableWebSocket]:
        roster = self.rosters.get(channel_id)
        if roster is None:
            roster = self.rosters[channel_id] = Roster()
            for ws in self.ctx.get_websockets(channel_id):
                roster.add(ws, self.who(ws)[1])
        return roster

    def broadcast(
        self,
        channel_id: str,
        frame: dict[str, Any],
        skip: Container[HibernatableWebSocket] = (),
    ) -> None:
        text = encode(frame)  # encoded once, sent to every member
        for ws in self.ctx.get_websockets(channel_id):
            if ws not in skip:
                ws.send(text)

    @classmethod
    def send_error(cls, ws: HibernatableWebSocket, error: ProtocolError) -> None:
        ws.send(encode(error.frame()))
        if cls.metrics is not None:
            cls.metrics.frame_refused(error.code)
