"""GET /api/servers/{server_id}/activity: every channel's count and latest message at once.

The one operation of Accord that needs many actors, and so the other side of the sharding
trade-off. The channels are grouped by their sharding key, one call per actor:

- "server" or "global" sharding: one actor hosts them all, so one call answers (and in the
  cluster, the proxy sends this request straight to that actor's worker);
- "channel" sharding: one call per channel. In the cluster most of those actors live in other
  workers, so most calls cross processes: an HTTP request through the same proxy and the same
  key as any client's. The answer waits for the slowest call, and grows with the channel count.

The answer's X-Accord-Actor-Calls header says how many calls it took, here and elsewhere.

A production service would cache such a summary, or keep it in a per-server actor that the
channel actors update; here the cost is left in plain sight, to be measured.
"""

import asyncio
import logging
import time
import uuid
from typing import TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from accord_app.actors import Namespace
from accord_app.api.schemas import ChannelActivity, ErrorBody
from accord_app.api.shared import ERROR_RESPONSES, CatalogDep, server_not_found
from accord_app.chat.channel import ChannelActor, KeyReused
from accord_app.chat.failures import INTERNAL_ERROR, describe_failure
from accord_app.chat.http.remote import CallRefused, CallTimedOut, RemoteActor, RemoteCallError
from accord_app.chat.http.routes import activity_of
from accord_app.chat.sharding import Sharding, group_by_key
from accord_app.cluster.placement import Placement

router = APIRouter(prefix="/api/servers/{server_id}")
REMOTE_CALLS_IN_FLIGHT = 32
# How long the answer waits for its slowest channel: a host that is down costs this, no more.
ACTIVITY_DEADLINE_SECONDS = 5.0


logger = logging.getLogger("accord")
T = TypeVar("T")
LOCAL_HOST = "this worker"  # the host a local call's errors name

# How many actors one answer asked, here and on other workers: "3 local, 17 remote".
CALLS_HEADER = "X-Accord-Actor-Calls"


@router.get(
    "/activity",
    summary="Every channel's message count and latest message, in channel order",
    responses=ERROR_RESPONSES,
)
async def server_activity(
    request: Request,
    response: Response,
    server_id: uuid.UUID,
    catalog: CatalogDep,
) -> list[ChannelActivity]:
    channels = await run_in_threadpool(catalog.list_channels, str(server_id))
    if channels is None:
        raise server_not_found(server_id)
    sharding: Sharding = request.app.state.settings.sharding
    groups = group_by_key(sharding, str(server_id), (channel.id for channel in channels))
    # A thousand calls at once would only queue for connections and time out: at most
    # REMOTE_CALLS_IN_FLIGHT of this request's calls go out together, on kept-alive connections.
    # Local calls too: waking a sleeping actor opens its database on the runtime's threads,
    # where every member's commit waits its turn behind the opens already queued.
    in_flight = asyncio.Semaphore(REMOTE_CALLS_IN_FLIGHT)
    answers = await asyncio.gather(
        *(
            group_activity(request, in_flight, str(server_id), key, ids)
            for key, ids in groups.items()
        )
    )
    placement: Placement | None = request.app.state.placement
    local = sum(1 for key in groups if placement is None or placement.is_mine(key))
    remote = sum(
        len(ids) for key, ids in groups.items() if placement and not placement.is_mine(key)
    )
    response.headers[CALLS_HEADER] = f"{local} local, {remote} remote"
    by_channel = {activity.channel_id: activity for answer in answers for activity in answer}
    return [by_channel[channel.id] for channel in channels]


async def group_activity(
    request: Request,
    in_flight: asyncio.Semaphore,
    server_id: str,
    key: str,
    channel_ids: list[str],
) -> list[ChannelActivity]:
    """The channels one actor hosts: one call to it here, or one HTTP call per channel to the
    worker that hosts it."""
    placement: Placement | None = request.app.state.placement
    deadline = time.monotonic() + ACTIVITY_DEADLINE_SECONDS
    if placement is None or placement.is_mine(key):
        channels: Namespace[ChannelActor] = request.app.state.channels
        stub = channels.get(channels.id_from_name(key))
        try:
            async with in_flight:  # each call may wake an actor: see the comment above
                rows = await local_call(stub.activity(channel_ids), key, deadline)
        except RemoteCallError as error:  # the actor's failure is each of its channels' answer
            return [unavailable(c, error.code, str(error)) for c in channel_ids]
        return [activity_of(row) for row in rows]
    remote = RemoteActor.placed(request.app.state.router, placement, key, request.app.state.metrics)
    calls = (remote_activity(remote, in_flight, server_id, c, deadline) for c in channel_ids)
    return list(await asyncio.gather(*calls))


async def local_call(call: "asyncio.Future[T]", key: str, deadline: float) -> T:
    """An actor call in this process that fails as a remote one does (RemoteCallError, by the
    same deadline), so a fan-out answers each channel alike wherever its actor lives. On a
    timeout the call stays queued in the actor; only the wait ends."""
    try:
        return await asyncio.wait_for(call, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise CallTimedOut(key, LOCAL_HOST, "no answer by the deadline") from None
    except KeyReused as error:  # the caller's mistake, answered as the remote endpoint does
        raise CallRefused(key, LOCAL_HOST, 422, error.code, str(error)) from None
    except Exception as error:
        failure = describe_failure(error)
        if failure is INTERNAL_ERROR:
            logger.exception("a call to actor %s failed", key)
        raise CallRefused(
            key, LOCAL_HOST, failure.status, failure.code, failure.sentence
        ) from error


async def remote_activity(
    remote: RemoteActor,
    in_flight: asyncio.Semaphore,
    server_id: str,
    channel_id: str,
    deadline: float,
) -> ChannelActivity:
    """Ask the proxy, which routes by the channel's key to the worker that hosts it."""
    path = f"/api/servers/{server_id}/channels/{channel_id}/activity"
    try:
        async with in_flight:
            return activity_of(await remote.call("GET", path, deadline=deadline))
    except RemoteCallError as error:
        return unavailable(channel_id, error.code, str(error))


def unavailable(channel_id: str, code: str, message: str) -> ChannelActivity:
    return ChannelActivity(channel_id, None, None, ErrorBody(message, code))
