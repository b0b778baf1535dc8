"""Which worker hosts an actor: rendezvous hashing, the rule the cluster's proxy routes by.

Every worker address is scored against the actor's key, hash(address + key), and the highest
score wins ("highest random weight", or rendezvous hashing). Caddy's `lb_policy header` does
exactly this with xxHash64 over the upstream's dial address followed by the header's value, so
this module can say in advance where the proxy will send a key, and a worker can tell a request
that was meant for another one.

Why not `hash(key) % K`: with modulo, going from 4 workers to 5 moves about 4 keys in 5 to
another worker; with rendezvous hashing only the keys the new worker now wins move, about 1
in 5, and removing a worker moves only its own keys.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import xxhash


def score(address: str, key: str) -> int:
    """Caddy's weight of `address` for `key`: xxHash64 (seed 0) of the two, concatenated."""
    return xxhash.xxh64_intdigest((address + key).encode())


def owner_index(key: str, addresses: Sequence[str]) -> int:
    """The position in `addresses` (0-based) of the worker that hosts `key`.

    Ties keep the first, like Caddy (only a score above the best so far replaces it)."""
    if not addresses:
        raise ValueError("no worker addresses to choose from")
    scores = [score(address, key) for address in addresses]
    return scores.index(max(scores))


@dataclass(frozen=True)
class Placement:
    """This worker's view of the cluster: every worker's address, in the proxy's order, and
    which one it is. Workers are numbered from 1, as in the X-Accord-Worker header."""

    addresses: tuple[str, ...]
    me: int

    def __post_init__(self) -> None:
        if not 1 <= self.me <= len(self.addresses):
            raise ValueError(f"worker {self.me} is not one of the {len(self.addresses)} workers")

    def owner(self, key: str) -> int:
        return owner_index(key, self.addresses) + 1

    def is_mine(self, key: str) -> bool:
        return self.owner(key) == self.me
