"""Limits that hold: per client address as well as per connection, with every kind of frame
paying, and a connection that keeps sending refused frames closed (item 7)."""

import contextlib
import json
import time
import uuid
from typing import Any

import pytest
from fault_tools import opened, refused
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from accord_app.chat.ratelimit import SWEEP_AFTER, ChatLimits, ClientLimits, TokenBucket


def frames_until(ws: ClientConnection, kind: str, timeout: float = 5) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        seen.append(frame)
        if frame["type"] == kind:
            return seen


def send(ws: ClientConnection, text: str, nonce: str | None = None) -> None:
    ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce or uuid.uuid4().hex}))


def answers(ws: ClientConnection, count: int) -> list[str]:
    """The next `count` acks or errors, as "ack" or the error's code."""
    found = []
    while len(found) < count:
        frame = json.loads(ws.recv(timeout=5))
        if frame["type"] == "ack":
            found.append("ack")
        elif frame["type"] == "error":
            found.append(frame["code"])
    return found


def test_a_bucket_can_be_charged_into_debt() -> None:
    bucket = TokenBucket(rate=10, burst=5, updated=0.0)
    assert bucket.take(0.0, cost=5) and not bucket.take(0.0)
    clients = ClientLimits(ChatLimits(client_messages_per_second=10, client_burst=5))
    clients.charge("a", 0.0, 15)  # 5 in the bucket, 10 owed: a second of silence to repay
    assert not clients.take("a", 1.0)
    assert clients.take("a", 1.2)


def test_new_connections_per_address_are_paced_and_a_debt_outlives_a_reconnect() -> None:
    limits = ChatLimits(client_connects_per_second=2, client_connect_burst=3,
                        client_messages_per_second=1, client_burst=5)  # fmt: skip
    clients = ClientLimits(limits)
    assert [clients.connect("a", 0.0) for _ in range(3)] == [None] * 3
    refusal = clients.connect("a", 0.0)
    assert refusal == "Too many new connections from a: try again in 0.5 s."
    assert clients.connect("b", 0.0) is None  # another address has its own budget
    assert clients.connect("a", 0.5) is None
    clients.charge("a", 0.5, 15)  # 5 in the bucket and 10 owed
    for _ in range(4):
        clients.disconnect("a", 0.5)
    assert clients.connect("a", 5.0) is None
    assert not clients.take("a", 5.0)  # 4.5 s repaid 4.5 of the 10 owed: still in debt
    assert not clients.take("a", 11.4)  # 11 s after the charge: 10 owed, then 1 to spend
    assert clients.take("a", 11.6)


def test_gone_clients_are_forgotten_once_they_owe_nothing() -> None:
    clients = ClientLimits(ChatLimits(client_messages_per_second=1, client_burst=5))
    addresses = [f"10.0.{n // 256}.{n % 256}" for n in range(SWEEP_AFTER + 10)]
    for address in addresses:  # each spends a token and leaves: its bucket is not full yet
        assert clients.connect(address, 0.0) is None
        assert clients.take(address, 0.0)
        clients.disconnect(address, 0.0)
    clients.charge("debtor", 0.0, 100)
    assert len(clients.buckets) == len(addresses) + 1
    assert clients.connect("late", 10.0) is None  # 10 s later every token is back, but 100
    clients.disconnect("late", 10.0)
    assert set(clients.buckets) == {"debtor"}


