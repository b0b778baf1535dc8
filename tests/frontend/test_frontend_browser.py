"""The web frontend in a real (headless) Chromium, against the app on loopback.

Every test ends with pages.assert_clean(): no request left the machine, no script error, no
JavaScript dialog. Set UPDATE_SCREENSHOT=1 to rewrite docs/screenshot.png (the README's picture).
"""

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from accord_app.chat.ratelimit import ChatLimits

if TYPE_CHECKING:
    from conftest import Accord, Pages

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
MAX_SCREENSHOT_BYTES = 300_000
XSS = "<img src=x onerror=alert(1)>"


# -- helpers that act like a user -------------------------------------------------------------


def choose_username(page: Any, name: str) -> None:
    """Answer the first-visit prompt."""
    dialog = page.get_by_role("dialog", name="Welcome to Accord")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Username").fill(name)
    dialog.get_by_label("Username").press("Enter")
    expect(dialog).to_be_hidden()


def create_named(page: Any, button: Any, name: str) -> None:
    """Open a "create" dialog with `button`, type the name, press Enter, wait until it closes."""
    button.click()
    dialog = page.locator("#create-dialog")
    dialog.locator("input").fill(name)
    dialog.locator("input").press("Enter")
    expect(dialog).to_be_hidden()


def say(page: Any, text: str) -> None:
    composer = page.get_by_label("Message", exact=True)
    composer.fill(text)
    composer.press("Enter")


def texts(page: Any, text: str) -> Any:
    """The message bodies on the page whose whole text is `text`."""
    pattern = re.compile(f"^{re.escape(text)}$")
    return page.locator("#message-list .message-text").filter(has_text=pattern)


def expect_connected(page: Any) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


def expect_members(page: Any, *names: str) -> None:
    expect(page.locator("#member-list .member-name")).to_have_text(sorted(names))


# -- the tests --------------------------------------------------------------------------------


def test_two_users_create_a_server_and_chat(
    accord: "Accord", pages: "Pages", tmp_path: Path
) -> None:
    ada = pages.open(accord.url)
    choose_username(ada, "ada")
    # First visit on an empty app: the page offers to create a server, then a channel.
    expect(ada.get_by_role("heading", name="No servers yet")).to_be_visible()
    create_named(ada, ada.get_by_role("button", name="Create a server").first, "Python Lisbon")
    expect(ada.locator("#server-name")).to_have_text("Python Lisbon")
    create_named(ada, ada.get_by_role("button", name="Create a channel").first, "general")
    expect(ada.locator("#channel-name")).to_have_text("general")
    expect_connected(ada)
    assert re.search(r"#/servers/[0-9a-f-]{36}/channels/[0-9a-f-]{36}$", ada.url)

    bob = pages.open(accord.url)
    choose_username(bob, "bob")
    bob.get_by_role("link", name="Python Lisbon").click()
    bob.get_by_role("link", name="general").click()
    expect_connected(bob)
    assert bob.url == ada.url  # the same channel, so the same address
    expect_members(ada, "ada", "bob")
    expect_members(bob, "ada", "bob")

    # Typing shows on the other side, and stops with the message.
    bob.get_by_label("Message", exact=True).fill("Hi")
    expect(ada.locator("#typing")).to_have_text("bob is typing…")
    bob.get_by_label("Message", exact=True).press("Enter")
    expect(texts(ada, "Hi")).to_have_count(1)
    expect(ada.locator("#typing")).to_have_text("")

    say(ada, "Hello Bob! The workshop starts at 10:00 in room 2.1.")
    expect(texts(bob, "Hello Bob! The workshop starts at 10:00 in room 2.1.")).to_have_count(1)
    # Shift+Enter is a new line inside the message; Enter sends it.
    composer = bob.get_by_label("Message", exact=True)
    composer.type("Great, see you there.")
    composer.press("Shift+Enter")
    composer.type("I will bring the coffee.")
    composer.press("Enter")
    expect(texts(ada, "Great, see you there.\nI will bring the coffee.")).to_have_count(1)
    expect(bob.locator("#message-list .pending")).to_have_count(0)

    take_screenshot(accord, ada, bob, tmp_path)
    assert any(url.endswith("/static/js/app.js") for url in pages.gate.allowed)
    assert any(url.endswith("/static/css/app.css") for url in pages.gate.allowed)
    pages.assert_clean()


