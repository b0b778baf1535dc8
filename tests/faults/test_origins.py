"""Only Accord's own pages, and origins it trusts, may open its WebSockets (item 5)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fault_tools import refused
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from websockets.sync.client import connect

from accord_app.lab.server import BackgroundServer
from accord_app.web.origins import normalise_origin, origin_allowed

TRUSTED = frozenset({"http://workshop.example:8080"})


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8787", True),  # not a browser: nothing to hijack
        ("http://127.0.0.1:8787", "127.0.0.1:8787", True),
        ("http://LOCALHOST:8787", "localhost:8787", True),
        ("http://workshop.example:8080", "127.0.0.1:8787", True),
        ("https://evil.example", "127.0.0.1:8787", False),
        ("null", "127.0.0.1:8787", False),
        ("http://127.0.0.1.evil.example", "127.0.0.1:8787", False),
        ("http://127.0.0.1.evil.example:8787", "127.0.0.1:8787", False),
        ("http://127.0.0.1:8788", "127.0.0.1:8787", False),
        ("https://127.0.0.1:8787", "127.0.0.1:8787", True),
        ("ftp://127.0.0.1:8787", "127.0.0.1:8787", False),
    ],
)
def test_which_origins_may_connect(origin: str | None, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, TRUSTED) is allowed


def test_origins_are_compared_in_one_form() -> None:
    assert normalise_origin("HTTP://Example.org:80") == "http://example.org"
    assert normalise_origin("https://example.org:8443") == "https://example.org:8443"
    assert normalise_origin("https://example.org/path") is None


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"]
)
def test_a_foreign_origin_is_refused_before_the_upgrade(start: Any, origin: str) -> None:
    running = start()
    path = running.channel()
    status, body = refused(running.ws_url(path), origin=origin)
    assert status == 403 and body["code"] == "origin_not_allowed"


def test_its_own_pages_and_trusted_origins_connect(start: Any) -> None:
    running = start(allowed_origins=frozenset({"https://chat.example.org"}))
    path = running.channel()
    for origin in [running.server.url, "https://chat.example.org", None]:
        with connect(running.ws_url(path), origin=origin) as ws:  # type: ignore[arg-type]
            assert json.loads(ws.recv(timeout=5))["type"] == "presence"


PAGE = """<!doctype html><p id="result">pending</p><script>
const ws = new WebSocket(%s);
ws.onopen = () => { document.getElementById("result").textContent = "open"; };
ws.onerror = () => { document.getElementById("result").textContent = "refused"; };
</script>"""


@pytest.fixture
def other_site() -> Iterator[Any]:
    """A page on another origin (another port of 127.0.0.1) that opens a WebSocket."""
    target: dict[str, str] = {}

    def page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE % json.dumps(target["url"]))

    with BackgroundServer(Starlette(routes=[Route("/", page)])) as server:
        yield server, target


@pytest.mark.browser
@pytest.mark.parametrize("trusted", [False, True])
def test_a_page_from_another_origin_cannot_hijack_a_browsers_chat(
    start: Any, other_site: Any, browser: Any, trusted: bool
) -> None:
    site, target = other_site
    running = start(allowed_origins=frozenset({site.url}) if trusted else frozenset())
    target["url"] = running.ws_url(running.channel())
    page = browser.new_page()
    page.goto(site.url)
    expect(page.locator("#result")).to_have_text("open" if trusted else "refused")
    page.close()
