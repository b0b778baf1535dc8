"""The inspector (/inspect) in a real (headless) Chromium: actors waking and hibernating, a
mailbox growing under load, a host of a cluster dying, and the page refused to a client off
this machine. Every test ends with pages.assert_clean(): no request left the machine.

UPDATE_SCREENSHOT=1 rewrites docs/inspector.png, the README's picture of the page.
"""

import json
import os
import re
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import expect
from test_cluster_browser import channel_on

from accord_app.actors import ids
from accord_app.chat.cost import CostKind, MessageCost
from accord_app.chat.ratelimit import ChatLimits
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster import Cluster
from accord_app.lab.loadtest import LIFTED_LIMITS
from accord_app.settings import WebSocketPath

if TYPE_CHECKING:
    from conftest import Accord, Pages

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "inspector.png"
MAX_SCREENSHOT_BYTES = 300_000
MEMBERS = 30
GENEROUS = ChatLimits(
    messages_per_second=1000, burst=1000, client_messages_per_second=1000, client_burst=1000
)


@pytest.fixture
def start(make_accord: Any) -> Any:
    """start(**settings): the app on loopback with generous chat limits."""
    return lambda **overrides: make_accord(**{"chat_limits": GENEROUS, **overrides})


# The inspector does not depend on the WebSocket path: one is enough.
one_path = pytest.mark.parametrize("make_accord", [WebSocketPath.FAST.value], indirect=True)


def actor_of(server_id: str, channel_id: str) -> str:
    return ids.id_from_name("channels", shard_key(Sharding.CHANNEL, server_id, channel_id)).hex


def tile(page: Any, actor: str) -> Any:
    return page.locator(f'#tiles .tile[data-actor="{actor}"]')


def happened(page: Any, kind: str, **attributes: str) -> Any:
    selector = "".join(f'[data-{name}="{value}"]' for name, value in attributes.items())
    return page.locator(f'#timeline li[data-kind="{kind}"]{selector}')


@one_path
def test_an_actor_wakes_and_hibernates_while_its_member_stays(
    start: Any, pages: "Pages", tmp_path: Path
) -> None:
    accord = start(idle_timeout=1.0)
    server_id, [channel_id] = accord.create("Lisbon", "general")
    actor = actor_of(server_id, channel_id)
    page = pages.open(f"{accord.url}/inspect")
    expect(page.locator("#stream")).to_have_attribute("data-state", "open")
    expect(page.locator("#scope")).to_contain_text("this process")

    with accord.chat(server_id, channel_id, "ada") as ada:
        ada.send("hello")
        expect(tile(page, actor)).to_have_attribute("data-state", "awake")
        expect(tile(page, actor).locator(".tile-name")).to_have_text("#general · Lisbon")
        expect(tile(page, actor).locator("dd.members")).to_have_text("1")
        expect(happened(page, "woke", actor=actor)).to_have_count(1)
        expect(happened(page, "commit", actor=actor).first).to_contain_text(
            re.compile(r"\d commits?, \d turns?, fsync up to \d+\.\d ms")
        )
        expect(tile(page, actor).locator("dd.commit")).to_have_text(re.compile(r"^\d+\.\d ms$"))
        # Idle for a second: the actor leaves memory, its member stays online.
        expect(tile(page, actor)).to_have_attribute("data-state", "hibernated")
        expect(tile(page, actor).locator("dd.members")).to_have_text("1")
        expect(happened(page, "hibernated", actor=actor)).to_have_count(1)
        ada.send("wake up")
        expect(happened(page, "woke", actor=actor)).to_have_count(2)
    expect(page.locator("#workers .worker")).to_contain_text("1 actors")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        screenshot(accord, page, SCREENSHOT)
    else:
        screenshot(accord, page, tmp_path / "inspector.png")
    pages.assert_clean()


def screenshot(accord: "Accord", page: Any, path: Path) -> None:
    """The README's picture: a few channels, some awake with members, some asleep."""
    server_id, channel_ids = accord.create("PyData Coimbra", "general", "workshop-help", "random")
    accord.create("Rust Porto", "general", "jobs")
    with (
        accord.chat(server_id, channel_ids[0], "bob") as bob,
        accord.chat(server_id, channel_ids[1], "carol") as carol,
    ):
        bob.send("the inspector shows this actor awake")
        carol.send("and this one")
        expect(page.locator("#tiles .tile")).to_have_count(3)
        expect(page.locator("#tiles .tile dd.turns").first).not_to_have_text("—")
        page.mouse.move(0, 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
    assert 0 < path.stat().st_size < MAX_SCREENSHOT_BYTES


@one_path
def test_a_mailbox_grows_under_load_and_drains(start: Any, pages: "Pages") -> None:
    # A socket's next frame waits for its last one's turn, so a queue needs many members: 30,
    # each in a channel of its own, all hosted by one actor (global sharding), each message
    # 40 ms of its turn: ~30 frames wait for 1.2 s, three times over.
    limits = replace(GENEROUS, client_connections=100, client_connect_burst=100)
    accord = start(
        chat_limits=limits,
        message_cost=MessageCost(40.0, CostKind.TURN),
        sharding=Sharding.GLOBAL,
    )
    server_id, channel_ids = accord.create("Lisbon", *(f"room-{n}" for n in range(MEMBERS)))
    actor = ids.id_from_name("channels", shard_key(Sharding.GLOBAL, server_id)).hex
    page = pages.open(f"{accord.url}/inspect")
    with ExitStack() as stack:
        members = [
            stack.enter_context(accord.chat(server_id, channel_id, f"member{n}"))
            for n, channel_id in enumerate(channel_ids)
        ]
        expect(tile(page, actor)).to_have_attribute("data-mailbox", "0")
        expect(tile(page, actor).locator(".tile-name")).to_have_text(f"global ({MEMBERS} channels)")
        for member in members:
            for number in range(3):
                frame = {"type": "message", "message": f"m{number}", "nonce": uuid.uuid4().hex}
                member.ws.send(json.dumps(frame))
        page.wait_for_function(
            f"""() => Number(document.querySelector('[data-actor="{actor}"]')
                ?.dataset.mailbox) >= {MEMBERS // 2}"""
        )
        expect(tile(page, actor)).to_have_attribute("data-busy", "true")
        # 40 ms a turn: up to 25 turns a second while the queue lasts.
        expect(tile(page, actor).locator("dd.turns")).to_have_text(re.compile(r"^(1\d|2\d)\.\d$"))
        for member in members:  # each one's 3 acks and 3 messages: all of them answered
            while sum(frame["type"] == "ack" for frame in member.frames) < 3:
                member.frames.append(member.receive())
        expect(tile(page, actor)).to_have_attribute("data-mailbox", "0")
    pages.assert_clean()


@one_path
def test_the_page_is_refused_off_this_machine_without_the_token(
    start: Any, browser: Any, pages: "Pages"
) -> None:
    """Behind the cluster's router a worker believes X-Forwarded-For (the router's secret
    vouches for it): a client at 198.51.100.7 is not on this machine."""
    accord = start(
        worker=1,
        workers=("127.0.0.1:1",),
        router_url="http://127.0.0.1:1",
        router_secret="the router's secret",
        admin_token="an admin token",
    )
    from_afar = {"X-Accord-Router": "the router's secret", "X-Forwarded-For": "198.51.100.7"}
    for headers in [from_afar, {**from_afar, "Authorization": "Bearer a wrong token"}]:
        context = browser.new_context(extra_http_headers=headers)
        page = context.new_page()
        response = page.goto(f"{accord.url}/inspect")
        assert response is not None and response.status == 403
        body = json.loads(page.inner_text("body"))
        assert body["code"] == "forbidden"
        assert "ACCORD_ADMIN_TOKEN" in body["message"]
        context.close()
        refused = accord.http.get("/inspect/api/view", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")

    admin = browser.new_context(
        extra_http_headers={**from_afar, "Authorization": "Bearer an admin token"}
    )
    page = admin.new_page()
    response = page.goto(f"{accord.url}/inspect")
    assert response is not None and response.status == 200
    expect(page.locator("#stream")).to_have_attribute("data-state", "open")
    expect(page.locator("#scope")).to_contain_text("a cluster of 1 workers")
    admin.close()
    # On loopback, through the same worker, no token is needed.
    local = pages.open(f"{accord.url}/inspect")
    expect(local.locator("#stream")).to_have_attribute("data-state", "open")
    pages.assert_clean()


def test_a_dead_host_shows_as_dead(tmp_path: Path, pages: "Pages") -> None:
    with (
        Cluster(2, "channel", tmp_path / "data", port=0, env=LIFTED_LIMITS) as cluster,
        httpx.Client(base_url=cluster.url, trust_env=False, timeout=10) as http,
    ):
        doomed = channel_on(cluster, http, 2)
        spared = channel_on(cluster, http, 1)
        for server_id, channel_id in (doomed, spared):
            path = f"/api/servers/{server_id}/channels/{channel_id}/messages"
            assert http.get(path).status_code == 200  # wakes its actor
        page = pages.open(f"{cluster.url}/inspect")
        expect(page.locator("#scope")).to_contain_text("a cluster of 2 workers")
        for number, (server_id, channel_id) in ((2, doomed), (1, spared)):
            expect(tile(page, actor_of(server_id, channel_id)).locator("dd.worker")).to_have_text(
                f"worker {number}"
            )
        expect(page.locator('#workers [data-worker="2"]')).to_have_attribute("data-state", "up")
        page.fill("#where-channel", doomed[1])
        page.click("#where button")
        expect(page.locator("#where-answer")).to_contain_text(
            f"→ worker 2 ({cluster.addresses[1]})"
        )

        cluster.kill(2)
        expect(page.locator('#workers [data-worker="2"]')).to_have_attribute("data-state", "down")
        expect(page.locator('#workers [data-worker="2"]')).to_contain_text("not answering")
        expect(happened(page, "host down", worker="2")).to_have_count(1)
        expect(tile(page, actor_of(*doomed))).to_have_count(0)
        expect(tile(page, actor_of(*spared))).to_have_count(1)
        expect(page.locator('#workers [data-worker="1"]')).to_have_attribute("data-state", "up")

        cluster.restart(2)
        expect(page.locator('#workers [data-worker="2"]')).to_have_attribute(
            "data-state", "up", timeout=20_000
        )
        expect(happened(page, "host up", worker="2")).to_have_count(1)
    pages.assert_clean()
