"""The API's OpenAPI document (/openapi.json, and /docs drawn from it), in its own words: FastAPI
documents a 422 for every route with a body or parameters, but this API answers bad input with
a 400 in its one error shape (accord_app/web/errors.py)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi


def openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """The schema as FastAPI builds it, minus its 422 validation answers: this API uses 400
    instead (a 422 of its own, such as a reused Idempotency-Key, stays)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                if responses.get("422", {}).get("description") == "Validation Error":
                    del responses["422"]
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema
