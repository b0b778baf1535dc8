"""The channel endpoints: message history over HTTP, and the WebSocket that joins a channel.

Both find the channel in the catalog first (the stateless part), then hand the work to the
actor that the sharding key names. A refusal comes before the WebSocket upgrade, as an HTTP
error with the API's usual JSON body, so a client learns why in words, not a bare close code.
"""

import asyncio
import logging
import math
import sqlite3
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from accord_app.actors import Namespace
from accord_app.api.schemas import ChannelActivity, ErrorBody, Message
from accord_app.api.shared import ERROR_RESPONSES, IdPath
from accord_app.catalog.store import Catalog, CatalogUnavailable
from accord_app.chat.channel import ChannelActor
from accord_app.chat.failures import INTERNAL_ERROR, describe_failure
from accord_app.chat.frame_guard import FRAME_GUARD
from accord_app.chat.http.websocket import StarletteTransport, accept
from accord_app.chat.protocol import MAX_SEQ, MAX_USERNAME_CHARS, ProtocolError, clean_username
from accord_app.chat.ratelimit import ClientLimits, ConnectionBudget
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster.handback import Handback
from accord_app.cluster.placement import Placement
from accord_app.web.errors import ApiError, refuse
from accord_app.web.fast_websocket import FastWebSocket
from accord_app.web.middleware import client_address
from accord_app.web.origins import origin_allowed

logger = logging.getLogger("accord")
router = APIRouter(prefix="/api/servers/{server_id}/channels/{channel_id}")

HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 50, 200
# What a channel's endpoints may answer besides success.
CHANNEL_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    421: {"model": ErrorBody, "description": "Another worker of the cluster hosts the channel."},
}


def parse_uuid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(400, f"invalid_{name}", f"The {name} in the path must be a UUID.") from None


def misdirected(placement: Placement, key: str, channel_id: str) -> ApiError:
    return ApiError(
        421,
        "wrong_worker",
        f"Channel {channel_id} is hosted by worker {placement.owner(key)}, and this is worker"
        f" {placement.me}: send requests through the cluster's router, which knows. A worker"
        " never opens an actor that another one hosts.",
    )


async def channel_actor(connection: HTTPConnection, server_id: str, channel_id: str) -> Any:
    """The stub of the actor hosting this channel; ApiError if the channel does not exist, or
    if another worker of the cluster hosts it."""
    server_id, channel_id = parse_uuid(server_id, "server_id"), parse_uuid(channel_id, "channel_id")
    sharding: Sharding = connection.app.state.settings.sharding
    key = shard_key(sharding, server_id, channel_id)
    placement: Placement | None = connection.app.state.placement
    # With a replicated log, the router may send a key to another worker while its own is
    # down; a second copy is safe there (the log fences the older one), so it is served.
    replicated = connection.app.state.settings.replication is not None
    if placement is not None and not placement.is_mine(key) and not replicated:
        raise misdirected(placement, key, channel_id)
    handback: Handback | None = connection.app.state.handback
    if handback is not None:
        handback.note(key)  # served here while its host is down: handed back when it returns
    catalog: Catalog = connection.app.state.catalog
    if await run_in_threadpool(catalog.get_channel, server_id, channel_id) is None:
        if await run_in_threadpool(catalog.get_server, server_id) is None:
            raise ApiError(404, "server_not_found", f"There is no server with id {server_id}.")
        raise ApiError(
            404, "channel_not_found", f"Server {server_id} has no channel with id {channel_id}."
        )
    channels: Namespace[ChannelActor] = connection.app.state.channels
    return channels.get(channels.id_from_name(key))


@router.get(
    "/messages", summary="The latest messages of a channel, newest first", responses=CHANNEL_ERRORS
)
async def list_messages(
    request: Request,
    server_id: IdPath,
    channel_id: IdPath,
    limit: Annotated[int, Query(ge=1, le=HISTORY_LIMIT_MAX)] = HISTORY_LIMIT_DEFAULT,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_SEQ, description="only messages with a smaller seq")
    ] = None,
) -> list[Message]:
    actor = await channel_actor(request, server_id, channel_id)
    rows = await actor.history(str(uuid.UUID(channel_id)), limit, before)
    return [Message(**row) for row in rows]


@router.get(
    "/activity",
    summary="A channel's message count and latest message",
    responses=CHANNEL_ERRORS,
)
async def channel_activity(
    request: Request, server_id: IdPath, channel_id: IdPath
) -> ChannelActivity:
    actor = await channel_actor(request, server_id, channel_id)
    [row] = await actor.activity([str(uuid.UUID(channel_id))])
    return activity_of(row)


def activity_of(row: dict[str, Any]) -> ChannelActivity:
    latest = row["latest"]
    return ChannelActivity(
        row["channel_id"], row["messages"], None if latest is None else Message(**latest)
    )


