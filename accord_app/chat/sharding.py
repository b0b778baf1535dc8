"""Which actor hosts a channel: the sharding key, computed from the request path alone.

- "channel" (the default): one actor per channel. Channels scale independently; a hot channel
  is still limited to what one actor can do.
- "server": one actor per server. Fewer actors, and a server-wide feature (unread counts,
  moderation) needs no cross-actor messages, but a busy server shares one actor's capacity.
- "global": one actor for everything. The talk's "what if you only use one": simple, and a
  ceiling for the whole app.

Each key is a template over the path's parts. The app fills it in with `shard_key()`; the
cluster's proxy (accord_app/cluster/caddy.py) fills the same template with the parts its path
matcher captured, so proxy and app can never disagree about which actor a request is for.
"""

import string
from collections.abc import Iterable
from enum import StrEnum


class Sharding(StrEnum):
    CHANNEL = "channel"
    SERVER = "server"
    GLOBAL = "global"


KEY_TEMPLATES: dict[Sharding, str] = {
    Sharding.CHANNEL: "channel:{channel_id}",
    Sharding.SERVER: "server:{server_id}",
    Sharding.GLOBAL: "global",
}


def key_template(mode: Sharding) -> str:
    """The key's template, with {server_id} and {channel_id} where the path's parts go."""
    try:
        return KEY_TEMPLATES[Sharding(mode)]
    except ValueError:
        raise ValueError(f"unknown sharding mode {mode!r}: use channel, server or global") from None


def key_fields(mode: Sharding) -> set[str]:
    """The path parts the key needs: a path that lacks one cannot name the actor."""
    return {field for _, field, _, _ in string.Formatter().parse(key_template(mode)) if field}


def shard_key(mode: Sharding, server_id: str, channel_id: str | None = None) -> str:
    """The name of the actor that hosts this channel (fed to id_from_name). A server-wide path
    has no channel id: it names an actor only when the key needs none."""
    if channel_id is None and "channel_id" in key_fields(mode):
        raise ValueError(
            f"{Sharding(mode).value} sharding keys each channel by its id: a path without a"
            " channel id names no single actor"
        )
    return key_template(mode).format(server_id=server_id, channel_id=channel_id)


def group_by_key(
    mode: Sharding, server_id: str, channel_ids: Iterable[str]
) -> dict[str, list[str]]:
    """A server's channels grouped by the key of the actor that hosts them, each group in the
    order given: a fan-out over the server (activity, announcements) makes one call per actor,
    or asks the one worker that hosts the key."""
    groups: dict[str, list[str]] = {}
    for channel_id in channel_ids:
        groups.setdefault(shard_key(mode, server_id, channel_id), []).append(channel_id)
    return groups
