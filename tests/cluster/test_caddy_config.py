"""The proxy's config is generated from the app's own key template, so the two cannot drift."""

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from accord_app.chat.http.announcements import ANNOUNCE_DEADLINE_SECONDS
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster.caddy import (
    ACTOR_PATHS,
    SHARD_HEADER,
    SPANNING_PATHS,
    WORKER_PATH,
    caddy_config,
)

ADDRESSES = ("127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003")


def server(mode: Sharding) -> dict[str, Any]:
    config = caddy_config(mode, ["127.0.0.1:8787"], ADDRESSES, state_dir=Path("/tmp"))
    accord: dict[str, Any] = config["apps"]["http"]["servers"]["accord"]
    return accord


def hashed_routes(mode: Sharding) -> list[tuple[str, str, str]]:
    """(matcher name, pattern, header template) of each route that hashes a key."""
    found = []
    for route in server(mode)["routes"]:
        if "match" not in route or len(route["handle"]) == 1:  # not hashed: to any worker
            continue
        [matcher] = route["match"]
        headers, proxy = route["handle"]
        assert proxy["load_balancing"]["selection_policy"] == {
            "policy": "header",
            "field": SHARD_HEADER,
        }
        assert "retries" not in proxy["load_balancing"]  # an actor's worker, or nothing
        [template] = headers["request"]["set"][SHARD_HEADER]
        found.append((matcher["path_regexp"]["name"], matcher["path_regexp"]["pattern"], template))
    return found


def caddy_fill(template: str, name: str, pattern: str, path: str) -> str | None:
    """What Caddy puts in the header for `path`: its placeholders filled from the match."""
    matched = re.match(pattern, path)
    if matched is None:
        return None
    return re.sub(r"\{http\.regexp\." + name + r"\.(\w+)\}", lambda m: matched[m[1]], template)


@pytest.mark.parametrize("mode", list(Sharding))
def test_the_header_the_proxy_hashes_is_the_apps_shard_key(mode: Sharding) -> None:
    routes = hashed_routes(mode)
    path = "/api/servers/s-1/channels/c-2/messages"
    [(name, pattern, template)] = [r for r in routes if re.match(r[1], path)]
    assert caddy_fill(template, name, pattern, path) == shard_key(mode, "s-1", "c-2")


def test_a_server_wide_path_is_hashed_only_when_the_key_needs_no_channel() -> None:
    path = "/api/servers/s-1/activity"
    for mode in Sharding:
        filled = [caddy_fill(t, n, p, path) for n, p, t in hashed_routes(mode)]
        filled = [value for value in filled if value is not None]
        expected = [] if mode == Sharding.CHANNEL else [shard_key(mode, "s-1", "")]
        assert filled == expected, mode


def test_everything_else_goes_to_any_worker_that_is_up() -> None:
    last = server(Sharding.CHANNEL)["routes"][-1]
    assert "match" not in last
    [proxy] = last["handle"]
    assert proxy["load_balancing"] == {"selection_policy": {"policy": "round_robin"}, "retries": 2}
    assert [up["dial"] for up in proxy["upstreams"]] == list(ADDRESSES)


def test_no_admin_endpoint_and_a_json_error_naming_the_worker() -> None:
    config = caddy_config(Sharding.GLOBAL, ["127.0.0.1:8787"], ADDRESSES, Path("/tmp"))
    assert config["admin"]["disabled"] is True
    [route] = config["apps"]["http"]["servers"]["accord"]["errors"]["routes"]
    mapping, response = route["handle"]
    assert {m["input"]: m["outputs"] for m in mapping["mappings"]} == {
        address: [str(n)] for n, address in enumerate(ADDRESSES, start=1)
    }
    assert '"code": "worker_unavailable"' in response["body"]
    assert response["headers"]["Content-Type"] == ["application/json"]


@pytest.mark.parametrize("mode", list(Sharding))
def test_every_route_gives_up_on_a_silent_worker_and_only_a_spanning_question_waits_long(
    mode: Sharding,
) -> None:
    """A cut-off host never refuses: without deadlines its requests would wait forever."""
    timeouts = {}
    for route in server(mode)["routes"]:
        proxy = route["handle"][-1]
        assert proxy["transport"]["dial_timeout"] == "1s"
        if "path" in route.get("match", [{}])[0]:  # the inspector's route to one worker
            assert "health_checks" not in proxy and "load_balancing" not in proxy
            assert proxy["transport"]["response_header_timeout"] == "5s"
            continue
        # Checked routes skip a silent worker; a hashed one must not (its keys would move).
        hashed = proxy["load_balancing"]["selection_policy"]["policy"] == "header"
        assert ("health_checks" in proxy) is not hashed
        pattern = route["match"][0]["path_regexp"]["pattern"] if "match" in route else "*"
        timeouts[pattern] = proxy["transport"]["response_header_timeout"]
    spanning = [p for p, timeout in timeouts.items() if timeout == "30s"]
    # Activity spans actors under channel sharding; an announcement always does, and the
    # router waits longer than its fan-out's own deadline, so that answer is the app's.
    activity = [ACTOR_PATHS["server"][0]] if mode == Sharding.CHANNEL else []
    assert spanning == activity + SPANNING_PATHS
    assert re.fullmatch(SPANNING_PATHS[0], f"/api/servers/{uuid.uuid4()}/announcements")
    assert set(timeouts.values()) - {"30s"} == {"5s"}
    assert ANNOUNCE_DEADLINE_SECONDS < 30


def test_the_inspectors_path_for_worker_n_reaches_worker_n_alone() -> None:
    pinned = {
        route["match"][0]["path"][0]: [up["dial"] for up in route["handle"][0]["upstreams"]]
        for route in server(Sharding.CHANNEL)["routes"]
        if "path" in route.get("match", [{}])[0]
    }
    assert pinned == {
        f"{WORKER_PATH}/{number}/*": [address] for number, address in enumerate(ADDRESSES, 1)
    }


def test_the_proxy_listens_on_every_address_it_is_given() -> None:
    listen = ["127.0.0.1:8787", "10.231.7.1:8787"]
    config = caddy_config(Sharding.CHANNEL, listen, ADDRESSES, Path("/tmp"))
    assert config["apps"]["http"]["servers"]["accord"]["listen"] == listen
