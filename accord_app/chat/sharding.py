"""Which actor hosts a channel: the sharding key, computed from the request path alone.

- "channel" (the default): one actor per channel. Channels scale independently; a hot channel
  is still limited to what one actor can do.
- "server": one actor per server. Fewer actors, and a server-wide feature (unread counts,
  moderation) needs no cross-actor messages, but a busy server shares one actor's capacity.
- "global": one actor for everything. The talk's "what if you only use one": simple, and a
  ceiling for the whole app.

A proxy that knows only the URL /api/servers/{s}/channels/{c}/... can compute the same key,
which is what lets a later chapter spread actors over processes and route to them.
"""

from enum import StrEnum


class Sharding(StrEnum):
    CHANNEL = "channel"
    SERVER = "server"
    GLOBAL = "global"


def shard_key(mode: Sharding, server_id: str, channel_id: str) -> str:
    """The name of the actor that hosts this channel (fed to id_from_name)."""
    # == rather than `is`: a plain "server" string from a caller equals Sharding.SERVER.
    if mode == Sharding.CHANNEL:
        return f"channel:{channel_id}"
    if mode == Sharding.SERVER:
        return f"server:{server_id}"
    if mode == Sharding.GLOBAL:
        return "global"
    raise ValueError(f"unknown sharding mode {mode!r}: use channel, server or global")
