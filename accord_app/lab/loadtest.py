"""Run the Locust load test (benchmarks/locustfile.py) from Python, and read what it measured.

    result = run_locust(cluster.url, folder, rates=[50, 100, 200], step_seconds=5)
    for step in result.steps:
        print(step.offered, step.acked, step.ack_p99)
    sustained_throughput(result.steps, p99_limit_ms=250)

Locust runs headless in a subprocess (a master and `processes` generator processes), stops by
itself after the last step, and is killed if it overruns its time. Only loopback hosts.
"""

import csv
import errno
import ipaddress
import json
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from accord_app.cluster.ports import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
LOCUSTFILE = PROJECT_DIR / "benchmarks" / "locustfile.py"
ACK, DELIVERY = "send→ack", "send→delivery"
# A step kept up when (almost) everything sent was acked, and the generators sent (almost) what
# was offered: their send times are random, so a few seconds' count wanders by a few percent.
ACKED_SHARE = 0.95
SENT_SHARE = 0.85
# A generator process busier than this (share of one core) may have been the limit.
GENERATOR_BUSY = 0.85
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Each chat member of a load test connects from an address of its own, as people do from their
# own machines, so the server's limits per address apply to each member and can stay on. Linux
# answers on all of 127.0.0.0/8; macOS only on 127.0.0.1 until loopback is given aliases.
FIRST_MEMBER_ADDRESS = ipaddress.IPv4Address("127.0.0.2")
MEMBER_ADDRESSES = 2**24 - 3  # 127.0.0.2 to 127.255.255.254
# A measurement that must not depend on limits at all (chapter 07, the benchmarks) lifts those
# meant for one person typing, per connection and per address, or it would measure them.
# The lab's servers and clusters are its own, on loopback: they take a known admin token, so
# the chapters' and benchmarks' announcements can send it (ADMIN_HEADERS).
LAB_ADMIN_TOKEN = "lab-admin-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {LAB_ADMIN_TOKEN}"}
LIFTED_LIMITS = dict.fromkeys(
    ["ACCORD_RATE_LIMIT", "ACCORD_RATE_BURST", "ACCORD_CLIENT_RATE_LIMIT",
     "ACCORD_CLIENT_RATE_BURST", "ACCORD_CLIENT_CONNECTIONS", "ACCORD_CLIENT_CONNECT_RATE",
     "ACCORD_CLIENT_CONNECT_BURST", "ACCORD_CLIENT_REQUEST_RATE", "ACCORD_CLIENT_REQUEST_BURST",
     "ACCORD_CLIENT_HTTP_CONNECTIONS"],
    "1000000",
) | {"ACCORD_ADMIN_TOKEN": LAB_ADMIN_TOKEN}  # fmt: skip


def member_address(slot: int) -> str:
    """The loopback address the member in `slot` connects from: 127.0.0.2, .3, ..."""
    return str(FIRST_MEMBER_ADDRESS + slot % MEMBER_ADDRESSES)


