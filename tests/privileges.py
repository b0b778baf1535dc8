"""What a test needs of the user that runs it (test modules cannot import conftest reliably:
each folder of tests has a conftest of its own)."""

import os

import pytest


def need_root(what: str) -> None:
    """Skip a test that needs root (to mount a filesystem, say), with the reason; in CI, which
    runs as root, fail it instead: nothing may be skipped there."""
    if os.geteuid() != 0:
        message = f"needs root to {what}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
