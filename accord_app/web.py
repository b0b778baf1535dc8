"""What every HTTP route of Accord shares, the servers' and channels' API and the chat's alike:
the documented error shape, the catalog as a dependency, the "no such server" error, and ids
written one way only."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from accord_app.catalog import Catalog
from accord_app.errors import ApiError, error_response
from accord_app.types import ErrorBody

# A server's or channel's id in a path, checked by the route itself (its own error codes); the
# schema says what it is.
IdPath = Annotated[str, Path(json_schema_extra={"format": "uuid"})]

# Documented on every route so /openapi.json lists the error shape next to the success one.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is malformed."},
    404: {"model": ErrorBody, "description": "The server does not exist."},
}


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def server_not_found(server_id: uuid.UUID) -> ApiError:
    return ApiError(404, "server_not_found", f"There is no server with id {server_id}.")


# Where ids stand in the API's paths: /api/servers/{server_id}/channels/{channel_id}/...
_ID_SEGMENTS = {3: "server_id", 5: "channel_id"}


def non_canonical_id(path: str) -> tuple[str, str] | None:
    """(field, canonical form) of the first id in `path` that is a UUID written another way
    (upper case, no hyphens, braces, urn:uuid:); None if there is none."""
    parts = path.split("/")
    if parts[1:3] != ["api", "servers"]:
        return None
    if len(parts) > 4 and parts[4] != "channels":
        parts = parts[:4]  # only the server's id is an id on its other paths
    for index, name in _ID_SEGMENTS.items():
        if index >= len(parts):
            break
        try:
            canonical = str(uuid.UUID(parts[index]))
        except ValueError:
            continue  # not a UUID at all: the route answers its own 400 or 404
        if parts[index] != canonical:
            return name, canonical
    return None


class CanonicalIds:
    """Pure ASGI middleware: an id in the path must be written as the API writes it, a UUID in
    lower case with hyphens, or it is a 400. The cluster's proxy routes a channel by the text
    of its ids; if the app read "ABC…" as "abc…", the two would disagree on its worker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = non_canonical_id(scope["path"]) if scope["type"] in ("http", "websocket") else None
        if found is None:
            await self.app(scope, receive, send)
            return
        name, canonical = found
        message = (
            f"The {name} in the path must be a UUID written in lower case with hyphens,"
            f" such as {canonical}."
        )
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await error_response(400, f"invalid_{name}", message)(scope, receive, send)
