"""Errors the actor runtime raises, each with a message that says what to do about it."""

import errno


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
    """Writes could not be made durable, so the reply that depended on them was dropped.

    The actor was reset: the next call constructs it again from what is on disk. Retrying an
    idempotent call is safe.
    """


class ActorReset(ActorError):
    """The actor was reset (its construction or a commit failed) before the writes this answer
    depended on were durable; they were rolled back. Retrying an idempotent call is safe."""


class StorageError(ActorError):
    """A storage call the runtime refuses, e.g. a value that is not JSON or too many keys."""


class StorageUnavailable(StorageError):
    """The actor's file cannot be opened or written (a read-only folder, a full disk, no file
    descriptors left): nothing was stored. Worth trying again later."""


class StorageBusy(StorageUnavailable):
    """Another process holds the actor's file (a second server on the same data folder)."""


class StorageFull(StorageUnavailable):
    """The disk is full: nothing more can be stored until space is freed."""


def is_disk_full(error: BaseException) -> bool:
    """Whether an error from SQLite or the OS says the disk is full."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return "disk is full" in str(error) or "No space left" in str(error)


def storage_unavailable(path: object, error: BaseException) -> StorageUnavailable:
    """The error to raise when an actor's file cannot be used, naming the file and why."""
    if is_disk_full(error):
        return StorageFull(f"{path}: the disk is full ({error})")
    return StorageUnavailable(f"{path} cannot be used: {error}")


class AttachmentTooLarge(ActorError, ValueError):
    """A WebSocket attachment above the 16 KiB limit."""


class RuntimeClosed(ActorError):
    """The runtime was closed; it accepts no more events."""