def can_bind(address: str) -> bool:
    """Whether this machine has `address` (a socket can be bound to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def missing_member_addresses(members: int) -> str | None:
    """None if `members` members can each connect from their own address; else what to do."""
    missing = [slot for slot in range(members) if not can_bind(member_address(slot))]
    if not missing:
        return None
    last = member_address(members - 1)
    aliases = (
        f"for n in $(seq 2 {members + 1}); do sudo ifconfig lo0 alias 127.0.0.$n up; done"
        if members < 254
        else f"an alias on lo0 for every address from {member_address(0)} to {last}"
    )
    return (
        f"{len(missing)} of the {members} members' loopback addresses ({member_address(0)} to"
        f" {last}) are not on this machine (macOS has only 127.0.0.1 by default), so those"
        " members connect from 127.0.0.1, and the server's limits per address will refuse some"
        f" of them. Add the addresses first ({aliases}; they last until a reboot), or start the"
        " server with the limits lifted (LIFTED_LIMITS in accord_app/lab/loadtest.py)."
    )


def connect_from(host: str, port: int, source: str | None, timeout: float) -> socket.socket:
    """A TCP connection to host:port from the loopback address `source` (None: any), or from
    any address if this machine does not have `source` (see missing_member_addresses)."""
    if source is not None:
        try:
            return socket.create_connection((host, port), timeout, source_address=(source, 0))
        except OSError as error:
            if error.errno != errno.EADDRNOTAVAIL:
                raise
    return socket.create_connection((host, port), timeout)


def ipv4_loopback(host: str, port: int) -> str | None:
    """The IPv4 loopback address `host` names, if it names one: members can connect to it from
    their own addresses. (From an IPv4 address to an IPv6 host there is no way.)"""
    try:
        found = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return None
    address = str(found[0][4][0]) if found else None
    return address if address and ipaddress.IPv4Address(address).is_loopback else None


class LoadTestError(RuntimeError):
    """Locust failed, overran its time, or wrote no results."""


@dataclass(frozen=True)
class Latency:
    """One request type in one step: how many per second, how fast, what failed."""

    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    failures: dict[str, int]

    @classmethod
    def of(cls, names: dict[str, Any], name: str) -> "Latency":
        found = names.get(name, {})
        return cls(
            found.get("per_second", 0.0),
            found.get("p50_ms"),
            found.get("p99_ms"),
            dict(found.get("failures", {})),
        )


@dataclass(frozen=True)
class Step:
    """One step of the stepped load, as every generator process measured it."""

    offered: float  # messages per second asked of the generators
    sent: float  # ... that they managed to send
    ack: Latency
    delivery: Latency
    generator_cpu: float  # the busiest generator process, share of one core
    names: dict[str, Any]  # every request type, e.g. "send→ack [hot]"

    @property
    def acked(self) -> float:
        return self.ack.per_second

    @property
    def delivered(self) -> float:
        return self.delivery.per_second

    @property
    def failures(self) -> int:
        return sum(sum(entry.get("failures", {}).values()) for entry in self.names.values())

    @property
    def generator_busy(self) -> bool:
        return self.generator_cpu > GENERATOR_BUSY

    def latency(self, name: str) -> Latency:
        return Latency.of(self.names, name)

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Step":
        names = data["names"]
        return cls(
            data["offered_per_second"],
            data["sent_per_second"],
            Latency.of(names, ACK),
            Latency.of(names, DELIVERY),
            data["generator_cpu_max"],
            names,
        )


@dataclass(frozen=True)
class LoadTestResult:
    steps: list[Step]
    stats: list[dict[str, str]]  # Locust's own totals for the run (its *_stats.csv)
    folder: Path


def latency_bucket(ms: float) -> float:
    """Rounded so histograms stay small: 0.1 ms under 10 ms, 1 ms under 1 s, then 10 ms."""
    if ms < 10:
        return round(ms, 1)
    return float(round(ms)) if ms < 1000 else float(round(ms, -1))


def percentile(histogram: Mapping[float, int], fraction: float) -> float | None:
    """The smallest value with at least `fraction` of the counts at or below it."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = fraction * total, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


@dataclass(frozen=True)
class Membership:
    """Who sits where in a load test: `members` per channel, or `hot_members` in the hot
    channel (channel 0) when `hot_share` of all messages go to it; every member's share of
    the total rate follows from that."""

    channels: int
    members: int
    hot_share: float = 0.0
    hot_members: int = 0  # 0: as many as any channel

    def __post_init__(self) -> None:
        if not 0 <= self.hot_share < 1:
            raise ValueError(f"the hot share is a fraction from 0 to below 1, not {self.hot_share}")
        if self.hot_share and self.channels < 2:
            raise ValueError("a hot channel needs other channels beside it")

    @property
    def hot(self) -> int:
        """Members of the hot channel (0 without one)."""
        return (self.hot_members or self.members) if self.hot_share else 0

    @property
    def total(self) -> int:
        return self.hot + (self.channels - (1 if self.hot else 0)) * self.members

    def seat(self, slot: int) -> tuple[int, float]:
        """(channel index, share of the total rate) of the member in `slot` (0..total-1)."""
        slot %= self.total
        if slot < self.hot:
            return 0, self.hot_share / self.hot
        quiet_channels = self.channels - (1 if self.hot else 0)
        channel = (1 if self.hot else 0) + (slot - self.hot) % quiet_channels
        return channel, (1 - self.hot_share) / (quiet_channels * self.members)


