"""GET /metrics, parsed by prometheus_client's own parser: every metric is there, moves when
its event happens, and keeps its labels bounded (an actor class, a code, an outcome, never a
channel or a user). Real servers on loopback, real WebSocket clients, a real Caddy in front of
real workers for the calls across workers and the proxy's own numbers."""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from accord_app import Settings, create_app
from accord_app.actors import Actor, Runtime
from accord_app.actors.natslog import NatsLog
from accord_app.app import uvicorn_options
from accord_app.chat.cost import MessageCost
from accord_app.chat.ratelimit import ChatLimits
from accord_app.chat.sharding import Sharding
from accord_app.cluster import Cluster
from accord_app.cluster.nats import NatsCluster
from accord_app.lab.loadtest import LIFTED_LIMITS
from accord_app.lab.server import BackgroundServer
from accord_app.observe.metrics import Metrics
from accord_app.settings import WebSocketPath
from accord_app.web.middleware import RequestLimits

pytestmark = pytest.mark.anyio
HTTP_TIMEOUT = 10.0
RECV_TIMEOUT = 5.0
# The scrapes come from another loopback address than the test's own requests, so they pay
# from another budget than the one the test empties on purpose.
SCRAPER_ADDRESS = "127.0.0.2"
# Every metric the app serves, by family name (a counter's samples add _total).
FAMILIES = {
    "accord_actors_awake",
    "accord_actors_hibernated",
    "accord_actor_wakeups",
    "accord_actor_hibernations",
    "accord_actor_evictions",
    "accord_actor_resets",
    "accord_actor_alarms",
    "accord_actor_overloads",
    "accord_actor_turn_seconds",
    "accord_actor_mailbox_depth",
    "accord_actor_mailbox_depth_max",
    "accord_actor_commits",
    "accord_actor_commit_turns",
    "accord_actor_commit_writes",
    "accord_actor_fsync_seconds",
    "accord_websockets_open",
    "accord_websocket_frames",
    "accord_websocket_bytes",
    "accord_websocket_refused_frames",
    "accord_websocket_refused_connections",
    "accord_http_refused_connections",
    "accord_rate_limited",
    "accord_remote_call_seconds",
    "accord_replica_append_seconds",
    "accord_replica_append_failures",
    "accord_replica_epochs_opened",
    "accord_replica_fences",
}
# The only labels a sample may carry, and what their values may be.
LABELS: dict[str, Callable[[str], bool]] = {
    "actor_class": lambda value: value in {"ChannelActor", "Counter"},
    "code": lambda value: re.fullmatch(r"[a-z_]{1,40}", value) is not None,
    "outcome": lambda value: (
        value in {"ok", "failed", "timed_out", "unreachable", "refused", "cancelled"}
    ),
    "what": lambda value: value in {"http_request", "chat_frame"},
    "direction": lambda value: value in {"in", "out"},
    "le": lambda value: True,  # a histogram's bucket bounds
}


