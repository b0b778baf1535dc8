"""The baseline for benchmarks/fanout.py: the smallest FastAPI WebSocket broadcast we could write.

Same URL shape as Accord (/api/servers/{sid}/channels/{cid}/connect?username=), same message
frame shape ({"type": "message", "id", "seq", "timestamp", "username", "message"}), served by
uvicorn with Accord's UVICORN_OPTIONS. Everything Accord does on top is left out on purpose:
no catalog lookup, no actor, no SQLite, no fsync, no ack, no presence, no rate limit, no
validation. Any ids are accepted. What Accord costs is then "Accord minus this".

Two ways to serve it, as Accord has (ACCORD_WS):

- `--ws asgi` (the default): uvicorn's own WebSocket protocol; one task per socket waits in
  `receive_text()` and each copy of a broadcast is one awaited `send_text()`.
- `--ws fast`: served with Accord's FastWebSocket (accord_app/web/fast_websocket.py). The endpoint
  takes the socket as a direct transport, registers a callback and returns: no task per
  socket, and a broadcast is a plain loop of `write_frame()` from that callback, so it gets
  the same one-write-per-socket-per-loop-turn batching and encode-once cache as Accord on its
  fast path. The equally-written baseline for Accord's fast path.

    .venv/bin/python benchmarks/baseline_broadcast.py --port 8788 [--ws fast]
"""

import argparse
import contextlib
import itertools
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from accord_app.actors import TransportClosed
from accord_app.actors.files import raise_open_files_limit
from accord_app.app import UVICORN_OPTIONS
from accord_app.web.fast_websocket import DIRECT_TRANSPORT, FastWebSocket

app = FastAPI()
# channel (server id, channel id) -> its connected sockets. In memory: a restart forgets all.
# On the ASGI path the sockets are Starlette WebSockets, on the fast path FastWebSockets.
channels: defaultdict[tuple[str, str], set[Any]] = defaultdict(set)
# One counter for every channel: a cheap stand-in for Accord's per-channel seq.
sequence = itertools.count(1)


def message_frame(username: str, text: str) -> str:
    """The frame Accord broadcasts, with the same fields, so both send as many bytes."""
    frame = {
        "type": "message",
        "id": str(uuid.uuid4()),
        "seq": next(sequence),
        "timestamp": int(time.time() * 1000),
        "username": username,
        "message": text,
    }
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


@app.websocket("/api/servers/{server_id}/channels/{channel_id}/connect")
async def connect(
    websocket: WebSocket, server_id: str, channel_id: str, username: str = "anonymous"
) -> None:
    direct = websocket.scope.get("extensions", {}).get(DIRECT_TRANSPORT)
    await websocket.accept()
    key = (server_id, channel_id)
    if direct is None:
        await serve_asgi(websocket, key, username)
    else:
        serve_direct(direct["transport"], key, username)


async def serve_asgi(websocket: WebSocket, key: tuple[str, str], username: str) -> None:
    """uvicorn's path: this task reads the socket until it closes."""
    members = channels[key]
    members.add(websocket)
    try:
        while True:
            frame = message_frame(username, await websocket.receive_text())
            # The sender is a member too and gets its own message back, as in Accord.
            # list(): a member may leave while we await a send.
            for member in list(members):
                # A member that went away makes its send fail; its own loop removes it.
                with contextlib.suppress(Exception):
                    await member.send_text(frame)
    except WebSocketDisconnect:
        pass
    finally:
        leave(key, websocket)


def serve_direct(transport: FastWebSocket, key: tuple[str, str], username: str) -> None:
    """The fast path: callbacks on the socket, and the endpoint returns (the socket stays)."""
    members = channels[key]
    members.add(transport)

    def on_frame(data: str | bytes) -> None:
        if isinstance(data, str):
            # One str object for every member: FastWebSocket encodes it once.
            frame = message_frame(username, data)
            for member in members:  # write_frame never awaits: the set cannot change meanwhile
                member.write_frame(frame)
        # None: no turn to wait for, the next frame can come at once.

    def on_close(_: TransportClosed) -> None:
        leave(key, transport)

    transport.listen(on_frame, on_close)


def leave(key: tuple[str, str], member: Any) -> None:
    members = channels.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del channels[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--ws", choices=["asgi", "fast"], default="asgi", help="WebSocket path")
    args = parser.parse_args()
    raise_open_files_limit()  # thousands of idle members in fanout.py's memory test
    options = {**UVICORN_OPTIONS, "ws": FastWebSocket} if args.ws == "fast" else UVICORN_OPTIONS
    uvicorn.run(app, host=args.host, port=args.port, **options)


if __name__ == "__main__":
    main()
