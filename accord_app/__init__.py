"""Accord: a chat backend built from a stateless API, a catalog database and actors.

`from accord_app import create_app, Settings` works as usual, but loads the web layer only
when asked: importing the actor runtime (accord_app.actors) must not pull in FastAPI.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord_app.app import create_app
    from accord_app.settings import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from accord_app.app import create_app

        return create_app
    if name == "Settings":
        from accord_app.settings import Settings

        return Settings
    raise AttributeError(f"module 'accord_app' has no attribute {name!r}")
