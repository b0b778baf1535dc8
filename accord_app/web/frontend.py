"""The ready-made web frontend: plain HTML, CSS and ES modules in static/, served at `/`.

There is no build step and nothing is fetched from outside the machine, so the page works on a
workshop's Wi-Fi (or with none). index.html is at `/`, everything else under `/static/`.
"""

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"  # accord_app/static
STATIC_URL = "/static"

# Browsers refuse to run an ES module served with the wrong type, and Python's guess comes from
# the operating system (on Windows, the registry may say text/plain for .js). So we say it.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Only this origin may provide scripts, styles, images and connections (WebSockets included):
# a message that smuggled in markup could neither run code nor load anything from elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# Attendees edit these files during the lab: the browser must ask again on every load (it gets
# a cheap 304 when nothing changed) rather than run yesterday's copy.
HEADERS = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "content-security-policy": CONTENT_SECURITY_POLICY,
}


class FrontendFiles(StaticFiles):
    """StaticFiles with explicit content types and the headers above."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix.lower())
        if media_type is not None and response.status_code != 304:
            response.headers["content-type"] = media_type
        response.headers.update(HEADERS)
        return response


def install_frontend(app: FastAPI) -> None:
    """Serve static/index.html at `/` and the other files of static/ under /static/."""
    app.mount(STATIC_URL, FrontendFiles(directory=STATIC_DIR), name="frontend")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type=MEDIA_TYPES[".html"], headers=HEADERS
        )
