"""`python -m accord_app.cluster --hosts 3 --replicated` (what `make replicated` runs): three
hosts, each with a worker and a NATS server, which a message reaches before its ack; Ctrl-C
stops every process, the NATS servers included."""

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_command import ready_cluster
from websockets.asyncio.client import connect

pytestmark = pytest.mark.anyio


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's folders: the cluster's PostgreSQL runs as a user of its own (as root)."""
    folder = Path(tempfile.mkdtemp(prefix="accord-replicated-"))
    folder.chmod(0o711)
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def nats_servers_of(data_dir: Path) -> list[int]:
    """Pids of the nats-server processes whose config lies in `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "nats-server" in command and str(data_dir) in command:
                found.append(int(entry.name))
    return found


async def test_the_command_runs_a_replicated_cluster_and_stops_it(data_dir: Path) -> None:
    args = ["--hosts", "3", "--replicated", "--port", "0", "--data-dir", str(data_dir)]
    with ready_cluster(*args) as (process, seen):
        assert any("NATS JetStream, 3 servers" in line for line in seen), seen
        assert len(nats_servers_of(data_dir)) == 3
        url = next(line.split()[3].rstrip(":") for line in seen if "Accord cluster on" in line)
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
            server_id = http.post("/api/servers", json={"name": "Workshop"}).json()["id"]
            channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
            path = f"/api/servers/{server_id}/channels/{channel.json()['id']}"
        ws_url = url.replace("http://", "ws://") + f"{path}/connect?username=ada"
        async with connect(ws_url, proxy=None) as ws:
            await ws.send(json.dumps({"type": "message", "message": "hi", "nonce": "1"}))
            while (frame := json.loads(await ws.recv()))["type"] not in ("ack", "error"):
                pass
            assert frame["type"] == "ack", frame
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, "".join(seen) + rest
        assert nats_servers_of(data_dir) == []
