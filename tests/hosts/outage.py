"""One host of a running cluster fails under a light load, and comes back: the scenario that the
hosts tests check and benchmarks/hosts.py measures.

Chat members (chat_member.Member) send on a few channels of every host; once each has had a few
acks, `fail()` takes the victim down (kill -9, or its link cut). Then every channel's history is
asked for over HTTP, and the server's activity (one worker asking every channel's actor, across
hosts), timed; the victim's members must notice, and be refused when they try again. Then
`recover()` brings the victim back, its members reconnect and catch up, and the load stops once
every message sent has been acked.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from chat_member import Member
from cluster_client import Channel, Running

CHANNELS = 30
MEMBERS_PER_HOST = 2
SEND_EVERY = 0.2  # seconds between one member's messages: a light load
WARM_UP_ACKS = 3
WAIT_SECONDS = 20.0  # the most any step may take before the scenario gives up
TOTAL_SECONDS = 90.0


@dataclass(frozen=True)
class Answer:
    seconds: float
    status: int
    body: Any
    headers: httpx.Headers


@dataclass
class Outage:
    victim: int
    channels: dict[str, Channel]  # by id
    owners: dict[str, int]  # channel id -> host
    members: dict[str, Member]  # channel id -> the member that sends on it
    history: dict[str, Answer]  # channel id -> GET .../messages during the outage
    activity: Answer  # GET /api/servers/{id}/activity during the outage
    failed_at: float  # time.perf_counter()
    recovered_at: float

    def members_of(self, victims: bool) -> list[Member]:
        return [m for c, m in self.members.items() if (self.owners[c] == self.victim) == victims]


async def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS:g} s: {what}")
        await asyncio.sleep(0.05)


def channels_for_every_host(running: Running) -> list[Channel]:
    """CHANNELS channels of one server, and more until every host has MEMBERS_PER_HOST."""
    server_id = running.create_server()
    channels = running.create_channels(CHANNELS, server_id)
    while True:
        hosts = [running.owner(channel) for channel in channels]
        if all(hosts.count(n) >= MEMBERS_PER_HOST for n in range(1, running.cluster.workers + 1)):
            return channels
        channels += running.create_channels(1, server_id)


async def timed_get(http: httpx.AsyncClient, path: str) -> Answer:
    started = time.perf_counter()
    response = await http.get(path)
    body = response.json() if response.headers.get("content-type") == "application/json" else None
    return Answer(time.perf_counter() - started, response.status_code, body, response.headers)


async def outage(
    running: Running,
    victim: int,
    fail: Callable[[], None],
    recover: Callable[[], None],
) -> Outage:
    channels = channels_for_every_host(running)
    owners = {channel.channel_id: running.owner(channel) for channel in channels}
    chosen: list[Channel] = []
    for host in range(1, running.cluster.workers + 1):
        chosen += [c for c in channels if owners[c.channel_id] == host][:MEMBERS_PER_HOST]
    members = {
        c.channel_id: Member(running.ws_url(c, f"member{n}"), SEND_EVERY)
        for n, c in enumerate(chosen)
    }
    victims = [m for c, m in members.items() if owners[c] == victim]
    stop_sending = asyncio.Event()
    async with (
        asyncio.timeout(TOTAL_SECONDS),
        httpx.AsyncClient(base_url=running.cluster.url, timeout=30, trust_env=False) as http,
        asyncio.TaskGroup() as load,
    ):
        for member in members.values():
            load.create_task(member.run(stop_sending))
        await wait_until(
            lambda: all(len(m.acks) >= WARM_UP_ACKS for m in members.values()), "warm-up acks"
        )
        failed_at = time.perf_counter()
        await asyncio.to_thread(fail)
        answers = await asyncio.gather(*(timed_get(http, f"{c.path}/messages") for c in channels))
        await wait_until(
            lambda: all(m.drops and m.refusals for m in victims), "victims dropped and refused"
        )
        activity = await timed_get(http, f"/api/servers/{channels[0].server_id}/activity")
        recovered_at = time.perf_counter()
        await asyncio.to_thread(recover)
        await wait_until(
            lambda: all(any(at > recovered_at for at in m.acked_at.values()) for m in victims),
            "victims acked again",
        )
        stop_sending.set()
        await wait_until(lambda: all(m.settled for m in members.values()), "every message")
    history = {c.channel_id: answer for c, answer in zip(channels, answers, strict=True)}
    by_id = {channel.channel_id: channel for channel in channels}
    return Outage(victim, by_id, owners, members, history, activity, failed_at, recovered_at)
