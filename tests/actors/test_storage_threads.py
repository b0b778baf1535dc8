"""Disk work stays off the event loop: creating, opening and closing an actor's database
run in worker threads (each may fsync; a slow or hung disk would hold every actor), and the
folders above an actor's file are made durable once, when it is created."""

import threading
from pathlib import Path

import pytest

from accord_app.actors import Actor, ActorContext, Runtime, storage
from accord_app.actors.storage import Storage

pytestmark = pytest.mark.anyio


class Touched(Actor):
    async def touch(self) -> None:
        self.storage.put("touched", True)


class Failing(Actor):
    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        raise RuntimeError("the constructor fails: the actor is reset")

    async def touch(self) -> None: ...


@pytest.fixture
def disk_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bool]]:
    """(what, which file or folder, on the loop's thread) for each fsync and close."""
    calls: list[tuple[str, str, bool]] = []
    loop_thread = threading.current_thread()

    def recorded(what: str, original: object) -> object:
        def call(target: object) -> None:
            name = str(target.path if isinstance(target, Storage) else target)
            calls.append((what, name, threading.current_thread() is loop_thread))
            original(target)  # type: ignore[operator]

        return call

    monkeypatch.setattr(storage, "fsync_path", recorded("fsync", storage.fsync_path))
    monkeypatch.setattr(storage, "fsync_directory", recorded("folder", storage.fsync_directory))
    monkeypatch.setattr(Storage, "close", recorded("close", Storage.close))
    return calls


async def test_creating_an_actor_fsyncs_its_folders_off_the_loop_and_once(
    tmp_path: Path, disk_calls: list[tuple[str, str, bool]]
) -> None:
    runtime = Runtime(tmp_path)
    touched = runtime.namespace("touched", Touched)
    stub = touched.get(touched.id_from_name("a"))
    await stub.touch()
    assert disk_calls and not [call for call in disk_calls if call[2]], disk_calls
    created_folders = [call for call in disk_calls if call[0] == "folder"]
    touched.host(stub.id.hex).hibernate()
    await touched.wait_until_closed(stub.id.hex)
    disk_calls.clear()
    await stub.touch()  # a wake-up: the -wal's folder only (its name is new)
    woken_folders = [call for call in disk_calls if call[0] == "folder"]
    assert len(created_folders) > len(woken_folders) == 1
    assert not [call for call in disk_calls if call[2]], disk_calls
    await runtime.close()


async def test_a_reset_closes_the_database_off_the_loop(
    tmp_path: Path, disk_calls: list[tuple[str, str, bool]]
) -> None:
    runtime = Runtime(tmp_path)
    failing = runtime.namespace("failing", Failing)
    with pytest.raises(RuntimeError, match="constructor fails"):
        await failing.get(failing.id_from_name("a")).touch()
    await runtime.close()
    closes = [call for call in disk_calls if call[0] == "close"]
    assert closes and not [call for call in closes if call[2]], closes