def kept_up(step: Step, p99_limit_ms: float) -> bool:
    """Whether the server kept up with a step: send→ack p99 within the limit, no failure, at
    least 95% of what was sent acked, and (so that the step measured what it meant to) the
    generators sent at least 85% of the offered load."""
    return (
        step.ack.p99_ms is not None
        and step.ack.p99_ms <= p99_limit_ms
        and step.failures == 0
        and step.acked >= ACKED_SHARE * step.sent
        and step.sent >= SENT_SHARE * step.offered
    )


def sustained_throughput(steps: Sequence[Step], p99_limit_ms: float) -> float:
    """The highest offered load (messages per second) that the server kept up with; 0 if it
    kept up with none. A load tried more than once (a search repeats the steps it doubts)
    counts as its last try says, as the search itself decided.

    The offered rate, not the count of acks in the step's few seconds, which wanders with the
    random send times; and the highest such step, not the last one before the first bad step:
    one hiccup at a low load (a checkpoint, a GC pause) says nothing about the capacity."""
    last_try: dict[float, bool] = {}
    for step in steps:  # in the order they ran
        last_try[round(step.offered, 6)] = kept_up(step, p99_limit_ms)
    return max((rate for rate, good in last_try.items() if good), default=0.0)


@dataclass
class RatePlan:
    """Which rate each step offers: the --rates in order, or a search for the knee. Told after
    every step whether it kept up, it answers the next rate, or None to stop.

    The search raises the rate by half while steps keep up (halves it while they do not);
    once it
    knows a rate that keeps up and a higher one that does not, it bisects between them
    (geometric midpoint) until they are within `precision` of each other. Two results are
    checked by trying the step again: the first step that does not keep up (the search
    narrows on it), and the final one that does (the answer rests on it). From a start within
    2x of the knee that takes 8 to 11 steps."""

    rates: list[float]
    search_from: float = 0.0
    stop_on_bad: bool = False
    precision: float = 1.08
    max_steps: int = 24
    bad: float = 0.0  # the lowest rate that did not keep up
    bad_in_a_row: int = 0
    steps: int = 0
    goods: list[float] = field(default_factory=list)  # rates that kept up
    doubted: float = 0.0  # a rate whose result is being checked by trying it again
    coarse: float = 1.5  # the step up while every step keeps up

    @property
    def good(self) -> float:
        """The highest rate that kept up so far, below the lowest that did not."""
        below = [rate for rate in self.goods if not self.bad or rate < self.bad]
        return max(below, default=0.0)

    def next(self, rate: float | None, kept_up: bool, overloaded: bool = False) -> float | None:
        """The rate after a step at `rate` (None: before the first step). `overloaded`: the
        step did not keep up beyond doubt (failures, or messages left unacked), not just a
        slow tail, which a hiccup could explain."""
        if rate is not None:
            self.steps += 1
            doubt = not overloaded and self._doubt(rate, kept_up)
            if self.search_from and self.steps < self.max_steps and doubt:
                return rate  # once more, to be sure
            if kept_up:
                self.goods.append(rate)
                self.bad_in_a_row = 0
            else:
                self.bad, self.bad_in_a_row = min(self.bad or rate, rate), self.bad_in_a_row + 1
        if self.steps >= self.max_steps:
            return None
        if not self.search_from:
            if self.stop_on_bad and self.bad_in_a_row >= 2:
                return None  # two steps in a row past the knee
            return self.rates[self.steps] if self.steps < len(self.rates) else None
        if rate is None:
            return self.search_from
        if not self.bad:
            return rate * self.coarse
        if not self.good:
            return rate / 2
        if self.bad / self.good <= self.precision:
            if self.good != self.doubted and self.steps < self.max_steps:
                self.doubted = self.good  # the answer rests on this step: try it again
                return self.good
            return None
        return math.sqrt(self.good * self.bad)

    def _doubt(self, rate: float, kept_up: bool) -> bool:
        """Whether this step's result is a first try that must be repeated: the first step
        that does not keep up (the whole search narrows on it, so a hiccup there would
        mislead it). The final good step is repeated by next() itself; a repeat that fails
        lowers the answer."""
        first_bad = not kept_up and not self.bad and rate != self.doubted
        if first_bad:
            self.doubted = rate
        return first_bad


