"""GET /api/servers/{server_id}/activity: every channel's count and latest message at once.

The one operation of Accord that needs many actors, and so the other side of the sharding
trade-off. The channels are grouped by their sharding key, one call per actor:

- "server" or "global" sharding: one actor hosts them all, so one call answers (and in the
  cluster, the proxy sends this request straight to that actor's worker);
- "channel" sharding: one call per channel. In the cluster most of those actors live in other
  workers, so most calls cross processes: an HTTP request through the same proxy and the same
  key as any client's. The answer waits for the slowest call, and grows with the channel count.

A production service would cache such a summary, or keep it in a per-server actor that the
channel actors update; here the cost is left in plain sight, to be measured.
"""

import asyncio
import contextlib
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from accord_app.actors import Namespace
from accord_app.api import ERROR_RESPONSES, get_catalog, server_not_found
from accord_app.catalog import Catalog
from accord_app.chat.channel import ChannelActor
from accord_app.chat.routes import activity_of
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.placement import Placement
from accord_app.types import ChannelActivity, ErrorBody

router = APIRouter(prefix="/api/servers/{server_id}")


@router.get(
    "/activity",
    summary="Every channel's message count and latest message, in channel order",
    responses=ERROR_RESPONSES,
)
async def server_activity(
    request: Request, server_id: uuid.UUID, catalog: Annotated[Catalog, Depends(get_catalog)]
) -> list[ChannelActivity]:
    channels = await run_in_threadpool(catalog.list_channels, str(server_id))
    if channels is None:
        raise server_not_found(server_id)
    sharding: Sharding = request.app.state.settings.sharding
    groups: dict[str, list[str]] = {}
    for channel in channels:
        groups.setdefault(shard_key(sharding, str(server_id), channel.id), []).append(channel.id)
    answers = await asyncio.gather(
        *(group_activity(request, str(server_id), key, ids) for key, ids in groups.items())
    )
    by_channel = {activity.channel_id: activity for answer in answers for activity in answer}
    return [by_channel[channel.id] for channel in channels]


async def group_activity(
    request: Request, server_id: str, key: str, channel_ids: list[str]
) -> list[ChannelActivity]:
    """The channels one actor hosts: one call to it here, or one HTTP call per channel to the
    worker that hosts it."""
    placement: Placement | None = request.app.state.placement
    if placement is None or placement.is_mine(key):
        channels: Namespace[ChannelActor] = request.app.state.channels
        rows = await channels.get(channels.id_from_name(key)).activity(channel_ids)
        return [activity_of(row) for row in rows]
    router: httpx.AsyncClient = request.app.state.router
    worker = placement.owner(key)
    return list(
        await asyncio.gather(
            *(remote_activity(router, server_id, channel_id, worker) for channel_id in channel_ids)
        )
    )


async def remote_activity(
    router: httpx.AsyncClient, server_id: str, channel_id: str, worker: int
) -> ChannelActivity:
    """Ask the proxy, which routes by the channel's key to the worker that hosts it."""
    try:
        response = await router.get(f"/api/servers/{server_id}/channels/{channel_id}/activity")
    except httpx.HTTPError as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return unavailable(channel_id, "worker_unreachable", f"Worker {worker}: {reason}")
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    if response.status_code != 200:
        if isinstance(body, dict) and {"message", "code"} <= set(body):
            return unavailable(channel_id, str(body["code"]), str(body["message"]))
        return unavailable(channel_id, "worker_error", f"Worker {worker} answered {response}")
    return activity_of(body)


def unavailable(channel_id: str, code: str, message: str) -> ChannelActivity:
    return ChannelActivity(channel_id, None, None, ErrorBody(message, code))