class Scrape:
    """One scrape of /metrics: its samples, by name, with their labels."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = [s for family in self.families.values() for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` that carry these labels (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def check_labels(self, secrets: list[str]) -> None:
        for sample in self.samples:
            for label, value in sample.labels.items():
                assert label in LABELS and LABELS[label](value), (sample.name, label, value)
                assert not any(secret in value for secret in secrets), (sample.name, value)


def scrape(url: str) -> Scrape:
    transport = httpx.HTTPTransport(local_address=SCRAPER_ADDRESS)
    with httpx.Client(transport=transport, trust_env=False, timeout=HTTP_TIMEOUT) as http:
        response = http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


@contextlib.contextmanager
def serve(tmp_path: Path, **settings: Any) -> Iterator[tuple[str, httpx.Client, Any]]:
    chosen = Settings(data_dir=tmp_path / "data", **settings)
    app = create_app(chosen)
    with (
        BackgroundServer(app, **uvicorn_options(chosen)) as server,
        httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT, trust_env=False) as http,
    ):
        yield server.url, http, app


def new_channel(http: httpx.Client) -> tuple[str, str]:
    server = http.post("/api/servers", json={"name": "Workshop"})
    assert server.status_code == 201, server.text
    server_id = server.json()["id"]
    channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
    assert channel.status_code == 201, channel.text
    return server_id, channel.json()["id"]


def ws_url(url: str, server_id: str, channel_id: str, username: str) -> str:
    base = url.replace("http://", "ws://")
    return f"{base}/api/servers/{server_id}/channels/{channel_id}/connect?username={username}"


def ws_connect(uri: str, **options: Any) -> connect:
    return connect(uri, compression=None, proxy=None, open_timeout=5, **options)


async def recv_until(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(RECV_TIMEOUT):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


@pytest.mark.parametrize("path", [path.value for path in WebSocketPath])
async def test_every_metric_is_served_and_moves_with_its_event(tmp_path: Path, path: str) -> None:
    limits = ChatLimits(burst=6, messages_per_second=0.5, client_connections=2)
    with serve(
        tmp_path,
        websocket=WebSocketPath(path),
        idle_timeout=1.5,  # long enough not to sleep between two steps of the test
        chat_limits=limits,
        request_limits=RequestLimits(per_second=2, burst=40),
    ) as (url, http, _):
        first = scrape(url)
        assert set(first.families) >= FAMILIES, FAMILIES - set(first.families)
        assert first.value("accord_actors_awake", actor_class="ChannelActor") == 0

        server_id, channel_id = new_channel(http)
        async with contextlib.AsyncExitStack() as stack:
            alice, bob = [
                await stack.enter_async_context(ws_connect(ws_url(url, server_id, channel_id, n)))
                for n in ("alice", "bob")
            ]
            await recv_until(alice, "presence_diff")  # bob's join is done
            joined = scrape(url)
            assert joined.value("accord_actor_wakeups_total", actor_class="ChannelActor") == 1
            assert joined.value("accord_actors_awake", actor_class="ChannelActor") == 1
            assert joined.value("accord_websockets_open", actor_class="ChannelActor") == 2

            text = "héllo, metrics"  # not ASCII: bytes are UTF-8 bytes, not characters
            await alice.send(text)
            await recv_until(alice, "ack")
            await recv_until(bob, "message")
            sent = scrape(url)

            def moved(name: str, **labels: str) -> float:
                return sent.value(name, **labels) - joined.value(name, **labels)

            frames, payload = "accord_websocket_frames_total", "accord_websocket_bytes_total"
            assert moved(frames, direction="in") == 1
            assert moved(payload, direction="in") == len(text.encode())
            # The ack to alice and the message to both of them.
            assert moved(frames, direction="out") == 3
            assert moved(payload, direction="out") > 3 * len(text.encode())
            assert moved("accord_actor_turn_seconds_count") >= 1
            assert moved("accord_actor_commits_total", outcome="ok") >= 1
            assert moved("accord_actor_commit_turns_sum") >= 1
            assert moved("accord_actor_commit_writes_sum") >= 1  # the INSERT
            assert moved("accord_actor_fsync_seconds_count") >= 1
            assert moved("accord_actor_fsync_seconds_sum") > 0

            await alice.send(b"\x00binary")
            assert (await recv_until(alice, "error"))["code"] == "binary_frame"
            refused = scrape(url)
            assert refused.value("accord_websocket_refused_frames_total", code="binary_frame") == 1

            # Over the connection's burst: the next frames are refused as rate_limited.
            for number in range(limits.burst):
                await alice.send(f"flood {number}")
            await recv_until(alice, "error")
            limited = scrape(url)
            assert limited.value("accord_rate_limited_total", what="chat_frame") >= 1
            assert limited.value("accord_websocket_refused_frames_total", code="rate_limited") >= 1

            # A third connection from this address, and a page of another origin.
            with pytest.raises(InvalidStatus):
                async with ws_connect(ws_url(url, server_id, channel_id, "carol")):
                    pass
            with pytest.raises(InvalidStatus):
                origin = {"origin": "http://elsewhere.example"}
                async with ws_connect(ws_url(url, "x", "y", "eve"), additional_headers=origin):
                    pass
            refusals = scrape(url)
            for code in ("too_many_connections", "origin_not_allowed"):
                assert refusals.value("accord_websocket_refused_connections_total", code=code) == 1

        # HTTP: an unknown Host name is refused before the app; then the request budget runs out.
        assert http.get("/api", headers={"host": "rebound.example"}).status_code == 421
        statuses = [http.get("/api/servers").status_code for _ in range(41)]
        assert 429 in statuses, statuses
        after = scrape(url)
        moved_421 = after.value("accord_http_refused_connections_total", code="host_not_allowed")
        assert (
            moved_421
            - first.value("accord_http_refused_connections_total", code="host_not_allowed")
            == 1
        )
        assert after.value("accord_rate_limited_total", what="http_request") == statuses.count(429)

        # Both gone: the actor hibernates, its sockets are closed.
        wait_until(lambda: scrape(url).value("accord_actors_awake") == 0, "a hibernation")
        asleep = scrape(url)
        assert asleep.value("accord_actors_hibernated", actor_class="ChannelActor") == 1
        assert asleep.value("accord_actor_hibernations_total", actor_class="ChannelActor") >= 1
        assert asleep.value("accord_websockets_open", actor_class="ChannelActor") == 0
        asleep.check_labels([server_id, channel_id, "alice", "bob", "127.0.0"])


async def test_the_mailbox_depth_shows_a_queue_while_it_lasts(tmp_path: Path) -> None:
    """Each message's turn takes 0.3 s: four sent at once queue up behind the first."""
    with serve(tmp_path, message_cost=MessageCost(ms=300)) as (url, http, _):
        server_id, channel_id = new_channel(http)
        names = ["ada", "bo", "cy", "di"]
        async with contextlib.AsyncExitStack() as stack:
            members = [
                await stack.enter_async_context(
                    ws_connect(ws_url(url, server_id, channel_id, name))
                )
                for name in names
            ]
            await asyncio.gather(
                *(ws.send(f"from {n}") for ws, n in zip(members, names, strict=True))
            )
            deepest, total = 0.0, 0.0
            acks = asyncio.gather(*(recv_until(ws, "ack") for ws in members))
            while not acks.done():
                now = await asyncio.to_thread(scrape, url)
                deepest = max(deepest, now.value("accord_actor_mailbox_depth_max"))
                total = max(total, now.value("accord_actor_mailbox_depth"))
                await asyncio.sleep(0.05)
            await acks
            assert deepest >= 2 and total >= 2, (deepest, total)
            done = await asyncio.to_thread(scrape, url)
            assert done.value("accord_actor_mailbox_depth_max") == 0
            assert done.value("accord_actor_turn_seconds_sum") >= 4 * 0.3