def test_connections_per_client_address_are_capped(start: Any) -> None:
    running = start(chat_limits=ChatLimits(client_connections=3))
    path = running.channel()
    with opened([running.ws_url(path, f"user{n}") for n in range(3)]) as sockets:
        status, body = refused(running.ws_url(path, "one-too-many"))
        assert status == 429 and body["code"] == "too_many_connections"
        sockets.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the server counts the close as soon as it sees it
            try:
                with connect(running.ws_url(path, "next")) as ws:
                    assert json.loads(ws.recv(timeout=5))["type"] == "presence"
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_many_connections_share_one_budget(start: Any) -> None:
    limits = ChatLimits(messages_per_second=100, burst=100, client_messages_per_second=1,
                        client_burst=6)  # fmt: skip
    running = start(chat_limits=limits)
    path = running.channel()
    with opened([running.ws_url(path, f"user{n}") for n in range(3)]) as sockets:
        for ws in sockets:
            json.loads(ws.recv(timeout=5))  # presence
        for ws in sockets:
            for number in range(4):
                send(ws, f"message {number}")
        codes = [code for ws in sockets for code in answers(ws, 4)]
        assert codes.count("ack") == 6, codes  # the burst of the client, not 3 x 4
        assert codes.count("rate_limited") == 6


def test_retries_of_a_stored_message_pay_like_messages(start: Any) -> None:
    running = start(chat_limits=ChatLimits(messages_per_second=1, burst=3))
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        for _ in range(6):
            send(ws, "once", nonce="the-same-nonce")
        assert answers(ws, 6) == ["ack", "ack", "ack"] + ["rate_limited"] * 3
    history = running.http.get(f"{path}/messages").json()
    assert [message["message"] for message in history] == ["once"]


def test_a_connection_that_keeps_sending_refused_frames_is_closed(start: Any) -> None:
    running = start(chat_limits=ChatLimits(strikes=5))
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        for _ in range(10):
            # The server may close after the fifth before all ten are sent: its answers stay
            # queued on the client, so the check below reads them either way.
            with contextlib.suppress(ConnectionClosed):
                ws.send('{"type": "nonsense"}')
        codes = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                codes.append(json.loads(ws.recv(timeout=5))["code"])
        assert codes == ["unknown_type"] * 5
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_stored_message_forgives_refused_frames(start: Any) -> None:
    running = start(chat_limits=ChatLimits(strikes=3, messages_per_second=100, burst=100))
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        for round_ in range(4):  # 2 refused, 1 stored, again and again: never 3 in a row
            ws.send('{"type": "nonsense"}')
            ws.send('{"type": "nonsense"}')
            send(ws, f"fine {round_}")
            assert answers(ws, 3) == ["unknown_type", "unknown_type", "ack"]


def test_a_long_replay_is_paid_by_the_message(start: Any) -> None:
    # One token per 100 s: the test's own seconds refill nothing that changes the count (at
    # one a second, a loaded machine that took a second longer got one more ack).
    limits = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=0.01,
                        client_burst=60, replay_messages_per_token=10)  # fmt: skip
    running = start(chat_limits=limits)
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        for number in range(50):
            send(ws, f"message {number}")
        assert answers(ws, 50).count("ack") == 50
        # 10 tokens left. A replay of 50 messages costs 1 + 5: then 4 remain, then none.
        ws.send(json.dumps({"type": "resume", "after_seq": 0}))
        frames_until(ws, "resumed")
        for number in range(6):
            send(ws, f"after {number}")
        assert answers(ws, 6) == ["ack"] * 4 + ["rate_limited"] * 2


def test_one_typing_notice_per_interval_is_free_and_extras_pay(start: Any) -> None:
    running = start(chat_limits=ChatLimits(messages_per_second=0.1, burst=3))
    path = running.channel()
    with connect(running.ws_url(path, "honest")) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send('{"type": "typing"}')  # relayed: what the page sends, costs nothing
        for number in range(3):
            send(ws, f"message {number}")
        assert answers(ws, 3) == ["ack", "ack", "ack"]
    with connect(running.ws_url(path, "chatty")) as ws:
        json.loads(ws.recv(timeout=5))
        for _ in range(3):  # the first is relayed; the two extras cost a token each
            ws.send('{"type": "typing"}')
        send(ws, "one")
        send(ws, "two")
        assert answers(ws, 2) == ["ack", "rate_limited"]
