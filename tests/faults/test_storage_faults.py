"""When storage fails, nobody is told a lie and nothing vanishes silently (items 2, 3, 4):
every refused message gets an error frame with its nonce, HTTP answers 503 in the API's
shape, the log says it once, and the server recovers without a restart."""

import json
import logging
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fault_tools import logged, wait_hibernated
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from accord_app.actors import ids
from accord_app.settings import Settings


def send(ws: ClientConnection, text: str) -> str:
    nonce = uuid.uuid4().hex
    ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))
    return nonce


def answer(ws: ClientConnection) -> dict[str, Any]:
    """The next ack or error frame."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if frame["type"] in ("ack", "error"):
            return frame


def actor_file(settings: Settings, path: str) -> Path:
    channel_id = path.rsplit("/", 1)[-1]
    actor_hex = ids.id_from_name("channels", f"channel:{channel_id}").hex
    folder = settings.actors_dir / "channels" / actor_hex[:2] / actor_hex[2:4]
    return folder / f"{actor_hex}.sqlite3"


def test_a_read_only_data_folder_refuses_each_message_with_its_nonce(
    start: Any, remountable: Any
) -> None:
    running = start(idle_timeout=0.2)
    path = running.channel()
    read_only = remountable(actor_file(running.settings, path).parent)  # the actor's own folder
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        send(ws, "before")
        assert answer(ws)["type"] == "ack"
        wait_hibernated(running.app)  # closing its file; its member stays connected
        read_only(True)
        with logged() as records:
            for _ in range(5):
                nonce = send(ws, "hello")
                error = answer(ws)
                assert (error["type"], error["code"], error["nonce"]) == (
                    "error",
                    "storage_unavailable",
                    nonce,
                )
        errors = records.messages(logging.ERROR)
        assert len(errors) == 1 and "cannot start" in errors[0], errors  # once, not per message
        assert str(actor_file(running.settings, path)) in errors[0]
        history = running.http.get(f"{path}/messages")
        assert history.status_code == 503 and history.json()["code"] == "storage_unavailable"
        read_only(False)
        send(ws, "and now?")
        assert answer(ws)["type"] == "ack"  # recovered, without a restart


def test_a_full_disk_refuses_messages_and_recovers_when_space_is_freed(
    start: Any, small_disk: Any
) -> None:
    running = start(data_dir=small_disk.path / "data")
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        send(ws, "before")
        assert answer(ws)["type"] == "ack"
        filler = small_disk.fill()
        codes, kept = set(), []
        with logged() as records:
            for number in range(30):
                nonce = send(ws, f"while full {number} " + "x" * 1500)
                frame = answer(ws)
                if frame["type"] == "ack":
                    kept.append(frame["message"])  # a page or two may still fit
                    continue
                assert frame["nonce"] == nonce
                codes.add(frame["code"])
        assert codes == {"storage_full"}, codes
        assert 1 <= len(records.messages(logging.WARNING)) <= 2, records.messages()
        created = running.http.post("/api/servers", json={"name": "no room"})
        assert created.status_code == 503 and created.json()["code"] == "storage_full"
        filler.unlink()
        send(ws, "after")
        assert answer(ws)["type"] == "ack"
    texts = [m["message"] for m in running.http.get(f"{path}/messages").json()]
    assert texts == ["after", *reversed(kept), "before"]  # what was refused is not there


HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode = EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
print("holding", flush=True)
time.sleep(30)
"""


def test_a_file_held_by_another_process_is_refused_at_once_and_the_loop_runs_on(
    start: Any,
) -> None:
    running = start(idle_timeout=0.2)
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        send(ws, "first")
        assert answer(ws)["type"] == "ack"
        wait_hibernated(running.app)  # its file is closed
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(actor_file(running.settings, path))],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
            nonce = send(ws, "second")
            started = time.monotonic()
            error = answer(ws)
            assert time.monotonic() - started < 1.0  # not SQLite's wait, on the event loop
            assert (error["code"], error["nonce"]) == ("storage_unavailable", nonce)
            assert "Another process" in error["message"]
            history = running.http.get(f"{path}/messages")
            said = history.json()["message"].lower()
            assert history.status_code == 503 and "another process" in said
            assert running.http.get("/api").status_code == 200
        finally:
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
        send(ws, "third")
        assert answer(ws)["type"] == "ack"


def test_a_second_accord_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "accord_app", "--port", "0", "--data-dir", str(tmp_path)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert first.stdout is not None and "Accord on" in first.stdout.readline()
        second = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert f"{tmp_path} is in use by python -m accord_app" in second.stderr
    finally:
        first.terminate()
        first.wait(10)
        if first.stdout is not None:
            first.stdout.close()


def test_the_cluster_holds_its_folder_and_says_so(tmp_path: Path) -> None:
    from accord_app.cluster import Cluster

    with Cluster(1, "channel", tmp_path, port=0):
        command = [sys.executable, "-m", "accord_app", "--port", "0", "--data-dir", str(tmp_path)]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0
        assert "the Accord cluster on http://" in refused.stderr
        assert "workers share it" in refused.stderr
    assert (tmp_path / "accord.lock").read_text() != ""


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_a_damaged_catalog_is_refused_naming_the_file(tmp_path: Path, damage: str) -> None:
    from accord_app import create_app
    from accord_app.catalog.store import CatalogError

    settings = Settings(data_dir=tmp_path)
    create_app(settings)  # a catalog, and an actor file beside it
    actor = settings.actors_dir / "channels" / "ab" / "cd" / ("abcd" + "0" * 60 + ".sqlite3")
    actor.parent.mkdir(parents=True)
    actor.write_bytes(b"x")
    settings.catalog_path.write_bytes(b"" if damage == "empty" else b"not a database" * 100)
    with pytest.raises(CatalogError, match=str(settings.catalog_path)):
        create_app(settings)


def test_an_emptied_actor_file_is_refused_not_restarted_from_seq_1(start: Any) -> None:
    running = start(idle_timeout=0.2)
    path = running.channel()
    with connect(running.ws_url(path)) as ws:
        json.loads(ws.recv(timeout=5))
        send(ws, "one")
        assert answer(ws)["seq"] == 1
    wait_hibernated(running.app)  # the file is closed, its -wal folded in and gone
    file = actor_file(running.settings, path)
    file.write_bytes(b"")
    with logged() as records, connect(running.ws_url(path)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        history = running.http.get(f"{path}/messages")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "damaged" in closed.value.rcvd.reason
    assert history.status_code == 503 and "damaged" in history.json()["message"]
    assert str(file) not in history.text  # the server's paths are for its operator only
    assert any(str(file) in line and "empty" in line for line in records.messages())
    assert file.read_bytes() == b""  # not started afresh over it


def test_a_corrupt_alarm_index_says_which_file(tmp_path: Path) -> None:
    from accord_app.actors import Runtime, StorageError
    from accord_app.actors.actor import Actor

    index = tmp_path / "counters" / "alarms.sqlite3"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"not a database" * 100)
    with pytest.raises(StorageError, match=str(index)):
        Runtime(tmp_path).namespace("counters", Actor)


def test_an_unreadable_catalog_connection_is_a_503_not_a_500(start: Any) -> None:
    running = start()
    running.settings.catalog_path.write_bytes(b"garbage" * 1000)
    response = running.http.get("/api/servers")
    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(running.settings.catalog_path).execute("SELECT 1 FROM servers")
