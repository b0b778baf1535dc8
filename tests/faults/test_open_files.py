"""One client cannot take the server down by waking thousands of actors (item 1): with the
common limit of 1024 open files, reading 1200 channels' history leaves the catalog answering
throughout, and nothing answers 500."""

import concurrent.futures
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from accord_app.cluster.ports import free_port

CHANNELS = 1200  # more actors than the 1024 open files allow, even at one file each


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))  # soft and hard: no way around


def test_reading_1200_channels_with_1024_open_files_breaks_nothing(tmp_path: Path) -> None:
    port = str(free_port("127.0.0.1"))
    command = [sys.executable, "-m", "accord_app", "--port", port, "--data-dir", str(tmp_path)]
    # 1200 creations from one address in seconds: what the request budget exists to stop.
    lifted = {"ACCORD_CLIENT_REQUEST_RATE": "1000000", "ACCORD_CLIENT_REQUEST_BURST": "1000000"}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=limit_open_files, env={**os.environ, **lifted},
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert "Accord on" in server.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe open
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            deadline = time.monotonic() + 30
            while True:  # "Accord on" is printed just before uvicorn listens
                try:
                    http.get("/api")
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the server did not start listening"
                    time.sleep(0.1)
            server_id = http.post("/api/servers", json={"name": "Big"}).json()["id"]
            paths = []
            for number in range(CHANNELS):
                channel = http.post(
                    f"/api/servers/{server_id}/channels", json={"name": f"channel {number}"}
                )
                paths.append(f"/api/servers/{server_id}/channels/{channel.json()['id']}")
        statuses: list[int] = []
        catalog: list[int] = []
        done = threading.Event()

        def poll_catalog() -> None:
            with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
                while not done.is_set():
                    catalog.append(http.get("/api/servers").status_code)
                    time.sleep(0.02)

        poller = threading.Thread(target=poll_catalog)
        poller.start()
        limits = httpx.Limits(max_connections=40)
        with (
            httpx.Client(base_url=url, timeout=60, trust_env=False, limits=limits) as http,
            concurrent.futures.ThreadPoolExecutor(40) as pool,
        ):
            for status in pool.map(lambda p: http.get(f"{p}/messages").status_code, paths):
                statuses.append(status)
        done.set()
        poller.join()
        assert 500 not in statuses and set(statuses) <= {200, 503}, set(statuses)
        assert statuses.count(200) > CHANNELS * 0.9
        assert catalog and set(catalog) == {200}, set(catalog)
    finally:
        server.terminate()
        server.wait(20)
        if server.stdout is not None:
            server.stdout.close()
