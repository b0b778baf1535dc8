"""Assemble the Accord app: catalog, API routes, error shape, limits and offline docs."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from accord_app import api
from accord_app.catalog import Catalog
from accord_app.docs import install_offline_docs
from accord_app.errors import install_error_handlers
from accord_app.limits import BodySizeLimit
from accord_app.settings import Settings

DESCRIPTION = """\
Accord is a real-time chat backend: servers and channels live in a catalog database,
and every error answers with `{"message": ..., "code": ...}`.
"""


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """The schema as FastAPI builds it, minus its 422 answers: this API uses 400 instead."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="Accord", version="0.1.0", description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    catalog = Catalog(settings.catalog_path)
    catalog.migrate()
    app.state.settings = settings
    app.state.catalog = catalog
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    app.include_router(api.router)
    install_offline_docs(app)
    app.openapi = lambda: _openapi_without_422(app)  # type: ignore[method-assign]
    return app
