"""Channels go back to their own host when it returns (a replicated cluster).

While a host is down, the router sends its keys to the next worker by the same rendezvous
hash, which serves them on an epoch of its own. When the host answers again, nothing would
send the members already connected here back to it: their sockets stay on this interim copy.
So a worker notes the keys it serves for another host, asks that host for /api as the router
does, and once the host has answered for as long as the router takes to mark it up, steps its
copies down: the same fence as a newer epoch (sockets closed with 1012, the instance gone), so
the members reconnect, the router sends them home, and the owner opens the next epoch.

    handback = Handback(placement, hand_over=lambda key, owner: ...)
    handback.note(key)            # a request for `key` reached this worker
    task = asyncio.create_task(handback.run())
"""

import asyncio
import time
from collections.abc import Callable

import httpx

from accord_app.cluster.caddy import HEALTH_INTERVAL
from accord_app.cluster.placement import Placement

# The router's active check: one request every HEALTH_INTERVAL, failed after as long again.
CHECK_SECONDS = float(HEALTH_INTERVAL.removesuffix("s"))
# How long a returned host must keep answering before its keys go back: by then every route's
# active check has marked it up (each checks once per interval, with a timeout as long) and
# the passive check's memory of its failures (2 s) has expired.
UP_FOR_SECONDS = 3 * CHECK_SECONDS


class Handback:
    """The keys this worker serves for other hosts, handed back when their host returns."""

    def __init__(self, placement: Placement, hand_over: Callable[[str, int], None]) -> None:
        self.placement = placement
        self.hand_over = hand_over
        self.away: dict[int, set[str]] = {}  # owner -> keys served here meanwhile
        self._up_since: dict[int, float] = {}

    def note(self, key: str) -> None:
        owner = self.placement.owner(key)
        if owner != self.placement.me:
            self.away.setdefault(owner, set()).add(key)

    async def run(self) -> None:
        """Until cancelled: check the owners of the keys served here, hand back the returned."""
        async with httpx.AsyncClient(timeout=CHECK_SECONDS, trust_env=False) as client:
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                for owner in list(self.away):
                    if await self._answers(client, owner):
                        since = self._up_since.setdefault(owner, time.monotonic())
                        if time.monotonic() - since >= UP_FOR_SECONDS:
                            for key in self.away.pop(owner, set()):
                                self.hand_over(key, owner)
                    else:
                        self._up_since.pop(owner, None)

    async def _answers(self, client: httpx.AsyncClient, owner: int) -> bool:
        address = self.placement.addresses[owner - 1]
        try:
            answer = await client.get(f"http://{address}/api")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200