def run_locust(
    host: str,
    folder: Path,
    *,
    rates: Sequence[float] = (),
    search_from: float = 0.0,
    precision: float = 1.08,
    step_seconds: float = 5.0,
    warmup_seconds: float = 1.5,
    min_samples: int = 0,
    join_seconds: float = 2.0,
    servers: int = 4,
    channels: int = 20,
    members: int = 2,
    hot_share: float = 0.0,
    hot_members: int = 0,
    readers: int = 0,
    processes: int = 2,
    stop_p99_ms: float = 0.0,
    ack_timeout: float = 5.0,
) -> LoadTestResult:
    """Run the stepped load against `host` and return its steps: the given `rates` (messages
    per second, all members together), or a search for the knee from `search_from` (doubling,
    then bisecting until it is known within `precision`; needs `stop_p99_ms`).
    `processes` generator processes (0 or 1: one process does it all); Locust's CSVs and the
    steps go to `folder`."""
    if bool(rates) == bool(search_from):
        raise ValueError("give either rates or search_from")
    if urlsplit(host).hostname not in LOOPBACK:
        raise LoadTestError(f"load tests only run against loopback, not {host!r}")
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "steps.json"
    results.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host,
        "--headless", "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
        "--csv", str(folder / "locust"), "--results", str(results),
        "--rates", ",".join(f"{rate:g}" for rate in rates or [1]),
        "--search-from", f"{search_from:g}", "--precision", f"{precision:g}",
        "--step-seconds", f"{step_seconds:g}", "--warmup-seconds", f"{warmup_seconds:g}",
        "--min-samples", str(min_samples),
        "--join-seconds", f"{join_seconds:g}", "--servers", str(servers),
        "--channels", str(channels), "--members", str(members),
        "--hot-share", f"{hot_share:g}", "--hot-members", str(hot_members),
        "--readers", str(readers),
        "--stop-p99-ms", f"{stop_p99_ms:g}", "--ack-timeout", f"{ack_timeout:g}",
    ]  # fmt: skip
    if processes > 1:
        # The master and its generators talk on a free loopback port: on Locust's usual one,
        # they would join any other Locust test running on this machine.
        port = str(free_port("127.0.0.1"))
        command += ["--processes", str(processes), "--master-bind-host", "127.0.0.1"]
        command += ["--master-bind-port", port, "--master-port", port]
    # Start-up, the steps (a search takes at most 24, with pauses), then stopping, with room
    # to spare; past that it is hung. A step lasts longer when it must gather min_samples.
    lowest = min(rates) if rates else search_from / 2**6
    step_limit = max(step_seconds, warmup_seconds + min_samples / lowest) + 2
    limit = 40 + join_seconds + (len(rates) if rates else 24) * step_limit
    with (folder / "locust.log").open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(limit)
        except subprocess.TimeoutExpired:
            log_path = folder / "locust.log"
            raise LoadTestError(f"Locust ran past {limit:.0f} s; see {log_path}") from None
        finally:
            # Hung, or Ctrl-C here: Locust runs in a session of its own (so that one killpg
            # reaches its generators), which the terminal's SIGINT does not reach.
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the master and its generators
                process.wait()
    if returncode != 0 or not results.exists():
        tail = (folder / "locust.log").read_text(errors="replace").splitlines()[-20:]
        raise LoadTestError(f"Locust exited with {returncode}:\n" + "\n".join(tail))
    measured = [Step.of(step) for step in json.loads(results.read_text())["steps"]]
    with (folder / "locust_stats.csv").open(newline="", encoding="utf-8") as stats:
        rows = list(csv.DictReader(stats))
    return LoadTestResult(measured, rows, folder)
