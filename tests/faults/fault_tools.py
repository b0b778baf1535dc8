"""Helpers of the fault tests that are not fixtures."""

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def refused(url: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """Open a WebSocket that must be refused at the handshake: its HTTP status and JSON body."""
    with pytest.raises(InvalidStatus) as refusal, connect(url, **options):
        pass
    response = refusal.value.response
    return response.status_code, json.loads(response.body)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` up; the file to delete to free it again."""
    filler = folder / "filler"
    with filler.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:
            pass
    return filler
