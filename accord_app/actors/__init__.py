"""Accord's actor runtime: Durable-Object-style actors on asyncio and SQLite.

Modules, one concept each: `ids` (addresses), `errors`, `gates` (the sans-I/O input and output
gates), `storage` (per-actor SQLite, group-commit primitives), `alarms`, `sockets`
(hibernatable WebSockets), `events` (what the runtime tells its observers, and tallies), `actor`
(what an actor is and is given: Actor, ActorContext), `host` (one actor id's turns, commits and
sockets: ActorHost) and `runtime` (Runtime, Namespace, Stub); `datalock` keeps a second process
off a data folder. What this module exports is the runtime's public API: the web edge and the
API import nothing else of it (see pyproject.toml).
"""

from accord_app.actors.actor import Actor, ActorContext
from accord_app.actors.errors import (
    ActorError,
    ActorOverloaded,
    ActorReset,
    AttachmentTooLarge,
    BookmarkError,
    CommitFailed,
    Fenced,
    InvalidActorId,
    InvalidName,
    LogUnavailable,
    RuntimeClosed,
    StorageBusy,
    StorageDamaged,
    StorageError,
    StorageFull,
    StorageUnavailable,
    TurnCancelled,
    UnknownMethod,
    is_disk_full,
)
from accord_app.actors.events import (
    Activity,
    ActorEvent,
    Distribution,
    EventKind,
    Observers,
    Traffic,
)
from accord_app.actors.host import CommitMode
from accord_app.actors.ids import ActorId
from accord_app.actors.runtime import (
    ActorInfo,
    Namespace,
    Runtime,
    Stub,
)
from accord_app.actors.sockets import (
    CLOSE_TRY_AGAIN_LATER,
    DirectTransport,
    HibernatableWebSocket,
    Inbox,
    MemoryDirectTransport,
    MemoryTransport,
    OnClose,
    OnFrame,
    Transport,
    TransportClosed,
)
from accord_app.actors.storage import Storage

__all__ = [
    "CLOSE_TRY_AGAIN_LATER",
    "Activity",
    "Actor",
    "ActorContext",
    "ActorError",
    "ActorEvent",
    "ActorId",
    "ActorInfo",
    "ActorOverloaded",
    "ActorReset",
    "AttachmentTooLarge",
    "BookmarkError",
    "CommitFailed",
    "CommitMode",
    "DirectTransport",
    "Distribution",
    "EventKind",
    "Fenced",
    "HibernatableWebSocket",
    "Inbox",
    "InvalidActorId",
    "InvalidName",
    "LogUnavailable",
    "MemoryDirectTransport",
    "MemoryTransport",
    "Namespace",
    "Observers",
    "OnClose",
    "OnFrame",
    "Runtime",
    "RuntimeClosed",
    "Storage",
    "StorageBusy",
    "StorageDamaged",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Stub",
    "Traffic",
    "Transport",
    "TransportClosed",
    "TurnCancelled",
    "UnknownMethod",
    "is_disk_full",
]