async def test_metrics_off_serves_nothing_and_observes_nothing(tmp_path: Path) -> None:
    with serve(tmp_path, metrics=False) as (_, http, app):
        assert http.get("/metrics").status_code == 404
        assert not app.state.runtime.observers.active


class Counter(Actor):
    async def add(self) -> int:
        value: int = (self.storage.get("n") or 0) + 1
        self.storage.put("n", value)
        return value

    async def wait(self, gate: asyncio.Event) -> None:
        await gate.wait()

    async def set_alarm(self) -> None:
        self.storage.set_alarm(time.time())

    async def alarm(self) -> None:
        self.storage.put("rang", True)


async def test_the_replicated_log_is_counted(tmp_path: Path) -> None:
    """A runtime on a real NATS cluster: its appends timed, the epochs it opens, its copy
    fenced by another host's epoch, and an append no majority answers."""
    with NatsCluster(tmp_path / "nats", servers=3) as cluster:
        logs = [NatsLog(cluster.urls, timeout=1.0) for _ in range(2)]
        for log in logs:
            await log.connect()
        runtimes = [
            Runtime(tmp_path / f"host-{n}", replication=log, replica_name=str(n))
            for n, log in enumerate(logs, 1)
        ]
        metrics = [Metrics(), Metrics()]  # each host's
        detach = [one.attach(runtime) for one, runtime in zip(metrics, runtimes, strict=True)]
        try:
            counters = [runtime.namespace("counters", Counter) for runtime in runtimes]
            stubs = [ns.get(ns.id_from_name("a")) for ns in counters]

            def now(name: str, host: int = 1) -> float:
                body, _ = metrics[host - 1].exposition(None)
                return Scrape(body.decode()).value(name, actor_class="Counter")

            for _ in range(3):
                await stubs[0].add()
            assert now("accord_replica_epochs_opened_total") == 1
            assert now("accord_replica_append_seconds_count") == 3
            assert now("accord_replica_fences_total") == 0
            await stubs[1].add()  # host 2 opens a newer epoch: host 1's copy is fenced
            wait_for = time.monotonic() + 10
            while now("accord_replica_fences_total") == 0:
                assert time.monotonic() < wait_for, "the fence was not counted"
                await asyncio.sleep(0.05)
            cluster.kill(2)
            cluster.kill(3)
            with pytest.raises(Exception, match="majority"):
                await stubs[1].add()
            assert now("accord_replica_append_failures_total", host=2) == 1
            assert now("accord_replica_append_failures_total") == 0
            assert now("accord_replica_epochs_opened_total", host=2) == 1
        finally:
            for stop in detach:
                stop()
            for runtime in runtimes:
                await runtime.close()
            for log in logs:
                await log.close()


