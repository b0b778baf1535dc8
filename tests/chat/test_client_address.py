"""Who a request comes from: behind the cluster's proxy, the address the proxy saw, believed
only from the proxy itself, on loopback or at the hosts' gateway (the router's address)."""

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from accord_app import Settings
from accord_app.web.middleware import client_address

ROUTER = "10.231.7.1"
WORKER = Settings(worker=1, workers=("10.231.7.11:8000",), router_url=f"http://{ROUTER}:8787")


def request(settings: Settings, peer: str, forwarded: str | None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    app = SimpleNamespace(state=SimpleNamespace(settings=settings))
    scope = {"type": "http", "client": (peer, 40000), "headers": headers, "app": app}
    return Request(scope)


@pytest.mark.parametrize(
    ("settings", "peer", "seen"),
    [
        (WORKER, ROUTER, "198.51.100.7"),  # the router at the hosts' gateway
        (WORKER, "127.0.0.1", "198.51.100.7"),  # the router on loopback
        (WORKER, "10.231.7.12", "10.231.7.12"),  # another host: anyone could write the header
        (Settings(), "127.0.0.1", "127.0.0.1"),  # no cluster, no proxy to believe
    ],
)
def test_the_forwarded_address_is_believed_from_the_router_only(
    settings: Settings, peer: str, seen: str
) -> None:
    assert client_address(request(settings, peer, "203.0.113.9, 198.51.100.7")) == seen
    assert client_address(request(settings, peer, None)) == peer
