"""A member that stops reading is cut off; the others' chat goes on.

The slow member is a raw TCP client with a tiny receive buffer: it performs the WebSocket
handshake and then reads nothing, so the server's frames pile up in the kernel (a few MB on
loopback) and then in the server's per-socket send queue, which must be bounded: once it is
full, the server disconnects the slow socket (the others hear it left) instead of
buffering without end or holding up the other members.
"""

import asyncio
import base64
import contextlib
import json
import os
import random
import socket
import string
import struct
import time
from typing import TYPE_CHECKING, Any

import pytest
from websockets.asyncio.client import ClientConnection

if TYPE_CHECKING:
    from conftest import Chat, Wire

pytestmark = pytest.mark.anyio

# Every sharding mode on the fast path (the default), and the ASGI path in one: how a socket is
# written does not depend on which actor hosts the channel (the protocol suite,
# test_channel_ws.py, crosses all six).
EACH_MODE_AND_ASGI = ["channel-fast", "server-fast", "global-fast", "channel-asgi"]

# 2 senders x 1500 messages of ~1.9 KB: ~6 MB for the slow member, about twice what the kernel
# buffers hold on loopback, so the server's own queue for it must overflow.
SENDERS = ("ada", "bob")
PER_SENDER = 1500
MESSAGE_CHARS = 1900
DELIVERY_DEADLINE = 40.0  # seconds for the others to get every ack and message
CUT_OFF_DEADLINE = 5.0  # seconds after that for the slow member's leave
SLOW_LEFT = {"type": "presence_diff", "joins": [], "leaves": ["slow"]}


def slow_handshake(host: str, port: int, path: str) -> socket.socket:
    """Open a WebSocket as `slow` with a 4 KiB receive buffer; return the socket, unread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: sets the window
    sock.settimeout(5)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path}/connect?username=slow HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)  # byte by byte: leave every frame after the headers unread
        assert chunk, f"closed during the handshake: {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def queued_frames(chat: "Chat") -> int | None:
    """For the failure message only: the longest per-socket send queue in the server (a private
    detail of the runtime; None if it has changed shape)."""
    try:
        hosts = list(chat.app.state.channels._hosts.values())
        return max(len(ws._outbox) for host in hosts for ws in host.sockets)
    except (AttributeError, TypeError, ValueError, RuntimeError):
        return None


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[int, bool, int | None]:
    """Read what the server sent: (text frames, whether the stream ended, close code)."""
    sock.settimeout(0.5)
    buffer, ended = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            ended = True
            break
        if not chunk:
            ended = True
            break
        buffer += chunk
    texts, close_code, offset = 0, None, 0
    while offset + 2 <= len(buffer):
        opcode, length = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
        header = 2
        if length == 126:
            (length,) = struct.unpack_from("!H", buffer, offset + 2)
            header = 4
        elif length == 127:
            (length,) = struct.unpack_from("!Q", buffer, offset + 2)
            header = 10
        payload = buffer[offset + header : offset + header + length]
        if len(payload) < length:
            break  # a frame cut short by the disconnect
        if opcode == 0x1:
            texts += 1
        elif opcode == 0x8:
            close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        offset += header + length
    return texts, ended, close_code


@pytest.mark.parametrize("chat", EACH_MODE_AND_ASGI, indirect=True)
async def test_a_member_that_stops_reading_is_cut_off(chat: "Chat", wire: "type[Wire]") -> None:
    channel = chat.create_channel()
    total = len(SENDERS) * PER_SENDER
    rng = random.Random(7)
    texts = {
        name: ["".join(rng.choices(string.ascii_letters, k=MESSAGE_CHARS)) for _ in range(50)]
        for name in SENDERS
    }
    async with (
        chat.connect(channel, SENDERS[0]) as ada,
        chat.connect(channel, SENDERS[1]) as bob,
    ):
        await wire.members(ada, SENDERS[0], SENDERS[1])
        await wire.members(bob, SENDERS[0], SENDERS[1])
        slow = slow_handshake(chat.server.host, chat.server.port, channel.path)
        try:
            joined = {"type": "presence_diff", "joins": ["slow"], "leaves": []}
            assert await wire.recv_json(ada) == joined
            assert await wire.recv_json(bob) == joined
            left_seen: dict[str, float] = {}

            async def member(name: str, ws: ClientConnection) -> tuple[list[dict], list[dict]]:
                acks: list[dict[str, Any]] = []
                messages: list[dict[str, Any]] = []

                async def writer() -> None:
                    for number in range(PER_SENDER):
                        await ws.send(f"{number} {texts[name][number % 50]}")

                sending = asyncio.create_task(writer())
                try:
                    while len(acks) < PER_SENDER or len(messages) < total:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "ack":
                            acks.append(frame)
                        elif frame["type"] == "message":
                            messages.append(frame)
                        elif frame == SLOW_LEFT:
                            left_seen[name] = time.monotonic()
                finally:
                    await sending
                return acks, messages

            started = time.monotonic()
            async with asyncio.timeout(DELIVERY_DEADLINE):
                results = await asyncio.gather(member("ada", ada), member("bob", bob))
            delivered_in = time.monotonic() - started
            # The others' chat went on: every message acked once, received by both, in order.
            for name, (acks, messages) in zip(SENDERS, results, strict=True):
                assert len(acks) == PER_SENDER, name
                assert [m["seq"] for m in messages] == list(range(1, total + 1)), name
                numbers = [int(a["message"].split(" ", 1)[0]) for a in acks]
                assert numbers == list(range(PER_SENDER)), name
            assert results[0][1] == results[1][1]
            # ...and the slow member was cut off: both others hear it left.

            async def hear_left(name: str, ws: ClientConnection) -> None:
                while name not in left_seen:
                    if json.loads(await ws.recv()) == SLOW_LEFT:
                        left_seen[name] = time.monotonic()

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CUT_OFF_DEADLINE):
                    await asyncio.gather(hear_left("ada", ada), hear_left("bob", bob))
            assert sorted(left_seen) == ["ada", "bob"], (
                f"the slow member was never cut off: no 'left' within {CUT_OFF_DEADLINE:g} s"
                f" after the others' {total} messages were delivered (in {delivered_in:.1f} s);"
                f" frames queued in the server for one socket: {queued_frames(chat)}"
            )
            # When it finally reads, it finds its stream ended before all messages reached it.
            text_frames, ended, close_code = await asyncio.to_thread(read_until_closed, slow, 10)
            assert ended, "the slow member's connection is still open"
            assert text_frames < total, (text_frames, close_code)
        finally:
            slow.close()
        # The channel still works for the others afterwards.
        ack, _ = await wire.send_and_confirm(ada, "after the slow one")
        assert ack["seq"] == total + 1
        assert (await wire.recv_json(bob))["seq"] == total + 1
    assert chat.history(channel, limit=1)[0]["seq"] == total + 1