async def test_evictions_overloads_alarms_and_failed_commits_are_counted(tmp_path: Path) -> None:
    """What the chat's server does not do on its own, through the runtime that the app serves:
    the same Metrics, on a Runtime with one actor awake at most and a short mailbox."""
    failing = threading.Event()

    def fsync(path: Path) -> None:
        if failing.is_set():
            raise OSError(5, "injected fsync failure")

    runtime = Runtime(tmp_path, max_live=1, max_queue=1, fsync=fsync)
    metrics = Metrics()
    detach = metrics.attach(runtime)
    counters = runtime.namespace("counters", Counter)
    first, second = counters.get(counters.new_unique_id()), counters.get(counters.new_unique_id())

    def now() -> Scrape:
        body, _ = metrics.exposition(None)
        return Scrape(body.decode())

    await first.add()
    await second.add()  # one actor awake at most: the first is evicted
    assert now().value("accord_actor_evictions_total", actor_class="Counter") == 1
    assert now().value("accord_actors_hibernated", actor_class="Counter") == 1

    gate = asyncio.Event()
    waiting = second.wait(gate)
    with pytest.raises(Exception, match="events waiting"):
        await second.add()
    gate.set()
    await waiting
    assert now().value("accord_actor_overloads_total", actor_class="Counter") == 1

    await second.set_alarm()
    wait_for = time.monotonic() + 10
    while now().value("accord_actor_alarms_total") == 0:
        assert time.monotonic() < wait_for, "the alarm never rang"
        await asyncio.sleep(0.05)

    failing.set()
    with pytest.raises(Exception, match="not confirmed durable"):
        await second.add()
    failed = now()
    assert failed.value("accord_actor_commits_total", actor_class="Counter", outcome="failed") == 1
    assert failed.value("accord_actor_resets_total", actor_class="Counter") >= 1
    failed.check_labels([first.id.hex, second.id.hex])
    detach()
    await runtime.close()


# -- the cluster ---------------------------------------------------------------------------------


def test_calls_across_workers_and_the_proxy_are_counted(tmp_path: Path) -> None:
    """Two workers behind the real Caddy: a server-wide question asks channels on both, so the
    worker that answers calls the other; with that one killed, the calls fail, and are counted
    as such; Caddy's own metrics count the requests, and the 502s for the dead worker."""
    with (
        Cluster(2, Sharding.CHANNEL, tmp_path / "data", port=0, env=LIFTED_LIMITS) as cluster,
        httpx.Client(base_url=cluster.url, timeout=HTTP_TIMEOUT, trust_env=False) as http,
    ):
        targets = cluster.scrape_targets()
        workers = [f"http://{address}" for address in targets["workers"]]
        proxy = f"http://{targets['proxy'][0]}"
        server_id = http.post("/api/servers", json={"name": "Workshop"}).json()["id"]
        # 12 channels of one server all on one of two workers: once in 2048 runs.
        for number in range(12):
            created = http.post(
                f"/api/servers/{server_id}/channels", json={"name": f"room {number}"}
            )
            assert created.status_code == 201, created.text

        def calls(outcome: str) -> float:
            name = "accord_remote_call_seconds_count"
            return sum(scrape(worker).value(name, outcome=outcome) for worker in workers)

        assert calls("ok") == 0
        answer = http.get(f"/api/servers/{server_id}/activity")
        assert answer.status_code == 200, answer.text
        assert calls("ok") >= 1
        for worker in workers:
            scrape(worker).check_labels([server_id, cluster.router_secret])

        caddy = scrape(proxy)
        served = caddy.value("caddy_http_request_duration_seconds_count", server="accord")
        assert served >= 14, served  # the requests above, through the proxy
        os.kill(cluster.pid(2), signal.SIGKILL)
        answer = http.get(f"/api/servers/{server_id}/activity")
        assert answer.status_code == 200, answer.text  # each channel says it is unavailable
        survivor = scrape(workers[0])
        assert survivor.value("accord_remote_call_seconds_count", outcome="refused") >= 1
        # The proxy answered those calls' requests for the dead worker's channels with 502s.
        failed = scrape(proxy).value("caddy_http_request_duration_seconds_count", code="502")
        assert failed >= 1, failed


def read_lines(stream: IO[str], lines: "Queue[str]") -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def test_the_cluster_command_prints_its_scrape_targets(tmp_path: Path) -> None:
    """`python -m accord_app.cluster --metrics`: a Prometheus scrape config whose every target
    answers /metrics, the workers with Accord's numbers, the proxy with Caddy's."""
    command = [sys.executable, "-m", "accord_app.cluster", "--workers", "2", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--metrics", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: Queue[str] = Queue()
    reader = threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not seen or "Ctrl-C stops everything" not in seen[-1]:
            try:
                seen.append(lines.get(timeout=30))
            except Empty:
                raise AssertionError("\n".join(seen)) from None
        jobs = dict(re.findall(r"job_name: (\S+)\n.*\n.*targets: \[(.*)\]", "\n".join(seen)))
        assert set(jobs) == {"accord-workers", "accord-proxy"}, seen
        targets = {job: re.findall(r"'([^']+)'", found) for job, found in jobs.items()}
        assert len(targets["accord-workers"]) == 2 and len(targets["accord-proxy"]) == 1
        for worker in targets["accord-workers"]:
            assert "accord_actor_turn_seconds" in scrape(f"http://{worker}").families
        proxy = scrape(f"http://{targets['accord-proxy'][0]}")
        assert "caddy_http_request_duration_seconds" in proxy.families
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, "\n".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(5)
        process.stdout.close()
