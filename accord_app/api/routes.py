"""The Accord HTTP API for servers and channels: the contract the frontend relies on."""

import uuid

from fastapi import APIRouter

from accord_app.api.schemas import Channel, NameIn, Server
from accord_app.api.shared import ERROR_RESPONSES, CatalogDep, server_not_found

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
    "/servers", status_code=201, summary="Create a server", responses={400: ERROR_RESPONSES[400]}
)
def create_server(body: NameIn, catalog: CatalogDep) -> Server:
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
