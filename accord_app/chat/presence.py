"""Presence changes, gathered: who joined or left a channel since its members were last told.

A frame per join, to every member, costs N² frames for N joins into one channel (2 000 joins:
about 2 million frames). The channel actor instead notes each change here and tells every member
once per PRESENCE_INTERVAL, in one {"type": "presence_diff", "joins", "leaves"} frame: N joins
then cost about N + members x intervals frames. This is Phoenix Presence's presence_diff;
Phoenix.Tracker likewise gathers its changes and ships them between nodes once per
broadcast_period (1 500 ms by default).

Pure bookkeeping, no sockets or timers: the actor owns the timer (channel.py).
"""

from bisect import bisect_left, bisect_right
from collections.abc import Container
from typing import Any, Generic, TypeVar

S = TypeVar("S")  # a socket

# How long a change may wait before the members hear of it. Short enough that a join into a
# quiet channel shows at once to a person; long enough that a crowd joining together (a
# workshop's room, a reconnect after a server restart) costs a handful of frames per member per
# second instead of one per joiner. Phoenix.Tracker's broadcast_period is 1 500 ms, but it is
# the delay between nodes; ours is the whole delay a member sees.
PRESENCE_INTERVAL = 0.1


class PendingPresence(Generic[S]):
    """The names of a channel whose presence changed since its members were last told, and the
    sockets that got the member list meanwhile.

    The frame says where each such name is now: in "joins" if present, in "leaves" if gone, so
    applying it twice, or after a newer member list, changes nothing. A name that ends where it
    started (a join then a leave, a leave then a rejoin) is left out, unless a member still here
    got the list in between: that list may show the passing state. A member whose list is newer
    than every change in the frame is not sent it: the joiner does not hear of its own join.

    Changes and lists are numbered in the order they happen (`clock`), which is what "in
    between" and "newer" compare."""

    def __init__(self) -> None:
        self.clock = 0
        # name -> [present when the members were last told, its first change, its last change]
        self.names: dict[str, list[Any]] = {}
        self.listed_at: dict[S, int] = {}  # sockets given the list, and when

    def changed(self, name: str, present: bool) -> None:
        self.clock += 1
        self.names.setdefault(name, [not present, self.clock, 0])[2] = self.clock

    def listed(self, socket: S) -> None:
        """`socket` got the member list (call it after the joiner's own change)."""
        self.clock += 1
        self.listed_at[socket] = self.clock

    def unlisted(self, socket: S) -> None:
        """`socket` left: what it saw no longer matters."""
        self.listed_at.pop(socket, None)

    def take(self, present: Container[str]) -> tuple[dict[str, Any], set[S]] | None:
        """The presence_diff frame for what is pending and the sockets that need no copy, given
        the names present now; None if it all cancelled out. Then nothing is pending."""
        lists = sorted(self.listed_at.values())
        joins: list[str] = []
        leaves: list[str] = []
        latest_change = 0
        for name, (was, first, last) in self.names.items():
            now = name in present
            # A list between the first change and the last may show a passing state.
            if now != was or bisect_right(lists, first) < bisect_left(lists, last):
                (joins if now else leaves).append(name)
                latest_change = max(latest_change, last)
        up_to_date = {socket for socket, at in self.listed_at.items() if at > latest_change}
        self.clock, self.names, self.listed_at = 0, {}, {}
        if not joins and not leaves:
            return None
        return {"type": "presence_diff", "joins": joins, "leaves": leaves}, up_to_date
