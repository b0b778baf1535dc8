"""A host dies (kill -9), or its link is cut, under a light load: only the channels it hosts
fail, with a clear JSON error by their deadline; its WebSocket members are dropped and refused,
then resume without gaps once it is back; nothing acked is lost; everyone else carries on."""

import pytest
from cluster_client import Running
from outage import Outage, outage

from accord_app.cluster.hosts import HostNetwork

pytestmark = pytest.mark.anyio

VICTIM = 2
# A refused connection fails at once; a silent host by the proxy's deadlines (a 1 s dial, a
# 5 s answer), plus room for two busy cores.
KILLED_WITHIN = 2.0
CUT_OFF_WITHIN = 7.0


def check_only_the_victims_channels_failed(result: Outage, within: float) -> float:
    """Every channel of the victim failed with the proxy's JSON error, in time, and every other
    answered; the share of channels that failed."""
    failed = []
    for channel_id, answer in result.history.items():
        if result.owners[channel_id] != VICTIM:
            assert answer.status == 200, answer
            continue
        failed.append(channel_id)
        assert answer.status in (502, 504), answer
        assert answer.body["code"] == "worker_unavailable", answer
        assert f"Worker {VICTIM} is not answering" in answer.body["message"]
        assert answer.headers["x-accord-worker"] == str(VICTIM)
        assert answer.seconds < within, answer
    share = len(failed) / len(result.history)
    print(f"channels failed: {len(failed)} of {len(result.history)} ({share:.0%})")
    assert 0 < share < 0.7  # about 1 in 3: rendezvous hashing spreads the channels evenly
    return share


def check_the_activity_names_the_victims_channels(result: Outage, within: float) -> None:
    """One worker asked every channel's actor, across hosts: the victim's failed in time."""
    assert result.activity.status == 200 and result.activity.seconds < within
    for entry in result.activity.body:
        if result.owners[entry["channel_id"]] == VICTIM:
            # The router's 502 for a dead host, or RemoteActor's own for a cut link.
            assert entry["error"]["code"] in ("worker_unavailable", "call_timed_out")
            assert f"on worker {VICTIM} " in entry["error"]["message"], entry
        else:
            assert entry["error"] is None, entry


def check_members(result: Outage, running: Running) -> None:
    for member in result.members_of(victims=False):
        assert (member.drops, member.refusals, member.error_frames) == ([], [], [])
        assert member.connections == 1
    for member in result.members_of(victims=True):
        assert member.drops and member.connections >= 2
        assert set(member.refusals) <= {502, 504} and member.refusals
    for channel_id, member in result.members.items():
        # Every message sent was stored once: acks number 1, 2, 3... with no gap, and the
        # member saw every one of them, replayed after a reconnection or live.
        seqs = sorted(ack["seq"] for ack in member.acks.values())
        assert seqs == list(range(1, len(member.texts) + 1))
        assert member.seen == {ack["seq"]: ack["id"] for ack in member.acks.values()}
        # Nothing acked is lost: the history holds exactly what was acked.
        path = result.channels[channel_id].path
        history = running.http.get(f"{path}/messages", params={"limit": 200}).json()
        assert sorted((m["seq"], m["id"], m["message"]) for m in history) == sorted(
            (ack["seq"], ack["id"], member.texts[nonce]) for nonce, ack in member.acks.items()
        )


async def test_a_killed_host_fails_only_its_channels_and_they_come_back_whole(
    on_hosts: Running,
) -> None:
    cluster = on_hosts.cluster
    result = await outage(
        on_hosts, VICTIM, lambda: cluster.kill(VICTIM), lambda: cluster.restart(VICTIM)
    )
    check_only_the_victims_channels_failed(result, KILLED_WITHIN)
    check_the_activity_names_the_victims_channels(result, KILLED_WITHIN + 5)
    check_members(result, on_hosts)


async def test_a_cut_link_fails_only_its_hosts_channels_by_their_deadline_until_restored(
    on_hosts: Running, network: HostNetwork
) -> None:
    pid = on_hosts.cluster.pid(VICTIM)
    result = await outage(
        on_hosts, VICTIM, lambda: network.cut(VICTIM), lambda: network.restore(VICTIM)
    )
    assert on_hosts.cluster.pid(VICTIM) == pid  # the host never died: it was unreachable
    check_only_the_victims_channels_failed(result, CUT_OFF_WITHIN)
    check_the_activity_names_the_victims_channels(result, CUT_OFF_WITHIN)
    check_members(result, on_hosts)