def take_screenshot(accord: "Accord", ada: Any, bob: Any, tmp_path: Path) -> None:
    """The README's picture: a conversation between three people, one of them typing."""
    server_id, channel_id = ada.url.split("#/servers/")[1].split("/channels/")
    accord.create("Rust Porto")
    accord.create("PyData Coimbra")
    accord.http.post(f"/api/servers/{server_id}/channels", json={"name": "workshop-help"})
    accord.http.post(f"/api/servers/{server_id}/channels", json={"name": "random"})
    say(ada, "Everything you see here comes from the app itself: no CDN, no build step.")
    with accord.chat(server_id, channel_id, "carol") as carol:
        carol.send("Just joined. Is the Wi-Fi password on the whiteboard?")
        say(bob, "Yes, next to the schedule. The lab runs fine offline too.")
        say(ada, "Chapter 5 builds this channel: one actor per channel, messages in SQLite.")
        expect(
            texts(ada, "Chapter 5 builds this channel: one actor per channel, messages in SQLite.")
        ).to_have_count(1)
        ada.evaluate("window.dispatchEvent(new Event('focus'))")  # fetches the new servers
        expect(ada.locator("#server-list .rail-item")).to_have_count(3)
        expect(ada.locator("#channel-list .channel")).to_have_count(3)
        carol.typing()
        expect(ada.locator("#typing")).to_have_text("carol is typing…")
        expect_members(ada, "ada", "bob", "carol")
        ada.locator("#composer-input").blur()
        ada.mouse.move(0, 799)  # no hover effect in the picture
        path = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "chat.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        ada.screenshot(path=str(path))
    assert 0 < path.stat().st_size < MAX_SCREENSHOT_BYTES


def test_reload_shows_history_in_the_same_channel(accord: "Accord", pages: "Pages") -> None:
    server_id, (_, help_id) = accord.create("Python Lisbon", "general", "help")
    accord.post(server_id, help_id, "ada", ["first", "second"])
    page = pages.open(accord.page_url(server_id, help_id), username="bob")
    expect_connected(page)
    say(page, "third, from the page")
    expect(page.locator("#message-list .pending")).to_have_count(0)

    page.reload()
    expect(page.locator("#channel-name")).to_have_text("help")
    expect(page.get_by_role("link", name="help")).to_have_attribute("aria-current", "page")
    expect(page.locator("#message-list .message-text")).to_have_text(
        ["first", "second", "third, from the page"]
    )
    expect(page.get_by_role("heading", name="Welcome to #help!")).to_be_visible()
    expect(page.locator("#me-name")).to_have_text("bob")  # remembered, not asked again
    pages.assert_clean()


def test_older_messages_load_on_scroll_up(make_accord: Any, pages: "Pages") -> None:
    accord = make_accord(
        chat_limits=ChatLimits(
            messages_per_second=1000,
            burst=1000,
            client_messages_per_second=1000,
            client_burst=1000,
        )
    )
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    accord.post(server_id, channel_id, "ada", [f"message {n}" for n in range(1, 121)])
    page = pages.open(accord.page_url(server_id, channel_id), username="bob")
    bodies = page.locator("#message-list .message-text")
    expect(bodies).to_have_count(50)  # the newest page: 71 to 120, at the bottom
    expect(bodies.last).to_have_text("message 120")
    expect(bodies.last).to_be_in_viewport()
    for expected in (100, 120):
        page.locator("#scroller").evaluate("element => { element.scrollTop = 0; }")
        expect(bodies).to_have_count(expected)
    expect(page.get_by_role("heading", name="Welcome to #general!")).to_be_visible()
    expect(bodies).to_have_text([f"message {n}" for n in range(1, 121)])
    pages.assert_clean()


def test_html_in_messages_and_names_is_shown_as_text(accord: "Accord", pages: "Pages") -> None:
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    page = pages.open(accord.page_url(server_id, channel_id), username="<b>bob</b>")
    expect_connected(page)
    say(page, XSS)
    tricky_name = "<img src=y onerror=alert(2)>"
    with accord.chat(server_id, channel_id, tricky_name) as mallory:
        mallory.send('<script>alert("3")</script>')
        expect_members(page, "<b>bob</b>", tricky_name)
        expect(texts(page, XSS)).to_have_count(1)
        expect(texts(page, '<script>alert("3")</script>')).to_have_count(1)
        expect(page.locator("#message-list .author", has_text=tricky_name)).to_have_count(1)
    expect(page.locator("#me-name")).to_have_text("<b>bob</b>")
    for area in ("#message-list", "#member-list", ".user-panel"):
        assert page.locator(f"{area} img, {area} script, {area} b").count() == 0
    time.sleep(0.3)  # an onerror handler would have fired by now
    pages.assert_clean()  # includes: no dialog was opened


