"""Rendezvous hashing: which worker hosts a key, and how few keys move when workers change.
(That the proxy picks the same worker is tested against the real Caddy in tests/cluster.)"""

import pytest
import xxhash

from accord_app.cluster.placement import Placement, owner_index, score

WORKERS = [f"127.0.0.1:{9001 + n}" for n in range(8)]
KEYS = [f"channel:{n:04d}" for n in range(4000)]


def test_the_owner_is_the_address_with_the_highest_xxh64_of_address_plus_key() -> None:
    for key in KEYS[:50]:
        scores = [xxhash.xxh64_intdigest((address + key).encode()) for address in WORKERS[:3]]
        assert owner_index(key, WORKERS[:3]) == scores.index(max(scores))
        assert score(WORKERS[0], key) == scores[0]


def moved(before: list[str], after: list[str]) -> float:
    return sum(
        before[owner_index(key, before)] != after[owner_index(key, after)] for key in KEYS
    ) / len(KEYS)


@pytest.mark.parametrize("workers", [2, 3, 4, 7])
def test_adding_a_worker_moves_only_the_keys_it_wins(workers: int) -> None:
    before, after = WORKERS[:workers], WORKERS[: workers + 1]
    share = moved(before, after)
    assert abs(share - 1 / (workers + 1)) < 0.03, share
    # Every key that moved went to the newcomer.
    for key in KEYS[:500]:
        if owner_index(key, after) != owner_index(key, before):
            assert after[owner_index(key, after)] == after[-1]


def test_removing_a_worker_moves_only_its_own_keys() -> None:
    for key in KEYS[:500]:
        owner = WORKERS[owner_index(key, WORKERS[:4])]
        remaining = [address for address in WORKERS[:4] if address != WORKERS[1]]
        if owner != WORKERS[1]:
            assert remaining[owner_index(key, remaining)] == owner


def test_keys_spread_evenly() -> None:
    counts = [0] * 4
    for key in KEYS:
        counts[owner_index(key, WORKERS[:4])] += 1
    assert all(abs(count - 1000) < 100 for count in counts), counts


def test_a_placement_numbers_workers_from_one() -> None:
    placement = Placement(tuple(WORKERS[:3]), me=2)
    owners = {placement.owner(key) for key in KEYS[:100]}
    assert owners == {1, 2, 3}
    assert all(placement.is_mine(k) == (placement.owner(k) == 2) for k in KEYS[:100])


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="worker 4 is not one of the 3"):
        Placement(tuple(WORKERS[:3]), me=4)
    with pytest.raises(ValueError, match="no worker addresses"):
        owner_index("channel:x", [])
