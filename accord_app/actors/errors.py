"""Errors the actor runtime raises, each with a message that says what to do about it."""

import errno
import os
import sqlite3
import sys
from pathlib import Path


class ActorError(Exception):
    """Base class of every error raised by accord_app.actors."""


class InvalidActorId(ActorError, ValueError):
    """A string that is not an actor id of this namespace (64 lowercase hex digits)."""


class InvalidName(ActorError, ValueError):
    """A namespace name unfit for a folder name."""


class UnknownMethod(ActorError, AttributeError):
    """A stub was asked for something that is not a public async method of the actor class."""


class ActorOverloaded(ActorError):
    """The actor's queue is full. Do not retry at once: that is what overloaded it."""


class CommitFailed(ActorError):
    """Writes were not confirmed durable, so the reply that depended on them was dropped.

    Their outcome is unknown, not negative: a -wal the disk did not confirm may still reach the
    file, and an append the log did not answer in time may still be kept. The actor was reset:
    the next call constructs it again from what is on disk (or in the log), which may hold them.
    Retry with the same idempotency key to find out.
    """


class ActorReset(ActorError):
    """The actor was reset (its construction or a commit failed) before the writes this answer
    depended on were durable; they were rolled back. Retrying an idempotent call is safe."""


class TurnCancelled(ActorError):
    """The turn ended with CancelledError (the actor awaited something that was cancelled) or
    was interrupted: it failed like any other, its writes rolled back and its frames dropped."""


class StorageError(ActorError):
    """A storage call the runtime refuses, e.g. a value that is not JSON or too many keys."""


class StorageUnavailable(StorageError):
    """The actor's file cannot be opened or written (a read-only folder, a full disk, no file
    descriptors left): nothing was stored. Worth trying again later."""


class StorageBusy(StorageUnavailable):
    """Another process holds the actor's file (a second server on the same data folder)."""


class StorageDamaged(StorageUnavailable):
    """The actor's file is damaged: empty, not a database, or of another format. Refused rather
    than started afresh, which would number its messages from 1 again: it needs an operator."""


class StorageFull(StorageUnavailable):
    """The disk is full: nothing more can be stored until space is freed."""


# SQLite says "disk I/O error", not "disk is full", when the file it cannot grow is its
# shared-memory index or its journal: then the filesystem's free space tells.
NEARLY_FULL_BYTES = 256 * 1024


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on `folder`'s filesystem (huge if unknown)."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return sys.maxsize
    return stats.f_bavail * stats.f_frsize


def is_disk_full(error: BaseException, folder: Path | None = None) -> bool:
    """Whether an error from SQLite or the OS, met while writing in `folder`, means that
    the disk is full."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    text = str(error)
    if "disk is full" in text or "No space left" in text:
        return True
    return (
        folder is not None and "disk I/O error" in text and free_bytes(folder) < NEARLY_FULL_BYTES
    )


def storage_unavailable(path: Path, error: BaseException) -> StorageUnavailable:
    """The error to raise when an actor's file cannot be used, naming the file and why."""
    if is_disk_full(error, path.parent):
        return StorageFull(f"{path}: the disk is full ({error})")
    if type(error) is sqlite3.DatabaseError:  # "file is not a database", "malformed"
        return StorageDamaged(f"{path} is damaged: {error}")
    return StorageUnavailable(f"{path} cannot be used: {error}")


class AttachmentTooLarge(ActorError, ValueError):
    """A WebSocket attachment above the 16 KiB limit."""


class RuntimeClosed(ActorError):
    """The runtime was closed; it accepts no more events."""


class LogUnavailable(StorageUnavailable):
    """The replicated log did not confirm in time (no majority of its servers answers): nothing
    new is acknowledged until it does. An append that timed out may still be kept once a
    majority is back (as with a lost answer): a retry must carry the same key. Worth trying
    again later."""


class Fenced(ActorReset):
    """Another host opened a newer epoch of this actor: this copy may never write again. Its
    pending outputs are dropped (not stored; retrying is safe) and its clients move
    (WebSocket close 1012)."""


class BookmarkError(StorageError, ValueError):
    """A bookmark that is malformed, unknown, or outside the retention window."""