@router.get(
    "/connect",
    summary="Join a channel over WebSocket (this plain GET only explains how)",
    status_code=426,
    responses={426: {"model": ErrorBody, "description": "Connect with a WebSocket client."}},
)
def connect_without_websocket(
    server_id: IdPath,
    channel_id: IdPath,
    username: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_USERNAME_CHARS,
            description="The name the member speaks under in this channel.",
        ),
    ] = None,
    after_seq: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SEQ,
            description="Replay the messages after this seq once joined (a reconnect).",
        ),
    ] = None,
) -> None:
    """The WebSocket's query parameters are declared here, the route the schema can show."""
    raise HTTPException(426, "Connect with a WebSocket client: this endpoint upgrades.")


@router.websocket("/connect")
async def connect(
    websocket: WebSocket,
    server_id: str,
    channel_id: str,
    username: str | None = None,
    after_seq: str | None = None,
) -> None:
    settings = websocket.app.state.settings
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings.allowed_origins):
        shown = (origin or "")[:100]
        message = (
            f"Pages from {shown} may not connect to this Accord: only its own pages may, and"
            " the origins listed in ACCORD_ALLOWED_ORIGINS."
        )
        await refuse(websocket, 403, "origin_not_allowed", message)
        return
    try:
        name = clean_username(username)
        resume_from = parse_after_seq(after_seq)
        actor = await channel_actor(websocket, server_id, channel_id)
    except ProtocolError as error:
        await refuse(websocket, 400, error.code, error.message)
        return
    except ApiError as error:
        await refuse(websocket, error.status_code, error.code, error.message)
        return
    # The catalog: a full disk, no file descriptors, a database server out of reach.
    except (sqlite3.Error, CatalogUnavailable, OSError) as error:
        failure = describe_failure(error, settings.data_dir)
        await refuse(websocket, failure.status, failure.code, failure.sentence)
        return
    client = client_address(websocket)
    clients: ClientLimits = websocket.app.state.clients
    refusal = clients.connect(client, time.monotonic())
    if refusal is not None:
        wait = math.ceil(clients.connect_retry_after(client))
        guard = websocket.scope.get("extensions", {}).get(FRAME_GUARD)
        if wait and guard is not None:
            # Over its rate of new connections: the address's next ones wait in the HTTP
            # edge's penalty box, unread, instead of each costing a handshake and a refusal.
            guard["guard"].penalize(wait)
        headers = {"retry-after": str(wait)} if wait else None
        await refuse(websocket, 429, "too_many_connections", refusal, headers)
        return

    def release() -> None:
        clients.disconnect(client, time.monotonic())

    try:
        transport = await accept(websocket, client)
    except BaseException:
        release()
        raise
    if transport.frame_guard is not None:  # from now on every frame pays, whoever handles it
        transport.frame_guard.arm(ConnectionBudget.open(clients, client), clients.limits.strikes)
    if isinstance(transport, StarletteTransport):
        try:
            await serve_member(actor, transport, channel_id, name, resume_from)
        finally:
            release()
    else:
        # The fast path: the socket outlives this endpoint, and counts until it closes.
        transport.when_closed(release)
        await serve_member(actor, transport, channel_id, name, resume_from)


async def serve_member(
    actor: Any,
    transport: StarletteTransport | FastWebSocket,
    channel_id: str,
    name: str,
    after: int | None,
) -> None:
    """Hand the socket to the channel's actor and wait until it closes."""
    try:
        await actor.join(transport, str(uuid.UUID(channel_id)), name, after)
    except Exception as error:  # the runtime logged a storage failure already, once
        failure = describe_failure(error)
        if failure is INTERNAL_ERROR:
            logger.exception("joining channel %s failed", channel_id)
        await transport.close(failure.close_code, failure.sentence)
        return
    if not transport.receiving:
        await asyncio.sleep(0)  # the runtime's reader starts on the loop's next round
    if not transport.receiving:
        # join() returned without ctx.accept_websocket(): nobody would ever read this socket
        # or answer its close. Say so rather than leave the member (and shutdown) hanging.
        logger.error("the actor of channel %s did not accept the socket in join()", channel_id)
        await transport.close(1011, "the channel's actor did not take the connection")
        return
    if isinstance(transport, StarletteTransport):
        # The actor's runtime owns the socket now; returning would make Starlette close it.
        await transport.wait_closed()


def parse_after_seq(value: str | None) -> int | None:
    if value is None:
        return None
    # isascii: "²".isdigit() is True, and int() refuses it. The length first: int() refuses
    # more than 4300 digits (a guard against slow conversions), which would be a 500.
    if (
        not (value.isascii() and value.isdigit())
        or len(value) > len(str(MAX_SEQ))
        or int(value) > MAX_SEQ
    ):
        raise ProtocolError("invalid_after_seq", "after_seq must be a whole number, 0 or more.")
    return int(value)