def test_the_api_error_messages_are_shown(accord: "Accord", pages: "Pages") -> None:
    expected = accord.http.post("/api/servers", json={"name": "ab"}).json()["message"]
    page = pages.open(accord.url, username="ada")
    page.get_by_role("button", name="Create a server").first.click()
    dialog = page.get_by_role("dialog", name="Create a server")
    dialog.get_by_label("Server name").fill("ab")
    dialog.get_by_role("button", name="Create server").click()
    expect(dialog.get_by_role("alert")).to_have_text(expected)
    expect(dialog.get_by_label("Server name")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Server name").fill("abc")
    dialog.get_by_role("button", name="Create server").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#server-name")).to_have_text("abc")
    pages.assert_clean()


def test_the_rate_limit_is_shown_and_the_message_can_be_retried(
    make_accord: Any, pages: "Pages"
) -> None:
    accord = make_accord(chat_limits=ChatLimits(messages_per_second=2, burst=2))
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    page = pages.open(accord.page_url(server_id, channel_id), username="ada")
    expect_connected(page)
    for text in ("one", "two", "three"):
        say(page, text)
    failed = page.locator("#message-list .message.failed")
    expect(failed.get_by_role("alert")).to_contain_text(re.compile(r"Slow down: try again in"))
    expect(failed.locator(".message-text")).to_have_text("three")
    time.sleep(0.6)  # a token comes back every 0.5 s
    failed.get_by_role("button", name="Retry").click()
    expect(page.locator("#message-list .message-text")).to_have_text(["one", "two", "three"])
    expect(page.locator("#message-list .failed, #message-list .pending")).to_have_count(0)
    history = accord.http.get(f"/api/servers/{server_id}/channels/{channel_id}/messages").json()
    assert [message["message"] for message in history] == ["three", "two", "one"]
    pages.assert_clean()


def test_a_full_disk_shows_on_the_message_and_retry_works_once_there_is_room(
    make_accord: Any, pages: "Pages", small_disk: Any
) -> None:
    accord = make_accord(data_dir=small_disk.path / "data")
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    page = pages.open(accord.page_url(server_id, channel_id), username="ada")
    expect_connected(page)
    say(page, "before")
    waiting = page.locator("#message-list .pending:not(.failed)")  # neither acked nor refused
    expect(waiting).to_have_count(0)
    filler = small_disk.fill()
    failed = page.locator("#message-list .message.failed")
    for number in range(30):  # a page or two of the actor's file may still fit
        say(page, f"while full {number} " + "x" * 1500)
        expect(waiting).to_have_count(0)
        if failed.count():
            break
    expect(failed).to_have_count(1)
    expect(failed.get_by_role("alert")).to_contain_text("disk is full")
    refused = failed.locator(".message-text").inner_text()
    filler.unlink()
    failed.get_by_role("button", name="Retry").click()
    expect(page.locator("#message-list .failed, #message-list .pending")).to_have_count(0)
    history = accord.http.get(f"/api/servers/{server_id}/channels/{channel_id}/messages").json()
    assert history[0]["message"] == refused
    pages.assert_clean()


def test_reconnects_after_a_restart_without_gaps_or_duplicates(
    accord: "Accord", pages: "Pages"
) -> None:
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    accord.post(server_id, channel_id, "carol", ["before 1", "before 2"])
    page = pages.open(accord.page_url(server_id, channel_id), username="dave")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect_connected(page)
    expect(texts(page, "before 2")).to_have_count(1)

    accord.stop()
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "reconnecting")
    expect(connection).to_have_text("Reconnecting…")
    say(page, "written while offline")  # waits in the outbox
    # Let two attempts fail, so the next one is at least 0.75 s away: the messages below are
    # then sent while the page is away, and it must get them from the replay.
    while len(sockets) < 2:
        page.wait_for_timeout(50)
    accord.start_again()
    accord.post(server_id, channel_id, "carol", ["missed 1", "missed 2", "missed 3"])

    expect_connected(page)
    for text in ("before 1", "before 2", "missed 1", "missed 2", "missed 3"):
        expect(texts(page, text)).to_have_count(1)
    expect(texts(page, "written while offline")).to_have_count(1)
    expect(page.locator("#message-list .pending")).to_have_count(0)
    expect(page.locator("#message-list .message")).to_have_count(6)
    assert "after_seq=2" in sockets[-1]  # resumed after the last message it had
    history = accord.http.get(f"/api/servers/{server_id}/channels/{channel_id}/messages").json()
    assert sorted(m["message"] for m in history).count("written while offline") == 1
    pages.assert_clean()


