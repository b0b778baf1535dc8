"""Announcements: one request that reaches every channel actor of a server.

POST /api/servers/{server_id}/announcements fans out to the actors that host the server's
channels: one call per actor here, and, in a cluster, a RemoteActor call (chat/http/remote.py) per
channel hosted elsewhere, which arrives as POST .../channels/{channel_id}/announcements on the
worker that hosts it. Each actor stores the announcement like a message (signed ANNOUNCER, a
name no member may take) and broadcasts it to the channel's members.

The answer lists every channel: the message it got, or the error that says which actor and
which host failed. A dead host costs its own channels, by the deadline, and not the others.
The deadline is below the cluster's router's answer timeout for this path (SPANNING_TIMEOUT in
accord_app/cluster/caddy.py), so a stalled worker is named in the answer, not turned into the
router's 504; and with an Idempotency-Key the client's retry stores nothing twice.

Announcing is a privilege (accord_app/chat/http/announcer.py), and costs the client's request
budget 1 + the number of channels (accord_app/web/middleware.py).
"""

import asyncio
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool

from accord_app.actors import Namespace
from accord_app.api.schemas import Announcement, AnnouncementIn, Delivery, ErrorBody, Message
from accord_app.api.shared import ERROR_RESPONSES, CatalogDep, IdPath, server_not_found
from accord_app.chat.channel import ChannelActor, KeyReused
from accord_app.chat.http.activity import CALLS_HEADER, REMOTE_CALLS_IN_FLIGHT, local_call
from accord_app.chat.http.announcer import announcer
from accord_app.chat.http.remote import RemoteActor, RemoteCallError
from accord_app.chat.http.routes import channel_actor
from accord_app.chat.protocol import ProtocolError, clean_message
from accord_app.chat.sharding import Sharding, group_by_key
from accord_app.cluster.placement import Placement
from accord_app.web.errors import ApiError

# What an announcement may answer besides success.
ANNOUNCE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"model": ErrorBody, "description": "The admin token is missing or wrong."},
    403: {"model": ErrorBody, "description": "Announcements are off (no ACCORD_ADMIN_TOKEN)."},
    422: {"model": ErrorBody, "description": "The Idempotency-Key names another text."},
}
router = APIRouter(prefix="/api/servers/{server_id}", dependencies=[Depends(announcer)])
# How long a fan-out waits for its slowest channel. A host that is down answers by then.
ANNOUNCE_DEADLINE_SECONDS = 5.0
# This worker's channels one announcement writes to at a time. Each write is a turn and an
# fsync of its own: 200 at once would queue ahead of every member's message on the runtime's
# threads and the disk. A few at a time leave room for the members' turns in between, and
# 200 channels still take well under the deadline (0.9 s on a busy 2-core machine).
LOCAL_CALLS_IN_FLIGHT = 4
IDEMPOTENCY_KEY = Header(
    max_length=100,
    description="The same key with the same text stores the announcement once, however often"
    " it is sent; with another text it is refused (422 idempotency_key_reused).",
)


def checked_text(body: AnnouncementIn) -> str:
    try:
        return clean_message(body.message)
    except ProtocolError as error:
        raise ApiError(400, error.code, error.message) from None


@router.post(
    "/announcements",
    summary="Announce a message in every channel of a server",
    responses=ANNOUNCE_ERRORS,
)
async def announce(
    request: Request,
    response: Response,
    server_id: uuid.UUID,
    body: AnnouncementIn,
    catalog: CatalogDep,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> Announcement:
    """Each channel answers for itself. With an Idempotency-Key, asking again (after some
    channels failed, say) stores the announcement once in each channel."""
    text = checked_text(body)
    channels = await run_in_threadpool(catalog.list_channels, str(server_id))
    if channels is None:
        raise server_not_found(server_id)
    sharding: Sharding = request.app.state.settings.sharding
    placement: Placement | None = request.app.state.placement
    announcement_id = idempotency_key or str(uuid.uuid4())
    deadline = time.monotonic() + ANNOUNCE_DEADLINE_SECONDS
    in_flight = asyncio.Semaphore(REMOTE_CALLS_IN_FLIGHT)
    local_in_flight = asyncio.Semaphore(LOCAL_CALLS_IN_FLIGHT)
    groups = group_by_key(sharding, str(server_id), (channel.id for channel in channels))

    async def deliver(key: str, channel_id: str) -> Delivery:
        try:
            if placement is None or placement.is_mine(key):
                actors: Namespace[ChannelActor] = request.app.state.channels
                stub = actors.get(actors.id_from_name(key))
                async with local_in_flight:
                    row = await local_call(
                        stub.announce(channel_id, text, announcement_id), key, deadline
                    )
            else:
                state = request.app.state
                remote = RemoteActor.placed(state.router, placement, key, state.metrics)
                path = f"/api/servers/{server_id}/channels/{channel_id}/announcements"
                async with in_flight:
                    row = await remote.call(
                        "POST",
                        path,
                        json={"message": text},
                        deadline=deadline,
                        idempotency_key=announcement_id,
                    )
        except RemoteCallError as error:  # this channel's answer; the others' stand
            return Delivery(channel_id, None, ErrorBody(str(error), error.code))
        return Delivery(channel_id, Message(**row))

    deliveries = await asyncio.gather(
        *(deliver(key, channel_id) for key, ids in groups.items() for channel_id in ids)
    )
    reused = [d.error for d in deliveries if d.error and d.error.code == KeyReused.code]
    if reused:
        raise ApiError(422, KeyReused.code, str(KeyReused(announcement_id)))
    by_channel = {delivery.channel_id: delivery for delivery in deliveries}
    ordered = [by_channel[channel.id] for channel in channels]
    # One call per channel here (each stores its own message), local or remote.
    local = sum(
        len(ids) for key, ids in groups.items() if placement is None or placement.is_mine(key)
    )
    response.headers[CALLS_HEADER] = f"{local} local, {len(ordered) - local} remote"
    failed = sum(1 for delivery in ordered if delivery.error is not None)
    return Announcement(announcement_id, len(ordered) - failed, failed, ordered)


@router.post(
    "/channels/{channel_id}/announcements",
    status_code=201,
    summary="Announce a message in one channel (what the server-wide announcement calls)",
    responses=ANNOUNCE_ERRORS,
)
async def announce_in_channel(
    request: Request,
    server_id: IdPath,
    channel_id: IdPath,
    body: AnnouncementIn,
    idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
) -> Message:
    """With an Idempotency-Key, asking again returns the first announcement, stored once."""
    text = checked_text(body)
    actor: Any = await channel_actor(request, server_id, channel_id)
    try:
        row = await actor.announce(
            str(uuid.UUID(channel_id)), text, idempotency_key or str(uuid.uuid4())
        )
    except KeyReused as error:
        raise ApiError(422, error.code, str(error)) from None
    return Message(**row)
