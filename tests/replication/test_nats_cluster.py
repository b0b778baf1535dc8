"""The kit's NATS JetStream cluster: real nats-server processes on loopback, three replicas of
a stream, writes acknowledged while a majority is up and refused while it is not."""

import asyncio
import socket
import time
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError

from accord_app.cluster.nats import NatsCluster, NatsError, server_config

pytestmark = pytest.mark.anyio

STREAM = "TEST"
ACK_TIMEOUT = 1.0


async def publish_when_ready(js: JetStreamContext, subject: str, timeout: float = 15.0) -> int:
    """Publish, retrying while the stream elects its leader; the acknowledged sequence."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ack = await js.publish(subject, b"x", timeout=ACK_TIMEOUT)
            return ack.seq
        except (NoStreamResponseError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_three_servers_replicate_and_need_a_majority(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", servers=3) as cluster:
        assert cluster.meta_leader() in {"n1", "n2", "n3"}
        client = await nats.connect(servers=cluster.urls, max_reconnect_attempts=-1)
        try:
            js = client.jetstream()
            await js.add_stream(name=STREAM, subjects=["test.>"], num_replicas=3)
            first = await publish_when_ready(js, "test.a")
            info = await js.stream_info(STREAM)
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2  # a leader and two followers

            cluster.kill(1)  # one of three down: a majority remains
            assert await publish_when_ready(js, "test.a") == first + 1

            cluster.kill(2)  # two of three down: nothing may be acknowledged
            with pytest.raises((nats.errors.TimeoutError, NoStreamResponseError)):
                await js.publish("test.a", b"lost", timeout=ACK_TIMEOUT)

            cluster.restart(2)
            # The refused write was not stored: the next one follows the last acknowledged.
            seq = await publish_when_ready(js, "test.a")
            messages = (await js.stream_info(STREAM)).state.messages
            assert seq == messages == 2 + (seq - first - 1)
        finally:
            await client.close()


async def test_a_paused_server_is_silent_until_resumed(tmp_path: Path) -> None:
    async with NatsCluster(tmp_path / "nats", servers=1) as cluster:
        client = await nats.connect(servers=cluster.urls, max_reconnect_attempts=-1)
        try:
            js = client.jetstream()
            await js.add_stream(name=STREAM, subjects=["test.>"], num_replicas=1)
            await publish_when_ready(js, "test.a")
            cluster.pause(1)
            with pytest.raises(nats.errors.TimeoutError):
                await js.publish("test.a", b"x", timeout=0.3)
            cluster.resume(1)
            assert await publish_when_ready(js, "test.a") >= 2
        finally:
            await client.close()


def test_the_config_fsyncs_every_write_and_routes_to_the_others(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", servers=3)
    config = server_config(2, "127.0.0.1", cluster.ports, cluster.ips, tmp_path)
    assert "sync_interval: always" in config
    assert config.count("nats-route://") == 2  # the other two, not itself
    assert f':{cluster.ports[1].cluster}"' not in config.split("routes:")[1]


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path / "nats", servers=3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", cluster.ports[1].client))
        squatter.listen()
        with pytest.raises(
            NatsError, match=r"NATS server 2 cannot listen on 127.0.0.1:\d+ \(its client port\)"
        ):
            cluster.start()
    assert not any(cluster.running(n) for n in (1, 2, 3))  # server 1 was stopped again


def test_a_folder_it_cannot_write_is_named(tmp_path: Path) -> None:
    (tmp_path / "nats").mkdir()
    (tmp_path / "nats" / "nats-1").write_text("a file where the server's folder should be")
    with pytest.raises(NatsError, match=r"NATS server 1 cannot keep its files in .*nats-1"):
        NatsCluster(tmp_path / "nats", servers=3).start()