def test_a_long_absence_is_caught_up_in_slices_the_rate_limit_can_pay(
    make_accord: Any, pages: "Pages"
) -> None:
    # Replays are paid by the message (a token per 5 here): the page's first slice spends its
    # budget, the next "resume" is refused, and the page must wait and ask again.
    strict = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=10,
                        client_burst=20, replay_messages_per_token=5)  # fmt: skip
    accord = make_accord(chat_limits=strict)
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    page = pages.open(accord.page_url(server_id, channel_id), username="dave")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect_connected(page)
    accord.stop()
    # The page stays away, however long the writes below take: offline, it tries no
    # reconnection until the "online" event, so it cannot reach the generous server early.
    page.context.set_offline(True)
    # While the page is away, 250 messages are written by a server with no limit to speak of.
    generous = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=1000,
                          client_burst=1000)  # fmt: skip
    accord.settings = replace(accord.settings, chat_limits=generous)
    accord.start_again()
    with accord.chat(server_id, channel_id, "carol") as carol:
        for number in range(250):  # all at once: a commit or two
            carol.ws.send(json.dumps({"type": "message", "message": f"missed {number}"}))
        while sum(frame["type"] == "ack" for frame in carol.frames) < 250:
            carol.frames.append(carol.receive())
    accord.stop()
    accord.settings = replace(accord.settings, chat_limits=strict)
    accord.start_again()
    page.context.set_offline(False)  # back online: the page reconnects at once
    expect_connected(page)
    expect(page.locator("#message-list .message")).to_have_count(250, timeout=20_000)
    expect(texts(page, "missed 249")).to_have_count(1)
    assert "after_seq=0" in sockets[-1]  # it had seen nothing: it asked for everything
    pages.assert_clean()


def test_messages_written_during_a_catch_up_in_slices_leave_no_gap(
    make_accord: Any, pages: "Pages"
) -> None:
    # As above, the page catches up 250 missed messages in slices the rate limit can pay. A
    # member writes meanwhile: those messages reach the page live between two slices, with
    # seqs above the whole replay. The page must go on from where the replay stopped.
    strict = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=10,
                        client_burst=20, replay_messages_per_token=5)  # fmt: skip
    accord = make_accord(chat_limits=strict)
    server_id, (channel_id,) = accord.create("Python Lisbon", "general")
    page = pages.open(accord.page_url(server_id, channel_id), username="dave")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    expect_connected(page)
    accord.stop()
    while len(sockets) < 3:  # then the next attempt is at least 1.5 s away: time to post
        page.wait_for_timeout(50)
    generous = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=1000,
                          client_burst=1000)  # fmt: skip
    accord.settings = replace(accord.settings, chat_limits=generous)
    accord.start_again()
    with accord.chat(server_id, channel_id, "carol") as carol:
        for number in range(250):
            carol.ws.send(json.dumps({"type": "message", "message": f"missed {number}"}))
        while sum(frame["type"] == "ack" for frame in carol.frames) < 250:
            carol.frames.append(carol.receive())
    accord.stop()
    accord.settings = replace(accord.settings, chat_limits=strict)
    accord.start_again()
    shown = page.locator("#message-list .message")
    deadline = time.monotonic() + 20
    while shown.count() < 50:  # the first slice is in; the rest takes seconds to pay for
        assert time.monotonic() < deadline, f"{shown.count()} messages shown"
        page.wait_for_timeout(20)
    with accord.chat(server_id, channel_id, "carol") as carol:
        for number in range(3):
            send_paying(carol, f"live {number}")
    assert shown.count() < 250, "the page caught up before the live messages: no test"
    expect(shown).to_have_count(253, timeout=30_000)
    for text in ("missed 0", "missed 120", "missed 249", "live 0", "live 2"):
        expect(texts(page, text)).to_have_count(1)
    pages.assert_clean()


def send_paying(client: Any, text: str) -> None:
    """Send a message, again with the same nonce while the rate limit refuses it."""
    nonce = f"{text}-nonce".replace(" ", "-")
    deadline = time.monotonic() + 20
    while True:
        client.ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))
        while (frame := client.receive())["type"] not in ("ack", "error"):
            pass
        if frame["type"] == "ack":
            return
        assert frame["code"] == "rate_limited", frame
        assert time.monotonic() < deadline, "the rate limit never let it through"
        time.sleep(0.3)
