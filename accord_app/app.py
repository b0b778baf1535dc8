"""Assemble the Accord app: catalog, actor runtime, routes, error shape, limits, offline docs."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline

from accord_app.actors import Actor, Runtime
from accord_app.actors.natslog import NatsLog
from accord_app.api import routes as api_routes
from accord_app.catalog.store import Catalog
from accord_app.chat.channel import ChannelActor
from accord_app.chat.http import activity, admin, announcements
from accord_app.chat.http import routes as chat_routes
from accord_app.chat.protocol import MAX_FRAME_BYTES
from accord_app.chat.ratelimit import ClientLimits
from accord_app.cluster.handback import Handback
from accord_app.observe.inspector import install_inspector
from accord_app.observe.metrics import Metrics
from accord_app.settings import Settings, WebSocketPath
from accord_app.web.asgi_websocket import AsgiWebSocket
from accord_app.web.errors import install_error_handlers, no_such_websocket
from accord_app.web.fast_websocket import FastWebSocket
from accord_app.web.frontend import install_frontend
from accord_app.web.middleware import (
    INTERNAL_HEADER,
    REFUSED,
    BodySizeLimit,
    CanonicalIds,
    HttpLimits,
    RequestBudget,
    RouterOnlyForwarding,
    WorkerHeader,
    http_protocol,
)
from accord_app.web.openapi import openapi_without_422

DESCRIPTION = """\
Accord is a real-time chat backend: servers and channels live in a catalog database,
and every error answers with `{"message": ..., "code": ...}`.
"""


# What uvicorn needs to know about this app, wherever it serves it (make run, tests, notebooks).
# A frame larger than ws_max_size is closed with code 1009 ("message too big") by uvicorn.
# No per-message compression: chat frames are small, and each compressed connection keeps
# zlib state (benchmarks/fanout.py measured tens of KB per idle connection) and burns CPU.
# No proxy headers: uvicorn would take the client's address from X-Forwarded-For on any
# connection from 127.0.0.1, so any local process could pose as any address. A cluster
# worker believes the header itself, from its router only (accord_app/web/middleware.py).
UVICORN_OPTIONS: dict[str, Any] = {
    "ws_max_size": MAX_FRAME_BYTES,
    "ws_per_message_deflate": False,
    "proxy_headers": False,
}


def http_limits(settings: Settings) -> HttpLimits:
    """The HTTP connection's limits for these settings: the Host names it answers to are the
    loopback ones, the one it listens on, and ACCORD_ALLOWED_HOSTS; a cluster worker does
    not cap its router's connections (the router carries every client's requests)."""
    hosts = settings.allowed_hosts | {settings.host.lower()}
    uncapped: set[str] = set()
    if settings.worker is not None:
        uncapped = {"127.0.0.1", "::1", settings.router_host or "127.0.0.1"}
    return HttpLimits(
        connections_per_address=settings.request_limits.connections,
        allowed_hosts=frozenset(hosts),
        uncapped_peers=frozenset(uncapped),
        release_interval=1 / settings.request_limits.per_second,
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """UVICORN_OPTIONS, the HTTP limits and the WebSocket path (ACCORD_WS) that the settings
    choose."""
    options = {**UVICORN_OPTIONS, "http": http_protocol(http_limits(settings))}
    # uvicorn's own WebSocket protocol is the ASGI path, every frame paid for; both paths
    # refuse a bad upgrade in JSON.
    options["ws"] = FastWebSocket if settings.websocket is WebSocketPath.FAST else AsgiWebSocket
    return options


async def serve_metrics(request: Request) -> Response:
    """GET /metrics: what Prometheus scrapes, in the format its Accept header asks for."""
    metrics: Metrics = request.app.state.metrics
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


# How long a call to an actor on another worker of the cluster may take.
ROUTER_TIMEOUT_SECONDS = 5.0


def create_app(
    settings: Settings | None = None, channel_actor: type[Actor] = ChannelActor
) -> FastAPI:
    """The Accord app. `channel_actor` is the class that hosts channels: the chapters plug the
    attendee's own in; it must offer the RPC methods `history` and `join` of ChannelActor."""
    settings = settings or Settings.from_env()
    # Limits and cost are class attributes because the runtime constructs the actors itself;
    # the clients' counters are one object, shared by every actor and the WebSocket route.
    clients = ClientLimits(settings.chat_limits)
    # This app's metrics (GET /metrics), in a registry of its own; None with ACCORD_METRICS=0.
    metrics = Metrics() if settings.metrics else None
    actor_class = type(
        channel_actor.__name__,
        (channel_actor,),
        {
            "limits": settings.chat_limits,
            "clients": clients,
            "cost": settings.message_cost,
            "metrics": metrics,
        },
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The runtime starts here, not in create_app: its tasks (alarms, commits, sockets)
        # belong to the event loop that serves the app, which a notebook or a test may run in
        # another thread than the one that built the app.
        worker = settings.worker
        log = None
        if settings.replication is not None:
            log = NatsLog.from_url(
                settings.replication,
                timeout=settings.replication_timeout,
                retention_seconds=settings.bookmark_retention_days * 86400,
            )
            await log.connect()
        runtime = Runtime(
            settings.actors_dir,
            idle_timeout=settings.idle_timeout,
            alarm_index_name="alarms.sqlite3" if worker is None else f"alarms-{worker}.sqlite3",
            replication=log,
            # The epochs it opens say which host: the worker's number, or this machine.
            replica_name=str(worker) if worker is not None else socket.gethostname(),
        )
        app.state.runtime = runtime
        app.state.channels = runtime.namespace("channels", actor_class)
        detach = metrics.attach(runtime) if metrics is not None else None
        # In a cluster, calls to actors that other workers host go through the proxy.
        # trust_env=False: a proxy set in the environment must never see loopback traffic.
        app.state.router = None
        if settings.router_url is not None:
            app.state.router = httpx.AsyncClient(
                base_url=settings.router_url,
                timeout=ROUTER_TIMEOUT_SECONDS,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
                trust_env=False,
                # Calls for a client who already paid: free at the worker that answers them.
                headers={INTERNAL_HEADER: settings.router_secret or ""},
            )
        app.state.handback, handing_back = None, None
        placement = settings.placement
        if log is not None and placement is not None:
            channels = app.state.channels

            def hand_over(key: str, owner: int) -> None:
                channels.hand_over(channels.id_from_name(key), f"host {owner} is back")

            app.state.handback = Handback(placement, hand_over)
            handing_back = asyncio.get_running_loop().create_task(app.state.handback.run())
        yield
        if handing_back is not None:
            handing_back.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handing_back
        if app.state.router is not None:
            await app.state.router.aclose()
        await runtime.close()  # finishes queued turns and commits, closes every socket
        if log is not None:
            await log.close()
        if detach is not None:
            detach()
        app.state.catalog.close()  # its kept connections (PostgreSQL)

    # FastAPIOffline is FastAPI whose /docs and /redoc pages load Swagger UI and ReDoc from
    # files in the package instead of a CDN: the docs work on a workshop's bad Wi-Fi.
    app = FastAPIOffline(
        title="Accord",
        version=metadata.version("accord-app"),
        description=DESCRIPTION,
        static_url="/docs/assets",
        lifespan=lifespan,
    )
    catalog = Catalog(settings.catalog_location)
    catalog.migrate(settings.actors_dir)
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.clients = clients
    app.state.placement = settings.placement
    app.state.handback = None  # a replicated cluster's worker sets one up as it starts
    app.state.metrics = metrics
    install_error_handlers(app)
    budget: dict[str, Any] = {"limits": settings.request_limits, "catalog": catalog}
    if metrics is not None:
        metrics.watch_http_refusals(REFUSED)
        budget["on_refused"] = metrics.request_rate_limited
        app.add_api_route("/metrics", serve_metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestBudget, **budget)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(CanonicalIds)
    if settings.worker is not None:
        app.add_middleware(WorkerHeader, worker=settings.worker)
    # On a lone process too: without a router's secret, X-Accord-Internal and X-Forwarded-For
    # are dropped, so no client makes its requests free or poses as another address.
    app.add_middleware(RouterOnlyForwarding, secret=settings.router_secret)
    app.include_router(api_routes.router)
    app.include_router(chat_routes.router)
    if settings.admin_token is not None:  # else the restore endpoint does not exist at all
        app.include_router(admin.router)
    app.include_router(activity.router)
    app.include_router(announcements.router)
    install_frontend(app)
    install_inspector(app)
    app.add_api_websocket_route("/{path:path}", no_such_websocket)  # after every other route
    app.openapi = lambda: openapi_without_422(app)  # type: ignore[method-assign]
    return app
