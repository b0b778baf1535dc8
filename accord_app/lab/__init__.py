"""Tools for the notebooks: serve an app in the background, and friendly self-checks."""

from accord_app.lab.checks import CheckFailed, Report, check
from accord_app.lab.server import BackgroundServer, ServerStartError, serve, stop_all

__all__ = [
    "BackgroundServer",
    "CheckFailed",
    "Report",
    "ServerStartError",
    "check",
    "serve",
    "stop_all",
]
