"""Accord: a chat backend built from a stateless API, a catalog database and actors.

`from accord_app import create_app, Settings` works as usual, but loads the web layer only
when asked: importing the actor runtime (accord_app.actors) must not pull in FastAPI.
`__version__` is the installed package's (pyproject.toml holds the one version string); read
when asked too, so `python -m accord_app.lab.doctor` runs before the package is installed.
"""

from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord_app.app import create_app
    from accord_app.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return metadata.version("accord-app")
    if name == "create_app":
        from accord_app.app import create_app

        return create_app
    if name == "Settings":
        from accord_app.settings import Settings

        return Settings
    raise AttributeError(f"module 'accord_app' has no attribute {name!r}")
