"""kill -9 of a busy channel's host, ten times, at random moments, under members that behave
like the frontend (members.py): every acknowledged message is in the channel exactly once,
every member sees every seq with no gap, and another host acknowledges within the router's
detection time + 3 s. Between rounds the killed host comes back, and the channel with its
members returns to it by a fenced handover (the members get 1012 and reconnect)."""

import random

import pytest
from cluster_client import Running
from members import Member, kill_rounds

from accord_app.cluster.caddy import detection_seconds

pytestmark = pytest.mark.anyio
ROUNDS = 10
MEMBERS = 3


async def test_kill_9_of_the_owner_under_reconnecting_members(replicated: Running) -> None:
    chooser = random.Random(9)
    [channel] = replicated.create_channels(1)
    members = [
        Member(replicated.ws_url(channel, f"m{n}"), f"m{n}", random.Random(n))
        for n in range(MEMBERS)
    ]
    bound = detection_seconds() + 3
    found = await kill_rounds(replicated, channel, members, ROUNDS, chooser)
    failovers, handbacks = found.failovers, found.handbacks

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
