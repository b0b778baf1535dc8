"""Who is in one channel right now: each member's name, how many sockets they have open, and
what each name looks like.

The channel actor keeps one per channel, in memory (rebuilt from its sockets after
hibernation), so that a join costs no walk over the other members' sockets: the presence frame
is the sorted names, "is this the member's first socket?" is a count, and "does this name look
like a present member's?" is one skeleton looked up in a dict instead of one computed per
member. In a channel of 2 000 members those walks were most of a join's own work.
"""

from collections import Counter
from typing import Generic, TypeVar

from accord_app.api.names import skeleton

S = TypeVar("S")  # a socket


class Roster(Generic[S]):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()  # name -> open sockets
        self.sockets: set[S] = set()
        self.by_skeleton: dict[str, str] = {}  # what a present name looks like -> the name

    def add(self, socket: S, name: str) -> bool:
        """Count the socket in; True if it is the name's first."""
        if socket in self.sockets:
            return False
        self.sockets.add(socket)
        self.counts[name] += 1
        self.by_skeleton.setdefault(skeleton(name), name)
        return self.counts[name] == 1

    def remove(self, socket: S, name: str) -> bool:
        """Count the socket out; True if it was the name's last."""
        if socket not in self.sockets:
            return False
        self.sockets.discard(socket)
        self.counts[name] -= 1
        if self.counts[name] > 0:
            return False
        del self.counts[name]
        look = skeleton(name)
        if self.by_skeleton.get(look) == name:
            del self.by_skeleton[look]
        return True

    def names(self) -> list[str]:
        return sorted(self.counts)

    def look_alike(self, name: str) -> str | None:
        """A present member's name, not this one, that renders like it (names.skeleton)."""
        present = self.by_skeleton.get(skeleton(name))
        return None if present is None or present == name else present
