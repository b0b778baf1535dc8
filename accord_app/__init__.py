"""Accord: a chat backend built from a stateless API, a catalog database and actors."""

from accord_app.app import create_app
from accord_app.settings import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"
