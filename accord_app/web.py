"""What every HTTP route of Accord shares, the servers' and channels' API and the chat's alike:
the documented error shape, the catalog as a dependency, and the "no such server" error."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request

from accord_app.catalog import Catalog
from accord_app.errors import ApiError
from accord_app.types import ErrorBody

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
