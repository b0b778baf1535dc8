"""The README's commands do what it says: `make lab` serves the chapters, `make run` the app."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from accord_app.cluster.ports import free_port
from accord_app.settings import PROJECT_DIR


@contextmanager
def make(target: str, *args: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run `make target` in its own process group, and stop the whole group afterwards."""
    process = subprocess.Popen(
        ["make", "--no-print-directory", target, *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(url: str, timeout: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_make_lab_serves_the_chapters() -> None:
    port = free_port()
    lab_args = f"LAB_ARGS=--no-browser --port={port} --ServerApp.token=test-token"
    with make("lab", lab_args):
        page = wait_for(f"http://127.0.0.1:{port}/lab?token=test-token")
        assert page.status_code == 200
        listing = httpx.get(f"http://127.0.0.1:{port}/api/contents/notebooks?token=test-token")
        opened = httpx.get(f"http://127.0.0.1:{port}/?token=test-token", follow_redirects=True)
        deck = httpx.get(
            f"http://127.0.0.1:{port}/api/contents/slides/accord.ipynb?token=test-token"
        )
    assert urlsplit(str(opened.url)).path == "/lab/tree/notebooks"
    assert deck.status_code == 200
    names = {entry["name"] for entry in listing.json()["content"]}
    chapters = {path.name for path in (PROJECT_DIR / "notebooks").glob("*.ipynb")}
    assert chapters and chapters <= names
    assert "solutions" in names


def test_make_run_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    env = {"ACCORD_PORT": str(port), "ACCORD_DATA_DIR": str(tmp_path)}
    with make("run", env=env):
        assert wait_for(f"http://127.0.0.1:{port}/api").json() == {"api": True}
        created = httpx.post(f"http://127.0.0.1:{port}/api/servers", json={"name": "Make run"})
    assert created.status_code == 201
    assert (tmp_path / "catalog.sqlite3").exists()
