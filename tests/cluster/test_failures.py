"""A worker that dies takes only its own channels down, loses nothing it acked, and comes back;
the cluster stops without leaving a process behind."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accord_app.chat.http.announcements import ANNOUNCE_DEADLINE_SECONDS
from accord_app.chat.sharding import Sharding
from accord_app.cluster import Cluster, ClusterError
from accord_app.lab.loadtest import ADMIN_HEADERS

pytestmark = pytest.mark.anyio


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_a_dead_worker_fails_only_its_channels_and_loses_no_acked_message(
    own_cluster: Any,
) -> None:
    running, cluster = own_cluster, own_cluster.cluster
    by_worker = running.channels_on_every_worker()
    victim, survivor = 2, 1
    doomed, spared = by_worker[victim][0], by_worker[survivor][0]
    async with (
        running.connect(running.ws_url(doomed, "ada")) as doomed_ws,
        running.connect(running.ws_url(spared, "bob")) as spared_ws,
    ):
        acked = []
        for number in range(20):
            await doomed_ws.send(f"message {number}")
            acked.append(await running.recv_until(doomed_ws, "ack"))

        cluster.kill(victim)

        response = running.http.get(f"{doomed.path}/messages")
        assert response.status_code == 502
        assert response.json()["code"] == "worker_unavailable"
        assert "Worker 2 is not answering" in response.json()["message"]
        assert response.headers["x-accord-worker"] == "2"
        with pytest.raises(ConnectionClosed):  # the proxy drops the dead worker's members
            await running.recv_until(doomed_ws, "never")
        with pytest.raises(InvalidStatus) as refused:
            async with running.connect(running.ws_url(doomed, "ada")):
                pass
        assert refused.value.response.status_code == 502
        # Everyone else carries on, over the sockets they already had and over new requests.
        await spared_ws.send("still here")
        assert (await running.recv_until(spared_ws, "ack"))["message"] == "still here"
        for worker in (1, 3):
            for channel in by_worker[worker]:
                assert running.http.get(f"{channel.path}/messages").status_code == 200
        # The catalog is every worker's: it answers whichever worker the proxy tries first.
        for _ in range(6):
            assert running.http.get("/api/servers").status_code == 200
        activity = running.http.get(f"/api/servers/{doomed.server_id}/activity").json()
        assert activity[0]["error"]["code"] == "worker_unavailable"

    cluster.restart(victim)
    history = running.http.get(f"{doomed.path}/messages", params={"limit": 50}).json()
    assert [(m["seq"], m["id"]) for m in reversed(history)] == [
        (frame["seq"], frame["id"]) for frame in acked
    ]
    activity = running.http.get(f"/api/servers/{doomed.server_id}/activity").json()
    assert activity == [
        {
            "channel_id": doomed.channel_id,
            "messages": 20,
            "latest": {key: acked[-1][key] for key in history[0]},
            "error": None,
        }
    ]


async def test_server_activity_gathers_channels_from_every_worker(own_cluster: Any) -> None:
    running = own_cluster
    channels = running.one_servers_channels_on_every_worker(12)
    for count, channel in enumerate(channels[:4], start=1):
        async with running.connect(running.ws_url(channel, "ada")) as ws:
            for number in range(count):
                await ws.send(f"{channel.channel_id} {number}")
                await running.recv_until(ws, "ack")
    response = running.http.get(f"/api/servers/{channels[0].server_id}/activity")
    answered_by = int(response.headers["x-accord-worker"])
    here = sum(running.owner(channel) == answered_by for channel in channels)
    remote = len(channels) - here
    assert response.headers["x-accord-actor-calls"] == f"{here} local, {remote} remote"
    activity = response.json()
    assert [entry["channel_id"] for entry in activity] == [c.channel_id for c in channels]
    assert [entry["messages"] for entry in activity] == [1, 2, 3, 4] + [0] * (len(channels) - 4)
    assert activity[3]["latest"]["message"] == f"{channels[3].channel_id} 3"
    assert all(entry["error"] is None for entry in activity)


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    cluster = Cluster(2, Sharding.SERVER, tmp_path / "data", port=0).start()
    pids = [cluster.pid(1), cluster.pid(2), cluster.proxy_pid]
    ports = [cluster.port, *(int(a.rsplit(":", 1)[1]) for a in cluster.addresses)]
    assert all(pid is not None and alive(pid) for pid in pids)
    cluster.stop()
    assert [pid for pid in pids if pid is not None and alive(pid)] == []
    assert all(port_is_free(port) for port in ports)


def read_lines(stream: Any, lines: "Queue[str]") -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def wait_for(lines: "Queue[str]", text: str, seen: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            raise AssertionError(f"no {text!r} in {timeout} s:\n" + "\n".join(seen)) from None
        seen.append(line)
        if text in line:
            return line


@contextlib.contextmanager
def cluster_command(*args: str) -> Iterator[tuple["subprocess.Popen[str]", Queue[str], list[str]]]:
    """`python -m accord_app.cluster --workers 2 --port 0 ARGS...`: the process, its output's
    lines as they come, and those seen so far; killed at the end if still running."""
    command = [sys.executable, "-m", "accord_app.cluster", "--workers", "2", "--port", "0"]
    process = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: Queue[str] = Queue()
    reader = threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        yield process, lines, []
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(5)
        assert process.stdout is not None
        process.stdout.close()


def test_the_command_reports_a_dead_worker_restarts_it_and_stops_cleanly(tmp_path: Path) -> None:
    with cluster_command("--data-dir", str(tmp_path / "data")) as (process, lines, seen):
        url = wait_for(lines, "Accord cluster on", seen).split()[3].rstrip(":")
        pids = {int(wait_for(lines, f"worker {n} ", seen).split()[-1]) for n in (1, 2)}
        wait_for(lines, "Ctrl-C stops everything", seen)
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        assert "was killed by SIGKILL" in wait_for(lines, f"(pid {victim})", seen)
        wait_for(lines, "is back", seen)
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
            assert http.post("/api/servers", json={"name": "after"}).status_code == 201
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, "\n".join(seen)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def test_the_command_restarts_the_hosts_catalog_when_its_postgresql_dies() -> None:
    """--hosts: the cluster's own PostgreSQL, killed, is reported and started again on its
    port, and the workers use it again without a restart of their own."""
    # Outside pytest's 0700 folder: PostgreSQL (another user, as root) must pass through.
    folder = Path(tempfile.mkdtemp(prefix="accord-catalog-dies-"))
    folder.chmod(0o711)
    data = folder / "data"
    try:
        with cluster_command("--hosts", "--data-dir", str(data)) as (process, lines, seen):
            url = wait_for(lines, "Accord cluster on", seen).split()[3].rstrip(":")
            wait_for(lines, "Ctrl-C stops everything", seen)
            pid_file = data / "catalog" / "pgdata" / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0])
            os.kill(postmaster, signal.SIGKILL)
            reported = wait_for(lines, "catalog (pid", seen)
            assert f"catalog (pid {postmaster}) stopped" in reported
            assert "answer 503" in reported
            wait_for(lines, "catalog is back", seen)
            with httpx.Client(base_url=url, trust_env=False, timeout=10) as http:
                assert http.post("/api/servers", json={"name": "after"}).status_code == 201
            process.send_signal(signal.SIGINT)
            assert process.wait(30) == 0, "\n".join(seen)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_second_cluster_on_the_same_ports_is_refused_and_the_first_keeps_going(
    tmp_path: Path,
) -> None:
    with Cluster(1, Sharding.CHANNEL, tmp_path / "first", port=0) as first:
        worker_port = int(first.addresses[0].rsplit(":", 1)[1])
        second = Cluster(
            1, Sharding.CHANNEL, tmp_path / "second", port=0, worker_ports=[worker_port]
        )
        with pytest.raises(ClusterError, match=f"127.0.0.1:{worker_port} is already in use"):
            second.start()
        with httpx.Client(base_url=first.url, trust_env=False) as http:
            assert http.get("/api/servers").status_code == 200
        assert alive(first.pid(1))


def test_an_announcement_reaches_every_worker_and_a_dead_one_costs_only_its_channels(
    own_cluster: Any,
) -> None:
    running = own_cluster
    channels = running.one_servers_channels_on_every_worker(12)
    server_id = channels[0].server_id
    # Ask worker 1 itself: under channel sharding a server-wide path may go to any worker.
    with httpx.Client(
        base_url=running.cluster.worker_url(1), headers=ADMIN_HEADERS, trust_env=False
    ) as worker_1:
        first = worker_1.post(f"/api/servers/{server_id}/announcements", json={"message": "one"})
        assert first.status_code == 200, first.text
        assert (first.json()["delivered"], first.json()["failed"]) == (len(channels), 0)
        running.cluster.kill(3)
        started = time.monotonic()
        second = worker_1.post(f"/api/servers/{server_id}/announcements", json={"message": "two"})
        took = time.monotonic() - started
        running.cluster.restart(3)
    on_3 = {c.channel_id for c in channels if running.owner(c) == 3}
    body = second.json()
    assert (body["delivered"], body["failed"]) == (len(channels) - len(on_3), len(on_3))
    for delivery in body["channels"]:
        if delivery["channel_id"] in on_3:
            assert delivery["message"] is None
            assert "worker 3" in delivery["error"]["message"], delivery
        else:
            assert delivery["error"] is None and delivery["message"]["message"] == "two"
    assert took < ANNOUNCE_DEADLINE_SECONDS + 1, f"the dead worker held the answer {took:.1f} s"
    for channel in channels:
        texts = [m["message"] for m in running.http.get(f"{channel.path}/messages").json()]
        assert texts == (["one"] if channel.channel_id in on_3 else ["two", "one"])


def test_a_stalled_worker_is_named_in_the_announcement_and_the_retry_stores_once(
    own_cluster: Any,
) -> None:
    """SIGSTOP: a worker that accepts connections and never answers. The router must wait
    longer than the fan-out's deadline, or its 504 (naming whichever worker took the request)
    replaces the per-channel answer, and the client's retry stores the text again."""
    running = own_cluster
    channels = running.one_servers_channels_on_every_worker(12)
    server_id = channels[0].server_id
    url = f"/api/servers/{server_id}/announcements"
    key = {"Idempotency-Key": "meetup-at-7"}
    stalled = 3
    on_stalled = {c.channel_id for c in channels if running.owner(c) == stalled}
    os.kill(running.cluster.pid(stalled), signal.SIGSTOP)
    try:
        # The router's health checks (each second, 1 s timeout) stop sending server-wide
        # requests to the stalled worker; its channels' requests still go to it.
        time.sleep(3)
        started = time.monotonic()
        first = running.http.post(url, json={"message": "Meetup at 7"}, headers=key, timeout=40)
        took = time.monotonic() - started
    finally:
        os.kill(running.cluster.pid(stalled), signal.SIGCONT)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["delivered"], body["failed"]) == (len(channels) - len(on_stalled), len(on_stalled))
    for delivery in body["channels"]:
        if delivery["channel_id"] in on_stalled:
            assert delivery["error"]["code"] == "call_timed_out", delivery
            assert f"worker {stalled}" in delivery["error"]["message"], delivery
        else:
            assert delivery["message"]["message"] == "Meetup at 7", delivery
    assert took < ANNOUNCE_DEADLINE_SECONDS + 2, f"the stalled worker held the answer {took:.1f} s"
    retry = running.http.post(url, json={"message": "Meetup at 7"}, headers=key, timeout=40)
    assert (retry.json()["delivered"], retry.json()["failed"]) == (len(channels), 0), retry.text
    for channel in channels:
        texts = [m["message"] for m in running.http.get(f"{channel.path}/messages").json()]
        assert texts == ["Meetup at 7"], (channel, texts)
