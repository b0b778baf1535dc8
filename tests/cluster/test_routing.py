"""The proxy routes every request for an actor to the one worker that hosts it, by the same key
and the same hash as the app, in all three sharding modes; catalog requests go anywhere."""

from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from accord_app.chat.sharding import Sharding

pytestmark = pytest.mark.anyio


def worker_of(response: httpx.Response) -> int:
    return int(response.headers["x-accord-worker"])


async def test_every_request_for_a_channel_reaches_the_worker_its_key_names(
    running: Any,
) -> None:
    if running.mode == Sharding.GLOBAL:
        channels = running.create_channels(3) + running.create_channels(3)
    else:  # each in its own server, until both workers host some
        channels = [c for found in running.channels_on_every_worker(3).values() for c in found]
    hosts = set()
    for channel in channels:
        expected = running.owner(channel)
        hosts.add(expected)
        # The worker refuses a channel it does not host (421), so a 200 is the app agreeing.
        for _ in range(3):
            response = running.http.get(f"{channel.path}/messages")
            assert response.status_code == 200, response.text
            assert worker_of(response) == expected
        response = running.http.get(f"{channel.path}/activity")
        assert (response.status_code, worker_of(response)) == (200, expected)
        async with running.connect(running.ws_url(channel, "ada")) as ws:
            assert int(ws.response.headers["x-accord-worker"]) == expected
            await ws.send("hello")
            assert (await running.recv_until(ws, "ack"))["seq"] == 1
    assert len(hosts) == (1 if running.mode == Sharding.GLOBAL else 2), hosts


def test_channels_of_one_server_share_a_worker_only_when_sharded_by_server_or_globally(
    running: Any,
) -> None:
    # 20 channels of one server all on one of two workers by chance: 2 in a million.
    channels = running.create_channels(20)
    workers = {worker_of(running.http.get(f"{c.path}/messages")) for c in channels}
    assert len(workers) == (2 if running.mode == Sharding.CHANNEL else 1), workers


def test_catalog_requests_go_to_any_worker(running: Any) -> None:
    workers = {worker_of(running.http.get("/api/servers")) for _ in range(6)}
    assert workers == {1, 2}


def test_a_server_wide_request_goes_to_the_actor_that_hosts_the_server_when_there_is_one(
    running: Any,
) -> None:
    [channel] = running.create_channels(1)
    seen = {
        worker_of(running.http.get(f"/api/servers/{channel.server_id}/activity")) for _ in range(6)
    }
    if running.mode == Sharding.CHANNEL:
        assert seen == {1, 2}  # no single actor: any worker gathers from all
    else:
        assert seen == {running.owner(channel)}


async def test_a_request_sent_straight_to_the_wrong_worker_is_refused(running: Any) -> None:
    [channel] = running.create_channels(1)
    owner = running.owner(channel)
    wrong = 3 - owner
    existed = running.actor_file(channel).exists()  # a fresh channel's, unless sharded globally
    with httpx.Client(base_url=running.cluster.worker_url(wrong), trust_env=False) as direct:
        response = direct.get(f"{channel.path}/messages")
        assert response.status_code == 421
        assert response.json()["code"] == "wrong_worker"
        assert f"hosted by worker {owner}" in response.json()["message"]
        assert worker_of(response) == wrong
        assert direct.get(f"{channel.path}/activity").status_code == 421
    with pytest.raises(InvalidStatus) as refused:
        async with running.connect(
            running.ws_url(channel, "ada", running.cluster.worker_url(wrong))
        ):
            pass
    assert refused.value.response.status_code == 421
    assert b"wrong_worker" in refused.value.response.body
    # The wrong worker never opened (so never created) the channel's actor.
    assert running.actor_file(channel).exists() == existed
    with httpx.Client(base_url=running.cluster.worker_url(owner), trust_env=False) as direct:
        assert direct.get(f"{channel.path}/messages").status_code == 200


async def test_an_id_written_in_upper_case_is_a_400_wherever_it_lands(running: Any) -> None:
    """Caddy hashes the ids' text: "ABC…" would reach another worker than "abc…". So the app
    refuses any other spelling of an id, on every worker, before it would answer 421."""
    [channel] = running.create_channels(1)
    shouted = f"/api/servers/{channel.server_id.upper()}/channels/{channel.channel_id.upper()}"
    for path in [f"{shouted}/messages", f"/api/servers/{channel.server_id}/channels/"
                 f"{channel.channel_id.replace('-', '')}/messages"]:  # fmt: skip
        for _ in range(4):  # whichever worker the text hashes to
            response = running.http.get(path)
            assert response.status_code == 400, response.text
            assert response.json()["code"] in {"invalid_server_id", "invalid_channel_id"}
    assert running.http.get(f"/api/servers/{channel.server_id.upper()}").status_code == 400
    with pytest.raises(InvalidStatus) as refused:
        async with running.connect(running.ws_url(channel, "ada").replace(
            channel.channel_id, channel.channel_id.upper())):  # fmt: skip
            pass
    assert refused.value.response.status_code == 400
    assert running.http.get(f"{channel.path}/messages").status_code == 200


def test_a_rebound_host_name_is_refused_through_the_router(running: Any) -> None:
    """Caddy passes the Host header on; every worker checks it (accord_app/web/middleware.py)."""
    [channel] = running.create_channels(1)
    for path in ["/api/servers", f"{channel.path}/messages"]:
        response = running.http.get(path, headers={"Host": "rebound.example:8787"})
        assert response.status_code == 421, response.text
        assert response.json()["code"] == "host_not_allowed"
        assert running.http.get(path, headers={"Host": "localhost:8787"}).status_code == 200
