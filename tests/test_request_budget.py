"""Every HTTP request pays from its client address's budget (accord_app/web/middleware.py's
RequestBudget): reads 1, writes 2, a question to every channel of a server 1 + its channels.
One it cannot pay is a 429 with Retry-After; other addresses are not affected. Real uvicorn on
loopback, each client from its own loopback address."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.lab.loadtest import ADMIN_HEADERS, LAB_ADMIN_TOKEN
from accord_app.lab.server import BackgroundServer
from accord_app.web.middleware import WRITE_COST, RequestLimits

# Slow to refill, so that nothing the test does in a second or two earns a token back.
LIMITS = RequestLimits(per_second=0.1, burst=20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    settings = replace(
        Settings(data_dir=tmp_path), request_limits=LIMITS, admin_token=LAB_ADMIN_TOKEN
    )
    with BackgroundServer(create_app(settings), **uvicorn_options(settings)) as running:
        yield running


def client(server: BackgroundServer, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, trust_env=False, timeout=10)


def test_reads_pay_one_until_the_budget_is_spent(server: BackgroundServer) -> None:
    with client(server, "127.0.0.2") as http, client(server, "127.0.0.3") as other:
        for _ in range(LIMITS.burst):
            assert http.get("/api/servers").status_code == 200
        assert http.get("/api").status_code == 200  # the health check is free
        refused = http.get("/api/servers")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1 / LIMITS.per_second - 1
        assert other.get("/api/servers").status_code == 200  # another address has its own


def test_writes_pay_more(server: BackgroundServer) -> None:
    with client(server, "127.0.0.4") as http:
        created = [
            http.post("/api/servers", json={"name": f"server {n}"}).status_code
            for n in range(LIMITS.burst // WRITE_COST + 1)
        ]
    assert created == [201] * (LIMITS.burst // WRITE_COST) + [429]


def test_a_question_to_every_channel_pays_for_each(server: BackgroundServer) -> None:
    with client(server, "127.0.0.5") as setup, client(server, "127.0.0.6") as http:
        server_id = setup.post("/api/servers", json={"name": "Workshop"}).json()["id"]
        for n in range(6):
            setup.post(f"/api/servers/{server_id}/channels", json={"name": f"channel {n}"})
        # 7 tokens each (1 + 6 channels): two of them leave 6, which a third cannot pay
        # (after a refusal the address waits for its Retry-After: tests/test_penalty_box.py).
        answers = [http.get(f"/api/servers/{server_id}/activity").status_code for _ in range(2)]
        assert answers == [200, 200]
        assert [http.get("/api/servers").status_code for _ in range(7)] == [200] * 6 + [429]


def test_an_announcement_pays_for_each_channel_too(server: BackgroundServer) -> None:
    with client(server, "127.0.0.7") as setup, client(server, "127.0.0.8") as http:
        server_id = setup.post("/api/servers", json={"name": "Workshop"}).json()["id"]
        for n in range(6):
            setup.post(f"/api/servers/{server_id}/channels", json={"name": f"channel {n}"})
        url = f"/api/servers/{server_id}/announcements"
        answers = [
            http.post(url, json={"message": f"news {n}"}, headers=ADMIN_HEADERS) for n in range(3)
        ]
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        assert answers[-1].json()["code"] == "rate_limited" and answers[-1].headers["retry-after"]


def test_a_workers_internal_header_makes_nothing_free_on_a_lone_process(
    server: BackgroundServer,
) -> None:
    """X-Accord-Internal marks a cluster worker's calls, and is believed only with the
    router's secret: a lone process has none, so the header is dropped."""
    with client(server, "127.0.0.9") as http:
        internal = {"X-Accord-Internal": "1"}
        answers = [
            http.get("/api/servers", headers=internal).status_code for _ in range(LIMITS.burst + 1)
        ]
    assert answers == [200] * LIMITS.burst + [429]
