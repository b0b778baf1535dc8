"""Each host is a worker in its own network namespace, on its own address, with its own data
folder; they share nothing on disk but reach one catalog on PostgreSQL, and the proxy sends
every channel to the host that placement names. Without namespaces, loopback ports."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cluster_client import Running
from host_tools import HOSTS, need_namespaces, start

from accord_app.cluster import hosts
from accord_app.cluster.__main__ import make_hosts
from accord_app.cluster.hosts import HostError, HostNetwork, ip, loopback_hosts
from accord_app.cluster.ports import free_port

pytestmark = pytest.mark.anyio


def namespace_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_each_host_runs_in_its_namespace_on_its_own_address_and_folder(
    on_hosts: Running, network: HostNetwork
) -> None:
    cluster = on_hosts.cluster
    ours = namespace_of(os.getpid())
    for number in range(1, HOSTS + 1):
        netns = os.stat(f"/run/netns/{network.name(number)}").st_ino
        assert namespace_of(cluster.pid(number)) == netns != ours
        assert cluster.addresses[number - 1] == f"{network.ip_of(number)}:8000"
        assert cluster.worker_data_dir(number) == cluster.data_dir / f"host-{number}"
        # Its address answers from here (the bridge), and it answers as itself.
        answer = httpx.get(f"{cluster.worker_url(number)}/api", trust_env=False)
        assert answer.headers["x-accord-worker"] == str(number)
    # Nothing shared on disk: no host has a catalog file, every one reads the same catalog.
    assert not list(cluster.data_dir.glob("host-*/catalog.sqlite3*"))
    server_id = on_hosts.create_server("Shared by every host")
    for number in range(1, HOSTS + 1):
        servers = httpx.get(f"{cluster.worker_url(number)}/api/servers", trust_env=False).json()
        assert [server["id"] for server in servers] == [server_id]


async def test_a_channel_lives_on_the_host_placement_names_and_only_there(
    on_hosts: Running,
) -> None:
    by_host = on_hosts.channels_on_every_worker()
    for host, channels in by_host.items():
        for channel in channels:
            async with on_hosts.connect(on_hosts.ws_url(channel, "ada")) as ws:
                assert int(ws.response.headers["x-accord-worker"]) == host
                await ws.send("hello")
                assert (await on_hosts.recv_until(ws, "ack"))["seq"] == 1
            answer = on_hosts.http.get(f"{channel.path}/messages")
            assert (answer.status_code, answer.headers["x-accord-worker"]) == (200, str(host))
            # Its messages are in its host's folder, and in no other.
            assert [n for n in range(1, HOSTS + 1) if on_hosts.actor_file(channel, n).exists()] == [
                host
            ]


def test_without_namespaces_hosts_are_loopback_ports_with_folders_of_their_own(
    data_dir: Path,
) -> None:
    hosts = loopback_hosts([free_port("127.0.0.1") for _ in range(2)])
    for running in start(data_dir, hosts):
        [first, second] = running.channels_on_every_worker().values()
        for number, channel in ((1, first[0]), (2, second[0])):
            answer = running.http.get(f"{channel.path}/messages")
            assert (answer.status_code, answer.headers["x-accord-worker"]) == (200, str(number))
            assert running.cluster.worker_data_dir(number) == data_dir / f"host-{number}"
        assert running.cluster.catalog_url is not None
        assert running.cluster.catalog_url.startswith("postgresql://postgres:")
        assert "@127.0.0.1:" in running.cluster.catalog_url


def leftovers(x: int) -> list[str]:
    """The namespaces and links named for the network on 10.231.x.0/24."""
    netns = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    links = [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link").splitlines()]
    return [name for name in netns + links if re.fullmatch(rf"accord-{x}(-\d+)?", name)]


def test_the_command_makes_the_hosts_and_removes_them_on_ctrl_c(data_dir: Path) -> None:
    need_namespaces()
    command = [sys.executable, "-m", "accord_app.cluster", "--workers", "2", "--hosts"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    x = None
    try:
        deadline = time.monotonic() + 60
        while not any("Ctrl-C stops everything" in line for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, seen
            seen.append(process.stdout.readline())
        [x] = {
            int(m) for line in seen for m in re.findall(r"namespace and link accord-(\d+)-", line)
        }
        url = next(line.split()[3].rstrip(":") for line in seen if "Accord cluster on" in line)
        assert len(leftovers(x)) == 2 * 2 + 1  # two namespaces, their links, the bridge
        answer = httpx.post(f"{url}/api/servers", json={"name": "Workshop"}, trust_env=False)
        assert answer.status_code == 201
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, "".join(seen) + rest
        assert leftovers(x) == []
    finally:
        if process.poll() is None:  # SIGTERM stops it as Ctrl-C does: its children too
            process.terminate()
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        if x is not None and leftovers(x):  # a failed run's, removed with its lock gone
            HostNetwork(1, x=x).create().close()


def test_a_network_removes_what_a_dead_run_left_under_its_subnet(tmp_path: Path) -> None:
    need_namespaces()
    script = (
        "import os, sys\n"
        "from accord_app.cluster.hosts import HostNetwork\n"
        "network = HostNetwork(2).create()\n"
        "print(network.x, flush=True)\n"
        "sys.stdin.read()\n"  # until killed
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    x = int(child.stdout.readline())
    child.kill()  # kill -9: no close(), its namespaces and bridge stay
    child.communicate()
    try:
        assert len(leftovers(x)) == 5
        with HostNetwork(3, x=x) as network:  # the lock died with the child: x is free
            assert sorted(leftovers(x)) == sorted(
                [f"accord-{x}"] + [network.name(n) for n in range(1, 4) for _ in range(2)]
            )
        assert leftovers(x) == []
    finally:
        HostNetwork(1, x=x).create().close()  # whatever failed above, nothing stays


def test_two_networks_at_once_never_share_a_subnet() -> None:
    need_namespaces()
    with HostNetwork(1) as first, HostNetwork(1) as second:
        taken = [first.x, second.x]
        assert taken[0] != taken[1]
        with pytest.raises(HostError, match=f"x={taken[0]} is taken"):
            HostNetwork(1, x=taken[0]).create()
    assert [leftovers(x) for x in taken if x is not None] == [[], []]


def test_a_host_network_goes_even_when_it_fails_halfway(monkeypatch: pytest.MonkeyPatch) -> None:
    need_namespaces()
    network = HostNetwork(2)
    used: list[int] = []

    def failing(*args: str, check: bool = True) -> str:
        if args[:2] == ("netns", "add") and args[2].endswith("-2"):
            used.append(network.x or 0)
            raise HostError("made to fail")
        return ip(*args, check=check)

    monkeypatch.setattr(hosts, "ip", failing)
    with pytest.raises(HostError, match="made to fail"):
        network.create()
    assert network.x is None and used
    assert leftovers(used[0]) == []


def test_where_namespaces_are_impossible_the_reason_is_given_and_loopback_is_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert hosts.namespaces_unavailable() == "making network namespaces needs root"
    with contextlib.ExitStack() as cleanup:
        fallback = make_hosts(2, "127.0.0.1", [9001, 9002], cleanup)
    assert fallback == loopback_hosts([9001, 9002])
    assert "loopback ports, not network namespaces: making network" in capsys.readouterr().out
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        need_namespaces()
    monkeypatch.setenv("CI", "true")  # CI runs as root: a skip there would hide a failure
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        need_namespaces()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert hosts.namespaces_unavailable() == "network namespaces are Linux's, and this is darwin"
