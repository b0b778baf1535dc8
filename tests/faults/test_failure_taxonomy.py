"""One taxonomy for Accord's failures (describe_failure, in accord_app/chat/failures.py), and
the promise its sentences make about a failed commit: it may or may not have been stored, and
a retry with the same nonce stores it once."""

import asyncio
import errno
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from accord_app.actors import (
    ActorOverloaded,
    ActorReset,
    CommitFailed,
    Fenced,
    MemoryDirectTransport,
    Runtime,
    StorageBusy,
    StorageDamaged,
    StorageFull,
    StorageUnavailable,
)
from accord_app.catalog.store import CatalogUnavailable
from accord_app.chat.channel import ChannelActor
from accord_app.chat.failures import INTERNAL_ERROR, describe_failure

pytestmark = pytest.mark.anyio
CHANNEL = "2b0e4f6a-8a1c-4b4e-9f3a-0c6d2b1e7f10"

FAILURES: list[BaseException] = [
    ActorOverloaded("queue full"),
    StorageFull("disk full"),
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EMFILE, "Too many open files"),
    StorageDamaged("damaged"),
    sqlite3.DatabaseError("file is not a database"),
    StorageBusy("held"),
    StorageUnavailable("read-only"),
    CatalogUnavailable("down"),
    sqlite3.OperationalError("unable to open database file"),
    CommitFailed("fsync failed"),
    ActorReset("reset"),
    Fenced("a newer epoch"),
]


@pytest.mark.parametrize("error", FAILURES, ids=lambda error: type(error).__name__)
def test_every_failure_has_a_code_a_status_a_close_code_and_a_sentence_that_fits(
    error: BaseException,
) -> None:
    failure = describe_failure(error)
    assert failure is not INTERNAL_ERROR
    assert failure.status == 503 and failure.close_code in (1011, 1013)
    assert len(failure.sentence.encode()) <= 123  # a close frame's reason
    assert failure.sentence.endswith((".", "?"))


def test_only_a_certain_refusal_says_not_stored() -> None:
    """No answer is not a no: a failed commit's outcome is unknown, a fence's is not."""
    for unknown in (CommitFailed("the log did not answer in time"), ActorReset("reset")):
        failure = describe_failure(unknown)
        assert failure.code == "outcome_unknown" and "may or may not" in failure.sentence
    fenced = describe_failure(Fenced("a newer epoch"))
    assert fenced.code == "not_stored" and "was not stored" in fenced.sentence


def test_anything_else_is_an_internal_error() -> None:
    failure = describe_failure(ValueError("a bug"))
    assert (failure.code, failure.status, failure.close_code) == ("internal_error", 500, 1011)


class FlakyFsync:
    """Fails the next fsync once armed: a disk that did not confirm one commit."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, path: Path) -> None:
        if self.armed:
            self.armed = False
            raise OSError(errno.EIO, "Input/output error", str(path))


async def next_frame(client: MemoryDirectTransport) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(client.client_receive(), 5))
    return frame


async def test_a_failed_commit_says_may_or_may_not_and_the_same_nonce_stores_it_once(
    tmp_path: Path,
) -> None:
    fsync = FlakyFsync()
    runtime = Runtime(tmp_path, fsync=fsync)
    channels = runtime.namespace("channels", ChannelActor)
    channel = channels.get(channels.id_from_name("general"))
    ada = MemoryDirectTransport()
    await channel.join(ada, CHANNEL, "ada", None)
    assert (await next_frame(ada))["type"] == "presence"
    fsync.armed = True
    send = json.dumps({"type": "message", "message": "hello", "nonce": "n-1"})
    ada.client_send(send)
    refused = await next_frame(ada)
    expected = ("error", "outcome_unknown", "n-1")
    assert (refused["type"], refused["code"], refused["nonce"]) == expected
    assert "may or may not" in refused["message"] and "same nonce" in refused["message"]
    ada.client_send(send)  # the retry the sentence asks for
    # Stored or not, the members get it now (ada is one) and the sender its ack.
    frames = {frame["type"]: frame for frame in [await next_frame(ada), await next_frame(ada)]}
    assert frames.keys() == {"message", "ack"} and frames["message"]["message"] == "hello"
    ack = frames["ack"]
    assert (ack["type"], ack["nonce"], ack["message"]) == ("ack", "n-1", "hello")
    history = await channel.history(CHANNEL, 10)
    assert [row["message"] for row in history] == ["hello"]  # stored once, whatever happened
    await runtime.close()
