"""/docs in a real (headless) Chromium: Swagger UI renders with no request off the machine."""

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import LiveServer

pytestmark = pytest.mark.browser

# Milliseconds Playwright waits for a page or element before the test fails.
PAGE_TIMEOUT_MS = 20_000
EXPECTED_OPERATIONS = [
    ("GET", "/api"),
    ("GET", "/api/servers"),
    ("POST", "/api/servers"),
    ("GET", "/api/servers/{server_id}/channels"),
    ("POST", "/api/servers/{server_id}/channels"),
    ("GET", "/api/servers/{server_id}/channels/{channel_id}/messages"),
    ("GET", "/api/servers/{server_id}/channels/{channel_id}/connect"),
    ("GET", "/api/servers/{server_id}/channels/{channel_id}/activity"),
    ("GET", "/api/servers/{server_id}/activity"),
    ("POST", "/api/servers/{server_id}/announcements"),
    ("POST", "/api/servers/{server_id}/channels/{channel_id}/announcements"),
]


class Gatekeeper:
    """Routes every request of a browser context: the app's origin passes, the rest is aborted."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.allowed: list[str] = []
        self.blocked: list[str] = []

    def __call__(self, route: Any) -> None:
        url: str = route.request.url
        if url == self.origin or url.startswith(f"{self.origin}/"):
            self.allowed.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture
def docs_page(browser: Any, live_server: "LiveServer") -> Any:
    context = browser.new_context()
    gate = Gatekeeper(live_server.url)
    context.route("**/*", gate)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/docs")
    # Either the rendered spec or Swagger UI's "Unable to render this definition" box.
    page.wait_for_selector(".swagger-ui .info .title, .swagger-ui .version-pragma")
    refusal = page.locator(".swagger-ui .version-pragma")
    if refusal.count():
        pytest.fail(f"Swagger UI refused the schema: {refusal.inner_text()!r}")
    page.wait_for_selector(".opblock")
    yield page, gate, errors
    context.close()


def operations_on(page: Any) -> list[tuple[str, str]]:
    found = []
    for block in page.locator(".opblock").all():
        method = block.locator(".opblock-summary-method").inner_text().strip()
        path = block.locator(".opblock-summary-path").inner_text().replace("\u200b", "").strip()
        found.append((method, path))
    return found


def test_docs_render_swagger_ui_with_no_request_off_the_machine(
    docs_page: Any, live_server: "LiveServer"
) -> None:
    page, gate, errors = docs_page
    assert "Accord" in page.inner_text(".swagger-ui .info .title")
    assert page.title() == "Accord - Swagger UI"
    assert sorted(operations_on(page)) == sorted(EXPECTED_OPERATIONS)
    assert errors == []
    assert gate.blocked == []
    assert f"{live_server.url}/openapi.json" in gate.allowed
    assert f"{live_server.url}/docs/assets/swagger-ui-bundle.js" in gate.allowed


def test_docs_try_it_out_creates_a_server(docs_page: Any, live_server: "LiveServer") -> None:
    page, gate, errors = docs_page
    block = page.locator(".opblock-post", has_text="/api/servers").filter(
        has_not_text="{server_id}"
    )
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("textarea.body-param__text").fill('{"name": "From the docs"}')
    block.locator("button.execute").click()
    status = block.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "201"
    assert [server["name"] for server in live_server.http.get("/api/servers").json()] == [
        "From the docs"
    ]
    assert errors == []
    assert gate.blocked == []
