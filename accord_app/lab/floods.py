"""Frame floods on a raw socket: the frames a client library would never send, written by hand.

    python -m accord_app.lab.floods KIND WS_URL SECONDS [--source 127.0.0.3]

Connects to a channel's WebSocket URL (the upgrade by hand too), prints "ready", waits for a
line on stdin, floods for at most SECONDS, and prints what happened as one JSON line: frames
written, when (if) the server cut the flooder off and with which close code. The kinds:

- fragments: a text frame with fin=0, then empty continuation frames, without end;
- pings_unread / pings_read: pings, with the pongs never read / read and thrown away;
- pongs: pongs nobody asked for;
- text_ping: the text "ping", which the channel answers with "pong" without a turn;
- bad_json: JSON cut short, which the channel takes for a message's text: each a turn, a
  message stored while the budget lasts, then a rate_limited error.

tests/test_frame_floods.py and benchmarks/abuse.py both run it, in a process of its own: in the
measuring process it would slow the very clocks that time the other members.
"""

import argparse
import base64
import json
import os
import select
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from websockets.frames import Close, Frame, Opcode

FLOODS = ("fragments", "pings_unread", "pings_read", "pongs", "text_ping", "bad_json")
# Frames the flooder writes per batch: enough to fill a read of the server's at once.
BATCH_FRAMES = 2000
READ_TIMEOUT = 5.0


@dataclass
class FloodResult:
    kind: str
    frames: int = 0  # written (handed to the kernel, whole)
    cut_off_after: float | None = None  # seconds from the first frame to the cut-off
    close_code: int | None = None  # from the server's close frame (1006: none came)
    close_reason: str = ""
    received_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def upgrade(url: str, source: str | None = None) -> tuple[socket.socket, bytes]:
    """The WebSocket upgrade of `url` (ws://host:port/path?query), by hand; the socket and what
    came after the answer's headers (the first frames)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sock = socket.create_connection(
        (host, port), timeout=READ_TIMEOUT, source_address=(source, 0) if source else None
    )
    key = base64.b64encode(os.urandom(16)).decode()
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"no answer to the upgrade: {answer!r}")
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {head.decode(errors='replace')}")
    return sock, rest


def frame(opcode: Opcode, data: bytes = b"", fin: bool = True) -> bytes:
    """One client frame (masked, as RFC 6455 requires of clients), whatever the sequence."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def opening(kind: str) -> bytes:
    """What the flood starts with, once."""
    return frame(Opcode.TEXT, b"x", fin=False) if kind == "fragments" else b""


def batch(kind: str) -> bytes:
    """BATCH_FRAMES frames of the flood, each masked with its own key."""
    opcode, data, fin = {
        "fragments": (Opcode.CONT, b"", False),
        "pings_unread": (Opcode.PING, b"flood", True),
        "pings_read": (Opcode.PING, b"flood", True),
        "pongs": (Opcode.PONG, b"unasked", True),
        "text_ping": (Opcode.TEXT, b"ping", True),
        "bad_json": (Opcode.TEXT, b'{"type": "message", "message": "cut', True),
    }[kind]
    return b"".join(frame(opcode, data, fin) for _ in range(BATCH_FRAMES))


class ServerFrames:
    """Reads the server's frames (unmasked) off the socket; notes the close frame."""

    def __init__(self, sock: socket.socket, already: bytes, result: FloodResult) -> None:
        self.sock, self.buffer, self.result = sock, bytearray(already), result
        self.closed_at: float | None = None

    def read_until_closed(self, deadline: float) -> None:
        while self.closed_at is None and time.monotonic() < deadline:
            readable, _, _ = select.select([self.sock], [], [], 0.1)
            if not readable:
                continue
            try:
                chunk = self.sock.recv(65536)
            except OSError as error:  # a reset: whatever came before it was read already
                self.result.errors.append(f"recv: {error!r}")
                chunk = b""
            if not chunk:
                self._closed(1006, "")
                return
            self.result.received_bytes += len(chunk)
            self.buffer += chunk
            self._parse()

    def _parse(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            length, start = buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            opcode, payload = buffer[0] & 0x0F, bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == Opcode.CLOSE.value:
                close = Close.parse(payload)
                self._closed(close.code, close.reason)
                return

    def _closed(self, code: int, reason: str) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.result.close_code, self.result.close_reason = code, reason


def flood(url: str, kind: str, seconds: float, source: str | None = None) -> FloodResult:
    """Connect, then flood(); for callers that need no pause between the two."""
    sock, rest = upgrade(url, source)
    return run_flood(sock, rest, kind, seconds)


def run_flood(sock: socket.socket, rest: bytes, kind: str, seconds: float) -> FloodResult:
    """Write the flood for at most `seconds`, whole frames only (a partial frame would be a
    protocol error, and a different test); stop once the server has cut the flooder off."""
    result = FloodResult(kind)
    frames = ServerFrames(sock, rest, result)
    reads = kind != "pings_unread"
    started = time.monotonic()
    deadline = started + seconds
    reader = threading.Thread(target=frames.read_until_closed, args=(deadline,), daemon=True)
    if reads:
        reader.start()
    sock.setblocking(False)
    pending, per_batch, failed_at = opening(kind) + batch(kind), batch(kind), None
    frame_size = len(per_batch) // BATCH_FRAMES
    written = -len(opening(kind))
    while time.monotonic() < deadline and frames.closed_at is None:
        _, writable, _ = select.select([], [sock], [], 0.05)
        if not writable:
            continue
        try:
            sent = sock.send(pending)
        except OSError as error:  # the server closed: a reset or a broken pipe
            result.errors.append(f"send: {error!r}")
            failed_at = time.monotonic()
            break
        written += sent
        pending = pending[sent:] or per_batch
    result.frames = max(0, written) // frame_size
    sock.setblocking(True)
    if reads:
        reader.join(max(0.0, deadline - time.monotonic()) + READ_TIMEOUT)
    elif failed_at is not None:
        # Cut off, and never read: the pongs queued before, then the close frame, if any.
        frames.read_until_closed(time.monotonic() + READ_TIMEOUT)
    ends = [at for at in (frames.closed_at, failed_at) if at is not None]
    if ends:
        result.cut_off_after = min(ends) - started
    sock.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=FLOODS)
    parser.add_argument("url", help="a channel's WebSocket URL, with ?username=")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--source", help="the local address to connect from")
    args = parser.parse_args(argv)
    sock, rest = upgrade(args.url, args.source)
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(asdict(run_flood(sock, rest, args.kind, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
