"""What the inspector shows: this process's actors, named after the channels they host.

A look is cheap: `Namespace.list_actors()` (the awake actors from memory, the hibernated ones
from their files) and a channel-name table built from the catalog, rebuilt only when an actor
appears that it cannot name. Nothing here runs while nobody watches.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any

from accord_app.actors import ActorInfo, Namespace
from accord_app.catalog.store import Catalog
from accord_app.chat.sharding import Sharding, shard_key
from accord_app.cluster.placement import Placement

# The catalog is read again for unknown actors at most this often (a new channel's actor
# appears before the next look; a thousand channels take a few milliseconds to name).
NAMES_REFRESH_SECONDS = 2.0
# Hibernated actors are read from disk at most this often (awake ones, at every look).
DISK_SECONDS = 5.0


@dataclass(frozen=True)
class Tile:
    """One actor as the page shows it."""

    id: str
    name: str  # the channel(s) it hosts, or its key
    worker: int | None  # None: a lone process
    awake: bool  # False: hibernated, only its file exists
    members: int  # open WebSockets: each is a member online, awake or not
    mailbox: int  # events waiting for their turn
    turns: int  # since it last woke in this process
    commit_ms: float | None  # its last commit's fsync


@dataclass(frozen=True)
class Happening:
    """One line of the timeline."""

    kind: str  # woke, hibernated, host down, host up, ...
    at: float  # seconds since the epoch
    worker: int | None
    actor: str | None = None
    name: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tile_json(tile: Tile) -> dict[str, Any]:
    """What the page gets for a tile (dataclasses.asdict() took 30 µs a tile)."""
    return {
        "id": tile.id,
        "name": tile.name,
        "worker": tile.worker,
        "awake": tile.awake,
        "members": tile.members,
        "mailbox": tile.mailbox,
        "turns": tile.turns,
        "commit_ms": tile.commit_ms,
    }


class Census:
    """A namespace's actors, cheaply enough to ask twice a second with thousands of them: the
    ones in memory at each look, the hibernated ones from disk every DISK_SECONDS (a glob and
    two stats per file: list_actors() took 97 ms for 1000 actors on a busy 2-core machine)."""

    def __init__(self, namespace: Namespace[Any]) -> None:
        self.namespace = namespace
        self.known: set[str] = set()  # read from disk, or seen in memory since (it has a file)
        self.read_at = -DISK_SECONDS

    def actors(self) -> list[ActorInfo]:
        now = time.monotonic()
        if now - self.read_at >= DISK_SECONDS:
            self.known = {info.id for info in self.namespace.list_actors()}
            self.read_at = now
        hosts = self.namespace.hosts()
        self.known.update(host.id.hex for host in hosts)
        found = {actor_id: ActorInfo(actor_id, False, 0, 0, 0) for actor_id in self.known}
        for host in hosts:
            found[host.id.hex] = ActorInfo(
                host.id.hex,
                host.instance is not None,
                0,  # not shown: its file's size would cost a stat per look
                len(host.mailbox),
                len(host.sockets),
                None,
                host.turns,
                host.last_commit_seconds,
            )
        return sorted(found.values(), key=lambda info: info.id)


class ChannelNames:
    """Actor id -> what it hosts ("#general · Lisbon"), from the catalog and the sharding key."""

    def __init__(self, namespace: Namespace[Any], sharding: Sharding) -> None:
        self.namespace = namespace
        self.sharding = sharding
        self.names: dict[str, str] = {}
        self.keys: dict[str, str] = {}  # actor id -> its key
        self.channels: dict[str, tuple[str, str]] = {}  # channel id -> (server id, its name)
        self.refreshed = -NAMES_REFRESH_SECONDS

    def knows_all(self, actor_ids: list[str]) -> bool:
        return all(actor_id in self.names for actor_id in actor_ids)

    def refresh(self, catalog: Catalog, *, now: bool = False) -> None:
        """Read every server and channel (blocking: call it in a thread), unless done lately
        and not asked to read `now`."""
        started = time.monotonic()
        if not now and started - self.refreshed < NAMES_REFRESH_SECONDS:
            return
        self.refreshed = started
        hosted: dict[str, list[str]] = {}
        channels: dict[str, tuple[str, str]] = {}
        for server in catalog.list_servers():
            for channel in catalog.list_channels(server.id) or []:
                key = shard_key(self.sharding, server.id, channel.id)
                name = f"#{channel.name} · {server.name}"
                hosted.setdefault(key, []).append(name)
                channels[channel.id] = (server.id, name)
        self.channels = channels
        self.keys = {self.namespace.id_from_name(key).hex: key for key in hosted}
        self.names = {actor_id: describe(key, hosted[key]) for actor_id, key in self.keys.items()}

    def name(self, actor_id: str) -> str:
        return self.names.get(actor_id, actor_id[:12] + "…")


def describe(key: str, channels: list[str]) -> str:
    if len(channels) == 1:
        return channels[0]
    return f"{key} ({len(channels)} channels)"


def tiles(infos: list[ActorInfo], names: ChannelNames, placement: Placement | None) -> list[Tile]:
    """This process's actors. A cluster's workers may share one data folder, where every
    worker sees every actor's file: a hibernated actor is shown by the worker that wins its
    key, an actor in memory by the worker that holds it."""
    worker = None if placement is None else placement.me
    found = [
        Tile(
            info.id,
            names.name(info.id),
            worker,
            info.live,
            info.websockets,
            info.queue_length,
            info.turns,
            None if info.last_commit_seconds is None else info.last_commit_seconds * 1000,
        )
        for info in infos
    ]
    if placement is None:
        return found
    return [
        tile
        for tile in found
        if tile.awake
        or tile.members
        or tile.mailbox
        or (tile.id in names.keys and placement.is_mine(names.keys[tile.id]))
    ]
