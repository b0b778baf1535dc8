"""Storage that runs where the wheels do: Windows fsyncs only a descriptor opened for writing
and has no O_DIRECTORY (nor folder fsync). Both played here on Linux, since no Windows machine
runs this suite (docs/SETUP.md says what is tested where)."""

import fcntl
import os
from pathlib import Path

import pytest

from accord_app.actors import Actor, Runtime
from accord_app.actors.storage import fsync_directory, fsync_path

pytestmark = pytest.mark.anyio


@pytest.fixture
def windows_like(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync refuses read-only descriptors (EBADF, as on Windows) and O_DIRECTORY is gone."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(9, "Bad file descriptor: fsync needs a descriptor open for writing")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.delattr(os, "O_DIRECTORY")


class Counter(Actor):
    async def increment(self) -> int:
        value: int = (self.storage.get("count") or 0) + 1
        self.storage.put("count", value)
        return value


def test_fsync_of_a_file_and_a_folder_where_the_os_is_windows_like(
    tmp_path: Path, windows_like: None
) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    fsync_path(file)
    fsync_directory(tmp_path)  # no folder fsync there: nothing to do, and no error


async def test_an_actor_starts_and_commits_where_the_os_is_windows_like(
    tmp_path: Path, windows_like: None
) -> None:
    runtime = Runtime(tmp_path)
    counters = runtime.namespace("counters", Counter)
    assert await counters.get(counters.id_from_name("a")).increment() == 1
    await runtime.close()
