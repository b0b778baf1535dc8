"""Chapter 09's JetStream clients: connected to every server of a cluster, silent while the
checks stop, kill and pause servers on purpose, and closed even when no server is left."""

import contextlib
from collections.abc import Sequence

import nats
from nats.aio.client import Client


async def _quiet(error: Exception) -> None:
    """A server that went away is what the checks do on purpose: no traceback for it (the
    client's default prints one for every reconnect attempt)."""


async def connect(urls: Sequence[str], **options: object) -> Client:
    """A client of the servers at `urls`, in that order, that tries the others when one goes
    away and never gives up on the cluster."""
    return await nats.connect(
        servers=list(urls),
        dont_randomize=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        connect_timeout=2,
        error_cb=_quiet,
        **options,
    )


async def close_client(client: Client) -> None:
    """Close a client, even when every server it knew is gone (nats-py then raises from its
    last flush, on a connection that no longer exists)."""
    with contextlib.suppress(ConnectionError):
        await client.close()
