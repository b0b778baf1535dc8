"""The chat on a replicated cluster (python -m accord_app.cluster --replicated): three hosts on
loopback, each with a worker and a NATS server, behind Caddy. Messages are acknowledged once a
majority of the log has them; with two of three servers down every message gets an error
frame once the log's deadline has passed, and the channel takes messages again once a majority
is back."""

import asyncio
import json
import time

import httpx
import pytest
from cluster_client import Running
from replica_tools import CLUSTER_LOG_TIMEOUT as TIMEOUT
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = pytest.mark.anyio
UNAVAILABLE = {"storage_unavailable", "not_stored", "outcome_unknown"}


async def send(ws: object, text: str, nonce: str) -> dict[str, object]:
    """Send one message; the frame that answers it (its ack or its error)."""
    await ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))  # type: ignore[attr-defined]
    while True:
        frame = await Running.recv_json(ws, timeout=20)  # type: ignore[arg-type]
        if frame["type"] in ("ack", "error"):
            return frame


async def from_a_worker(http: httpx.Client, path: str) -> httpx.Response:
    """GET `path` as a worker answers it. On a loaded machine a worker can miss the router's
    health check (1 s), and while the router deems every worker down it answers
    worker_unavailable itself: that is not the app's answer, so ask again (for up to 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        response = http.get(path)
        if response.is_success or response.json().get("code") != "worker_unavailable":
            return response
        assert time.monotonic() < deadline, f"no worker answered {path}"
        await asyncio.sleep(0.5)


async def test_messages_need_a_majority_of_the_log(replicated: Running) -> None:
    nats = replicated.cluster.nats
    assert nats is not None
    [channel] = replicated.create_channels(1)
    async with Running.connect(replicated.ws_url(channel, "ada")) as ws:
        first = await send(ws, "hello", "n1")
        assert first["type"] == "ack" and first["seq"] == 1
        nats.kill(2)
        nats.kill(3)  # no majority: nothing may be acknowledged
        codes = []
        for number in range(3):
            started = time.monotonic()
            frame = await send(ws, f"lost {number}", f"lost-{number}")
            assert frame["type"] == "error", frame
            codes.append(frame["code"])
            # Within the log's deadline, with a wide margin for a loaded machine (1.5 to 2.1 s
            # measured), well before send() gives up on the frame. No lower bound: once the
            # actor has reset, its next activation may be refused at once.
            waited = time.monotonic() - started
            assert waited < 10 * float(TIMEOUT), waited
        assert set(codes) <= UNAVAILABLE and codes[-1] == "storage_unavailable"
    history = await from_a_worker(replicated.http, f"{channel.path}/messages")
    assert history.status_code == 503 and history.json()["code"] == "storage_unavailable"
    nats.restart(2)
    deadline = time.monotonic() + 30
    while True:
        try:
            async with Running.connect(replicated.ws_url(channel, "ada")) as ws:
                frame = await send(ws, "back", "back")
        except ConnectionClosed as closed:  # 1013: the actor could not activate yet
            frame = {"type": "closed", "code": closed.rcvd and closed.rcvd.code}
        # The handshake refused by the router (no worker deemed up yet) or slow to open.
        except (InvalidStatus, TimeoutError, OSError) as error:
            frame = {"type": "not connected", "error": repr(error)}
        if frame["type"] == "ack":
            break
        assert time.monotonic() < deadline, f"no ack once a majority was back: {frame}"
        await asyncio.sleep(0.2)
    newest_first = (await from_a_worker(replicated.http, f"{channel.path}/messages")).json()
    texts = [message["message"] for message in newest_first]
    assert texts[0] == "back" and texts[-1] == "hello"
