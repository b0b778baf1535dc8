"""The small ones (item 8): each a clear 4xx or error frame, never a 500, an empty body or a
flood of log lines."""

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_tools import GENEROUS, logged, refused
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.chat.channel import ChannelActor
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath
from accord_app.web.errors import BAD_UTF8_LOG_SECONDS, QuietBadUtf8


def test_an_after_seq_of_thousands_of_digits_is_a_400(start: Any) -> None:
    running = start()
    path = running.channel()
    status, body = refused(f"{running.ws_url(path)}&after_seq={'9' * 5000}")
    assert status == 400 and body["code"] == "invalid_after_seq"
    history = running.http.get(f"{path}/messages", params={"before": "9" * 5000})
    assert history.status_code == 400 and history.json()["code"] == "invalid_before"


def test_a_websocket_to_an_unknown_path_is_a_json_404(start: Any) -> None:
    running = start()
    for path in ["/nowhere", "/api/servers/x/channels/y/elsewhere", "/api/servers"]:
        status, body = refused(f"{running.server.ws_url}{path}")
        assert status == 404 and body["code"] == "not_found" and path in body["message"]


def test_a_nonce_reused_for_another_text_is_refused_not_taken_for_a_retry(start: Any) -> None:
    running = start()
    path = running.channel()
    with connect(f"{running.server.ws_url}{path}/connect?username=ada") as ws:
        json.loads(ws.recv(timeout=5))
        for text in ["first", "second"]:
            ws.send(json.dumps({"type": "message", "message": text, "nonce": "n-1"}))
        frames = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
        kinds = [(frame["type"], frame.get("code")) for frame in frames]
        assert kinds == [("ack", None), ("message", None), ("error", "nonce_reused")]
        assert frames[2]["nonce"] == "n-1"
    assert [m["message"] for m in running.http.get(f"{path}/messages").json()] == ["first"]


def test_invalid_utf8_closes_with_1007_without_a_traceback_each_time(start: Any) -> None:
    running = start()
    path = running.channel()
    # The filter is one per process and remembers its last line: forget the other path's run.
    for quiet in logging.getLogger("uvicorn.error").filters:
        if isinstance(quiet, QuietBadUtf8):
            quiet.last = -BAD_UTF8_LOG_SECONDS
    with logged("uvicorn.error") as records:  # where uvicorn reports it
        for _ in range(3):
            with connect(f"{running.server.ws_url}{path}/connect?username=ada") as ws:
                json.loads(ws.recv(timeout=5))
                ws.send(b"\xff\xfe bad", text=True)  # a text frame that is not UTF-8
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert [r for r in records.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert len([r for r in records.records if "UTF-8" in r.getMessage()]) == 1


def test_websocket_refusals_speak_json_too(start: Any) -> None:
    running = start()
    path = f"/api/servers/{uuid.uuid4()}/channels/{uuid.uuid4()}"
    status, body = refused(running.ws_url(path))
    assert status == 404 and body["code"] == "server_not_found"


class ForgetsToAcceptTheSocket(ChannelActor):
    async def join(self, transport: Any, channel_id: str, username: str, after: Any) -> None:
        pass  # no self.ctx.accept_websocket(transport, ...)


@pytest.mark.parametrize("path", list(WebSocketPath))
def test_a_socket_the_actor_does_not_take_is_closed_with_1011_and_logged(
    tmp_path: Path, path: WebSocketPath
) -> None:
    settings = Settings(data_dir=tmp_path, chat_limits=GENEROUS, websocket=path)
    app = create_app(settings, channel_actor=ForgetsToAcceptTheSocket)
    with BackgroundServer(app, **uvicorn_options(settings)) as server, httpx.Client() as http:
        http.base_url = httpx.URL(server.url)
        server_id = http.post("/api/servers", json={"name": "Lisbon"}).json()["id"]
        channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
        path = f"/api/servers/{server_id}/channels/{channel.json()['id']}"
        with (
            logged("accord") as records,
            connect(f"{server.ws_url}{path}/connect?username=ada") as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "did not take" in closed.value.rcvd.reason
    assert any("did not accept the socket" in r.getMessage() for r in records.records)
