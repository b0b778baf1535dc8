"""The Accord HTTP API for servers and channels: the contract the frontend relies on."""

import uuid

from fastapi import APIRouter

from accord_app.api.names import looks_like
from accord_app.api.schemas import Channel, ErrorBody, NameIn, Server
from accord_app.api.shared import ERROR_RESPONSES, CatalogDep, server_not_found
from accord_app.web.errors import ApiError

router = APIRouter(prefix="/api")


# async: answered on the event loop, never queued behind the catalog's calls in the thread
# pool (Caddy's health checks ask it each second, and must not fail with a slow catalog).
@router.get("", summary="Check that the API answers")
async def api_root() -> dict[str, bool]:
    return {"api": True}


@router.get("/servers", summary="List servers, oldest first")
def list_servers(catalog: CatalogDep) -> list[Server]:
    return catalog.list_servers()


@router.post(
    "/servers",
    status_code=201,
    summary="Create a server",
    responses={
        400: ERROR_RESPONSES[400],
        409: {"model": ErrorBody, "description": "The name looks like another server's."},
    },
)
def create_server(body: NameIn, catalog: CatalogDep) -> Server:
    """A name that renders like an existing server's (names.skeleton) is refused: a
    look-alike server could pass for the real one in a list. The same name is allowed: it
    looks like what it is."""
    present = looks_like(body.name, (server.name for server in catalog.list_servers()))
    if present is not None:
        raise ApiError(
            409,
            "name_looks_like",
            f"The name {body.name!r} looks like that of the server {present!r}: choose another.",
        )
    return catalog.create_server(body.name)


@router.get(
    "/servers/{server_id}/channels",
    summary="List a server's channels, oldest first",
    responses=ERROR_RESPONSES,
)
def list_channels(server_id: uuid.UUID, catalog: CatalogDep) -> list[Channel]:
    channels = catalog.list_channels(str(server_id))
    if channels is None:
        raise server_not_found(server_id)
    return channels


@router.post(
    "/servers/{server_id}/channels",
    status_code=201,
    summary="Create a channel in a server",
    responses=ERROR_RESPONSES,
)
def create_channel(server_id: uuid.UUID, body: NameIn, catalog: CatalogDep) -> Channel:
    channel = catalog.create_channel(str(server_id), body.name)
    if channel is None:
        raise server_not_found(server_id)
    return channel
