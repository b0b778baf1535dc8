"""The one taxonomy of Accord's failures: what a failure of the disk, the actors or the catalog
means to a client, whichever way it reaches one (an HTTP error, a WebSocket close, an error
frame). No web framework here: the channel's actor tells its members in the same words."""

import errno
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from accord_app.actors import (
    CLOSE_TRY_AGAIN_LATER,
    ActorOverloaded,
    ActorReset,
    CommitFailed,
    Fenced,
    StorageBusy,
    StorageDamaged,
    StorageUnavailable,
    is_disk_full,
)
from accord_app.catalog.store import CatalogUnavailable


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failure means to a client, however it reaches one: an HTTP error, a WebSocket
    close, or an error frame for one message."""

    code: str  # for programs, stable
    status: int  # the HTTP status
    close_code: int  # the WebSocket close code
    sentence: str  # for people; short enough for a close frame's reason (123 bytes)


# Retrying with the same nonce (a message) or Idempotency-Key (an announcement) stores a change
# once, whether or not the first try was stored: the answer to "may or may not".
RETRY_SAME_KEY = "retry with the same nonce or Idempotency-Key"
CLOSE_INTERNAL_ERROR = 1011  # RFC 6455
INTERNAL_ERROR = Failure(
    "internal_error", 500, CLOSE_INTERNAL_ERROR, "Something went wrong on the server."
)


def describe_failure(exc: BaseException, folder: Path | None = None) -> Failure:
    """The one taxonomy of Accord's failures (of the disk, a database file in `folder` if
    known, the actors, the catalog). Anything else is INTERNAL_ERROR: a bug, not the disk.

    A failed commit is the subtle one, `outcome_unknown`: the disk or the replicated log did
    not answer, which is not a no. The reset that follows closes the database, and closing
    checkpoints whatever reached the -wal; an append that timed out may have been kept by the
    log all the same. So it may or may not be stored, and the retry with the same key is how
    to find out: the channel answers it with the stored message, or stores it now. Only a
    fence is a certain `not_stored`: the log refused the append, a newer owner holds the key."""
    if isinstance(exc, ActorOverloaded):
        sentence = "This channel is too busy right now; try again shortly."
        return Failure("overloaded", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if is_disk_full(exc, folder):
        sentence = f"The server's disk is full, so this may not be stored: {RETRY_SAME_KEY} later."
        return Failure("storage_full", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        sentence = "The server has too many files open right now; try again shortly."
        return Failure("server_busy", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if isinstance(exc, StorageDamaged) or type(exc) is sqlite3.DatabaseError:  # not a database
        sentence = "This data is damaged and needs the server's operator; nothing was changed."
        return Failure("storage_unavailable", 503, CLOSE_INTERNAL_ERROR, sentence)
    if isinstance(exc, StorageBusy):
        sentence = "Another process holds this data: is a second Accord using the same folder?"
        return Failure("storage_unavailable", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if isinstance(exc, StorageUnavailable | CatalogUnavailable | sqlite3.OperationalError):
        sentence = "The server's storage is unavailable right now; nothing was changed."
        return Failure("storage_unavailable", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if isinstance(exc, Fenced):
        sentence = f"This was not stored: the channel moved to another server; {RETRY_SAME_KEY}."
        return Failure("not_stored", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    if isinstance(exc, CommitFailed | ActorReset):
        sentence = f"This may or may not be stored: {RETRY_SAME_KEY} to find out."
        return Failure("outcome_unknown", 503, CLOSE_TRY_AGAIN_LATER, sentence)
    return INTERNAL_ERROR
