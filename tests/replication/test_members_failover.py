"""kill -9 of a busy channel's host, ten times, at random moments, under members that behave
like the frontend (members.py): every acknowledged message is in the channel exactly once,
every member sees every seq with no gap, and another host acknowledges within the router's
detection time + 3 s. Between rounds the killed host comes back, and the channel with its
members returns to it by a fenced handover (the members get 1012 and reconnect)."""

import asyncio
import random
import re
import time
from collections.abc import Callable

import pytest
from cluster_client import Channel, Running
from members import Member

from accord_app.cluster.caddy import HEALTH_INTERVAL

pytestmark = pytest.mark.anyio
ROUNDS = 10
MEMBERS = 3


def detection_seconds() -> float:
    """How long the router takes to mark a silent host down: an active check every
    HEALTH_INTERVAL, which fails after a timeout of HEALTH_INTERVAL (one failure is enough).
    A killed host refuses dials, which the passive check notices at once; this is the bound."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", HEALTH_INTERVAL)
    assert match, HEALTH_INTERVAL
    return 2 * float(match.group(1))


async def until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.05)


async def home(replicated: Running, channel: Channel, owner: int) -> None:
    """A request for the channel reaches its own host again. Another worker may answer while
    the router's checks of the returned host catch up (the next hand back moves it home), or
    a 503 during a handover."""
    deadline = time.monotonic() + 20
    while True:
        answer = await asyncio.to_thread(replicated.http.get, f"{channel.path}/messages")
        if answer.status_code == 200 and answer.headers["X-Accord-Worker"] == str(owner):
            return
        assert answer.status_code in (200, 503), answer.text
        assert time.monotonic() < deadline, f"host {owner} did not take its channel back"
        await asyncio.sleep(0.1)


async def test_kill_9_of_the_owner_under_reconnecting_members(replicated: Running) -> None:
    chooser = random.Random(9)
    [channel] = replicated.create_channels(1)
    owner = replicated.owner(channel)
    members = [
        Member(replicated.ws_url(channel, f"m{n}"), f"m{n}", random.Random(n))
        for n in range(MEMBERS)
    ]
    tasks = [asyncio.create_task(member.run()) for member in members]
    bound = detection_seconds() + 3
    failovers: list[float] = []
    handbacks: list[float] = []  # the owner ready again -> every member moved back

    def acks_after(moment: float) -> list[float]:
        return [acked for m in members for sent, acked in m.ack_times if sent > moment]

    try:
        await until(lambda: all(len(m.acked) >= 5 for m in members), "first acks")
        for round_number in range(ROUNDS):
            await asyncio.sleep(chooser.uniform(0.2, 1.5))  # a random moment of the load
            replicated.cluster.kill(owner)
            killed = time.perf_counter()
            await until(lambda at=killed: acks_after(at), f"round {round_number}: an ack elsewhere")
            failovers.append(min(acks_after(killed)) - killed)
            moved = [m.moved for m in members]
            await asyncio.to_thread(replicated.cluster.restart, owner)
            restarted = time.perf_counter()
            # No request needed: the interim host sees the owner answer again and steps down;
            # its members get 1012 and reconnect, and the router sends them home.
            await until(
                lambda was=moved: all(m.moved > n for m, n in zip(members, was, strict=True)),
                f"round {round_number}: members moved back to host {owner}",
            )
            returned = time.perf_counter()
            handbacks.append(returned - restarted)
            await until(lambda at=returned: acks_after(at), f"round {round_number}: an ack at home")
            await home(replicated, channel, owner)
        for member in members:
            member.sending = False
        await until(lambda: not any(m.outbox for m in members), "every outbox acknowledged")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for member in members:
        await member.catch_up()

    reference = members[0].seen
    last = max(reference)
    assert sorted(reference) == list(range(1, last + 1)), "a gap in the channel's seqs"
    texts = list(reference.values())
    assert len(set(texts)) == len(texts), "a message stored twice"
    for member in members:
        assert not member.conflicts, f"two messages under one seq: {member.conflicts[:3]}"
        assert member.seen == reference, f"{member.name} saw another history"
        for nonce, seq in member.acked.items():
            assert reference[seq] == member.text(nonce), f"acked {nonce} is not at seq {seq}"
        assert len(member.acked) == member.sent, "a message never acknowledged"
    assert len(failovers) == ROUNDS
    assert max(failovers) <= bound, f"failover over {bound:g} s: {failovers}"
    print(
        f"{ROUNDS} kills, {last} messages; kill -9 -> first ack elsewhere:"
        f" p50 {sorted(failovers)[ROUNDS // 2]:.2f} s, max {max(failovers):.2f} s"
        f" (bound {bound:g} s); owner back -> members moved home: max {max(handbacks):.2f} s"
    )
