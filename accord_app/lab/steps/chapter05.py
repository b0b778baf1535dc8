"""What chapter 05 builds, solved: generated from notebooks/solutions/05-channel-actor.ipynb.

Do not edit: change the notebook and run `make notebooks`."""

import time
import uuid
from typing import Any

from accord_app.actors import Actor, ActorContext, HibernatableWebSocket, Transport
from accord_app.chat.protocol import ProtocolError, Resume, SendMessage, encode, parse_frame


COLUMNS = "id, seq, timestamp, username, message"


def as_message(row: Any) -> dict[str, Any]:
    """A row of SELECT {COLUMNS} as the dict the protocol sends."""
    return {"id": row[0], "seq": row[1], "timestamp": row[2], "username": row[3], "message": row[4]}


class MyChannel(Actor):
    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self.storage.sql.execute(
            "CREATE TABLE IF NOT EXISTS messages (channel_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " id TEXT NOT NULL, timestamp INTEGER NOT NULL, username TEXT NOT NULL,"
            " message TEXT NOT NULL, PRIMARY KEY (channel_id, seq))"
        )

    @staticmethod
    def who(ws: HibernatableWebSocket) -> tuple[str, str]:
        """(channel_id, username) of a member's socket, from its attachment."""
        attachment = ws.deserialize_attachment()
        return attachment["channel_id"], attachment["username"]

    def broadcast(self, channel_id: str, frame: dict[str, Any]) -> None:
        text = encode(frame)
        for ws in self.ctx.get_websockets(channel_id):
            ws.send(text)


async def join(
    self, transport: Transport, channel_id: str, username: str, after_seq: int | None
) -> None:
    ws = self.ctx.accept_websocket(transport, tags=[channel_id])
    ws.serialize_attachment({"channel_id": channel_id, "username": username})
    if after_seq is not None:
        self.replay(ws, channel_id, after_seq)


async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
    channel_id, username = self.who(ws)
    try:
        frame = parse_frame(data if isinstance(data, str) else "")
    except ProtocolError as error:
        ws.send(encode(error.frame()))
        return
    if isinstance(frame, SendMessage):
        rows = self.storage.sql.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE channel_id = ?", channel_id
        )
        message = {
            "id": str(uuid.uuid4()),
            "seq": rows[0][0],
            "timestamp": int(time.time() * 1000),
            "username": username,
            "message": frame.text,
        }
        self.storage.sql.execute(
            "INSERT INTO messages (channel_id, seq, id, timestamp, username, message)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            channel_id,
            message["seq"],
            message["id"],
            message["timestamp"],
            username,
            frame.text,
        )
        ws.send(encode({"type": "ack", **message}))
        self.broadcast(channel_id, {"type": "message", **message})
    elif isinstance(frame, Resume):
        self.replay(ws, channel_id, frame.after_seq)


MyChannel.join = join
MyChannel.websocket_message = websocket_message


async def history(
    self, channel_id: str, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    rows = self.storage.sql.execute(
        f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? AND seq < ?"
        " ORDER BY seq DESC LIMIT ?",
        channel_id,
        before if before is not None else 2**62,
        limit,
    )
    return [as_message(row) for row in rows]


MyChannel.history = history


def replay(self, ws: HibernatableWebSocket, channel_id: str, after_seq: int) -> None:
    rows = self.storage.sql.execute(
        f"SELECT {COLUMNS} FROM messages WHERE channel_id = ? AND seq > ? ORDER BY seq",
        channel_id,
        after_seq,
    )
    for row in rows:
        ws.send(encode({"type": "message", **as_message(row)}))
    last = self.storage.sql.execute(
        "SELECT coalesce(max(seq), 0) FROM messages WHERE channel_id = ?", channel_id
    )
    ws.send(encode({"type": "resumed", "after_seq": after_seq, "last_seq": last[0][0]}))


MyChannel.replay = replay
