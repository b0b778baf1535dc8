"""What every API route shares, the servers' and channels' and the chat's alike: the documented
error shape, the catalog as a dependency (CatalogDep, the only one) and the "no such server"
error."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from accord_app.api.schemas import ErrorBody
from accord_app.catalog.store import Catalog
from accord_app.web.errors import ApiError

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
