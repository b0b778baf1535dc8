"""Tools for the notebooks: serve an app in the background, and friendly self-checks.

`from accord_app.lab import serve, check` works as usual, but loads them only when asked:
`python3 -m accord_app.lab.doctor` must run on a bare Python, before .venv exists.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
# Each name, and the module of this package that defines it.
_HOMES = {
    "BackgroundServer": "server",
    "CheckFailed": "checks",
    "Report": "checks",
    "ServerStartError": "server",
    "check": "checks",
    "serve": "server",
    "stop_all": "server",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"accord_app.lab.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'accord_app.lab' has no attribute {name!r}")
