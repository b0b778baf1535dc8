"""The frontend on a cluster: a worker that dies shows in its channels' pages, which say why and
come back by themselves when it does; the other channels never notice."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect

from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster import Cluster
from accord_app.cluster.placement import Placement
from accord_app.lab.loadtest import LIFTED_LIMITS

if TYPE_CHECKING:
    from conftest import Pages

pytestmark = pytest.mark.browser


def channel_on(cluster: Cluster, http: httpx.Client, worker: int) -> tuple[str, str]:
    """A new channel (in its own server) that `worker` hosts."""
    placement = Placement(cluster.addresses, 1)
    for number in range(100):
        server_id = http.post("/api/servers", json={"name": f"Server {number}"}).json()["id"]
        channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
        channel_id = channel.json()["id"]
        if placement.owner(shard_key(Sharding.CHANNEL, server_id, channel_id)) == worker:
            return server_id, channel_id
    raise AssertionError(f"no channel landed on worker {worker}")


def say(page: Any, text: str) -> None:
    composer = page.get_by_label("Message", exact=True)
    composer.fill(text)
    composer.press("Enter")


def test_a_dead_worker_shows_in_its_channels_and_they_come_back(
    tmp_path: Path, pages: "Pages"
) -> None:
    with (
        Cluster(2, "channel", tmp_path / "data", port=0, env=LIFTED_LIMITS) as cluster,
        httpx.Client(base_url=cluster.url, trust_env=False, timeout=10) as http,
    ):
        doomed = channel_on(cluster, http, 2)
        spared = channel_on(cluster, http, 1)
        pages_by_channel = {}
        for name, (server_id, channel_id) in {"doomed": doomed, "spared": spared}.items():
            url = f"{cluster.url}/#/servers/{server_id}/channels/{channel_id}"
            page = pages.open(url, username=f"{name} reader")
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
            pages_by_channel[name] = page

        cluster.kill(2)
        doomed_page = pages_by_channel["doomed"]
        expect(doomed_page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        expect(doomed_page.locator("#connection-short")).to_contain_text(
            "Worker 2 is not answering"
        )
        say(doomed_page, "sent while worker 2 was down")  # waits in the page's outbox
        spared_page = pages_by_channel["spared"]
        say(spared_page, "the other worker still answers")
        expect(spared_page.locator("#message-list .message-text")).to_have_text(
            ["the other worker still answers"]
        )
        expect(spared_page.locator("#connection")).to_have_attribute("data-state", "connected")

        cluster.restart(2)
        expect(doomed_page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=20_000
        )
        expect(doomed_page.locator("#message-list .message-text")).to_have_text(
            ["sent while worker 2 was down"]
        )
        expect(doomed_page.locator("#message-list .pending")).to_have_count(0)
        history = http.get(f"/api/servers/{doomed[0]}/channels/{doomed[1]}/messages").json()
        assert [message["message"] for message in history] == ["sent while worker 2 was down"]
    pages.assert_clean()
