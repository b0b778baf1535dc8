"""Where the app listens and keeps its data: command-line flags over ACCORD_* variables."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The project folder (the package sits in it); data/ beside the package is git-ignored.
PROJECT_DIR = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    return PROJECT_DIR / "data"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8787
    data_dir: Path = field(default_factory=_default_data_dir)

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Read ACCORD_HOST, ACCORD_PORT and ACCORD_DATA_DIR; unset ones keep their defaults."""
        defaults = cls()
        port_text = environ.get("ACCORD_PORT", str(defaults.port))
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"ACCORD_PORT must be a number, not {port_text!r}") from None
        data_dir = environ.get("ACCORD_DATA_DIR")
        return cls(
            host=environ.get("ACCORD_HOST", defaults.host),
            port=port,
            data_dir=Path(data_dir) if data_dir else defaults.data_dir,
        )
