"""The operator's endpoint: restore a channel to a moment of its past (point-in-time recovery,
with the replicated log). It exists only when ACCORD_ADMIN_TOKEN is set, and answers 403 to a
request without that token as a bearer token.

    POST /api/servers/{server_id}/channels/{channel_id}/restore
    Authorization: Bearer <ACCORD_ADMIN_TOKEN>
    {"time": 1765130000.0}  or  {"bookmark": "00000000000000000042"}
    -> {"restored": "<bookmark>", "undo": "<bookmark that undoes it>"}

The channel restarts at once from the restored state: its members are closed with 1012 and
reconnect, as after a move.
"""

import secrets
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from accord_app.actors import BookmarkError, StorageError, StorageUnavailable
from accord_app.api.schemas import ErrorBody
from accord_app.api.shared import IdPath
from accord_app.chat.http.routes import CHANNEL_ERRORS, channel_actor
from accord_app.web.errors import ApiError

router = APIRouter(prefix="/api/servers/{server_id}/channels/{channel_id}")


class RestoreIn(BaseModel):
    bookmark: str | None = None  # as get_current_bookmark() returned it
    time: float | None = None  # epoch seconds: the state at that moment


class RestoreOut(BaseModel):
    restored: str
    undo: str


@router.post(
    "/restore",
    summary="Restore a channel to a bookmark or a time (admin token)",
    responses={
        **CHANNEL_ERRORS,
        403: {"model": ErrorBody, "description": "No admin token, or another one."},
        409: {"model": ErrorBody, "description": "This worker keeps no replicated log."},
    },
)
async def restore_channel(
    request: Request,
    server_id: IdPath,
    channel_id: IdPath,
    body: RestoreIn,
    authorization: Annotated[str | None, Header()] = None,
) -> RestoreOut:
    expected = f"Bearer {request.app.state.settings.admin_token}".encode()
    if authorization is None or not secrets.compare_digest(authorization.encode(), expected):
        raise ApiError(
            403, "forbidden", "Restoring needs the admin token: Authorization: Bearer <token>."
        )
    if (body.bookmark is None) == (body.time is None):
        raise ApiError(
            400, "invalid_restore", "Give a bookmark or a time (epoch seconds): one of the two."
        )
    actor = await channel_actor(request, server_id, channel_id)
    try:
        result = await actor.restore(body.bookmark, body.time)
    except BookmarkError as error:
        raise ApiError(400, "invalid_bookmark", str(error)) from None
    except StorageUnavailable:
        raise  # the app's answer for storage that is down: 503
    except StorageError as error:
        raise ApiError(409, "not_replicated", str(error)) from None
    return RestoreOut(**result)
