"""Errors the actor runtime raises, each with a message that says what to do about it."""


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


class AttachmentTooLarge(ActorError, ValueError):
    """A WebSocket attachment above the 16 KiB limit."""


class RuntimeClosed(ActorError):
    """The runtime was closed; it accepts no more events."""
