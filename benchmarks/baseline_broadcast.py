"""The baseline for benchmarks/fanout.py: the smallest FastAPI WebSocket broadcast we could write.

Same URL shape as Accord (/api/servers/{sid}/channels/{cid}/connect?username=), same message
frame shape ({"type": "message", "id", "seq", "timestamp", "username", "message"}), served by
uvicorn with Accord's UVICORN_OPTIONS. Everything Accord does on top is left out on purpose:
no catalog lookup, no actor, no SQLite, no fsync, no ack, no presence, no rate limit, no
validation. Any ids are accepted. What Accord costs is then "Accord minus this".

    .venv/bin/python benchmarks/baseline_broadcast.py --port 8788
"""

import argparse
import contextlib
import itertools
import json
import time
import uuid
from collections import defaultdict

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from accord_app.app import UVICORN_OPTIONS

app = FastAPI()
# channel (server id, channel id) -> its connected sockets. In memory: a restart forgets all.
channels: defaultdict[tuple[str, str], set[WebSocket]] = defaultdict(set)
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
    await websocket.accept()
    members = channels[(server_id, channel_id)]
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
        members.discard(websocket)
        if not members:
            channels.pop((server_id, channel_id), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
