"""Locust load test for Accord: chat members on WebSockets, history readers over HTTP.

    make cluster                              # in one terminal
    make locust                               # in another: Locust's web UI on :8089
    .venv/bin/locust -f benchmarks/locustfile.py --host http://127.0.0.1:8787 --headless \\
        --rates 50,100,200 --step-seconds 10 --results steps.json

At the start of a test the master creates the servers and channels once and shares them with
its workers. Then every member joins one channel from a loopback address of its own (127.0.0.2,
.3, ...: the server's limits per address apply to each member, as to people on their own
machines) and sends messages on a fixed schedule, and
the load steps up: each step sets the total offered rate (messages per second, all members
together). Members never wait for an ack before the next send ("open loop"): when the server
falls behind, a queue forms and shows in the latency, instead of the load quietly dropping as
it would with clients that wait for each answer. The users are the members (--channels x
--members) and the readers (--readers): --users may repeat that number, --spawn-rate sets how
fast they join (default: all at once), --run-time ends the test early. Each member reports to
Locust:

- "send→ack": from sending a message to its ack, i.e. until it is durable;
- "send→delivery": from sending to its arrival at another member of the channel (fan-out);
- failures under those names, with their code: an error frame (e.g. "rate_limited"), no ack
  within --ack-timeout ("ack_timeout"), a refused or dropped connection.

With --hot-share H, one channel gets the fraction H of all messages and its reports are named
"... [hot]", so quiet channels can be told apart. With --readers N, N users read a random
channel's latest messages over HTTP ("history").

Measurements per step (what benchmarks/scaling.py reads): each load-generator process keeps
its own histograms per step, cut exactly where the master's step message arrives, and after a
warm-up; the master merges them and writes --results. Locust's own statistics and CSVs
(--csv) cover the whole run. Every step records the generator's CPU: a generator process near
100% of a core is the limit, not the server. Runs only against loopback addresses.
"""

import itertools
import json
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
import httpx
import websocket
from gevent.event import Event
from locust import FastHttpUser, LoadTestShape, User, constant_pacing, events, task
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from accord_app.lab.loadtest import (
    ACKED_SHARE,
    Membership,
    RatePlan,
    Step,
    connect_from,
    ipv4_loopback,
    kept_up,
    latency_bucket,
    member_address,
    missing_member_addresses,
    percentile,
)

logger = logging.getLogger("accord.locust")
logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request of the setup

ACK = "send→ack"
DELIVERY = "send→delivery"
HISTORY = "history"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# How long a member waits for the layout from the master before it gives up.
LAYOUT_TIMEOUT_SECONDS = 60.0
# How often a member looks at the clock and at the current rate.
POLL_SECONDS = 0.1


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("Accord")
    group.add_argument("--servers", type=int, default=4, help="servers to create")
    group.add_argument("--channels", type=int, default=20, help="channels, spread over servers")
    group.add_argument("--members", type=int, default=2, help="members per channel")
    group.add_argument(
        "--rates",
        default="20,50,100",
        help="total messages per second, one value per step",
    )
    group.add_argument(
        "--search-from",
        type=float,
        default=0.0,
        help="instead of --rates, find the knee: from this rate, double (or halve) until a step"
        " keeps up and another does not (see --stop-p99-ms), then bisect",
    )
    group.add_argument(
        "--precision",
        type=float,
        default=1.08,
        help="a search stops when the knee is known within this factor",
    )
    group.add_argument("--step-seconds", type=float, default=8.0, help="length of a step")
    group.add_argument("--warmup-seconds", type=float, default=3.0, help="unmeasured start")
    group.add_argument(
        "--min-samples",
        type=int,
        default=0,
        help="measure each step at least long enough for this many messages at its rate (a p99"
        " of 100 samples is little more than their maximum)",
    )
    group.add_argument("--join-seconds", type=float, default=3.0, help="time to join first")
    group.add_argument("--hot-share", type=float, default=0.0, help="fraction to one channel")
    group.add_argument(
        "--hot-members", type=int, default=0, help="members of the hot channel (default: --members)"
    )
    group.add_argument("--ack-timeout", type=float, default=5.0, help="seconds before a failure")
    group.add_argument("--readers", type=int, default=0, help="HTTP history readers")
    group.add_argument("--reader-rate", type=float, default=2.0, help="reads/s per reader")
    group.add_argument(
        "--stop-p99-ms",
        type=float,
        default=0.0,
        help="end the test after two steps in a row whose send→ack p99 is above this, or that"
        " failed (0: run every step)",
    )
    group.add_argument("--results", default="", help="write the per-step results (JSON) here")


def options(environment: Environment) -> Any:
    return environment.parsed_options


def membership_of(opts: Any) -> Membership:
    return Membership(opts.channels, opts.members, opts.hot_share, opts.hot_members)


def users_of(opts: Any) -> int:
    """The test's users: its chat members and its history readers."""
    return membership_of(opts).total + opts.readers


def check_users(opts: Any) -> None:
    """--users, if given, must be the number the test is made of."""
    if opts.num_users not in (None, users_of(opts)):
        raise ValueError(
            f"--users {opts.num_users}: this test's users are its members, --channels x"
            f" --members ({membership_of(opts).total}), and its --readers ({opts.readers});"
            f" give --users {users_of(opts)}, or leave it out"
        )


def rates_of(text: str) -> list[float]:
    rates = [float(value) for value in text.split(",") if value.strip()]
    if not rates or any(rate <= 0 for rate in rates):
        raise ValueError(f"--rates takes positive messages per second, comma-separated: {text!r}")
    return rates


# -- what every load-generator process records ------------------------------------------------


@dataclass
class Tally:
    """This process's counts for the current step (measured part only)."""

    step: int = -1
    measuring: bool = False
    started: float = 0.0  # when measuring started (monotonic)
    cpu_started: float = 0.0
    latencies: dict[str, Counter[float]] = field(default_factory=dict)
    failures: dict[str, Counter[str]] = field(default_factory=dict)
    sent: int = 0
    worst_lag_ms: float = 0.0

    def record(self, name: str, ms: float) -> None:
        if self.measuring:
            self.latencies.setdefault(name, Counter())[latency_bucket(ms)] += 1

    def fail(self, name: str, code: str) -> None:
        if self.measuring:
            self.failures.setdefault(name, Counter())[code] += 1

    def report(self) -> dict[str, Any]:
        window = time.monotonic() - self.started if self.measuring else 0.0
        return {
            "step": self.step,
            "seconds": window,
            "cpu_seconds": time.process_time() - self.cpu_started if self.measuring else 0.0,
            "sent": self.sent,
            "worst_lag_ms": self.worst_lag_ms,
            "latencies": {name: dict(counts) for name, counts in self.latencies.items()},
            "failures": {name: dict(counts) for name, counts in self.failures.items()},
        }


@dataclass
class Generator:
    """This process's side of the test: the layout, the current rate and the tally."""

    layout: dict[str, Any] | None = None
    layout_ready: Event = field(default_factory=Event)
    rate: float = 0.0  # total messages per second, all members of all processes
    tally: Tally = field(default_factory=Tally)
    slots: Any = field(default_factory=itertools.count)


GENERATOR = Generator()


def report(environment: Environment, name: str, ms: float, error: str | None = None) -> None:
    """To Locust (its UI and CSVs) and to this step's tally."""
    environment.events.request.fire(
        request_type="WS",
        name=name,
        response_time=ms,
        response_length=0,
        exception=None if error is None else Exception(error),
        context={},
    )
    if error is None:
        GENERATOR.tally.record(name, ms)
    else:
        GENERATOR.tally.fail(name, error)


# -- the users ---------------------------------------------------------------------------------


class ChatMember(User):
    """Joins one channel, sends on a schedule, times acks and deliveries."""

    fixed_count = 1  # set from --channels x --members when Locust starts

    def wait_time(self) -> float:
        """Until the next send is due, at most POLL_SECONDS: a member wakes up often enough
        to notice a new rate within the warm-up of a step, even if it sends once a minute."""
        if self.next_send is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, self.next_send - time.monotonic()))

    def schedule(self, now: float) -> None:
        """When to send next. The gaps are random (exponential: a Poisson process, like many
        people typing independently). Equal gaps would make every member send at the same
        instant after each change of rate, a burst no real channel sees."""
        rate = self.rate()
        if rate != self.scheduled_rate:  # a new step: draw afresh (a Poisson process forgets)
            self.scheduled_rate = rate
            self.next_send = None if rate <= 0 else now + random.expovariate(rate)
        elif self.next_send is not None and now >= self.next_send:
            # Behind by more than a second: start afresh (the step records how far behind).
            self.next_send = max(self.next_send, now - 1.0) + random.expovariate(rate)

    def on_start(self) -> None:
        if not GENERATOR.layout_ready.wait(LAYOUT_TIMEOUT_SECONDS):
            raise RuntimeError("no layout from the master: did its test_start fail?")
        layout = GENERATOR.layout
        assert layout is not None
        slot = next(GENERATOR.slots) * layout["processes"] + self.environment.runner.worker_index
        membership = Membership(**layout["membership"])
        self.channel_index, self.share = membership.seat(slot)
        self.server_id, self.channel_id = layout["channels"][self.channel_index]
        self.hot = membership.hot > 0 and self.channel_index == 0
        self.username = f"member{slot}"
        self.source = member_address(slot)
        self.suffix = " [hot]" if self.hot else ""
        self.pending: dict[str, float] = {}
        self.next_send: float | None = None
        self.scheduled_rate = 0.0
        self.ws: websocket.WebSocket | None = None
        self.receiver: gevent.Greenlet | None = None
        self.ack_timeout = layout["ack_timeout"]
        self.connect()

    def rate(self) -> float:
        return GENERATOR.rate * self.share

    def connect(self) -> None:
        base = self.host.replace("http://", "ws://", 1)
        query = urlencode({"username": self.username})
        url = f"{base}/api/servers/{self.server_id}/channels/{self.channel_id}/connect?{query}"
        parts = urlsplit(self.host)
        port = parts.port or 80
        target = ipv4_loopback(parts.hostname or "", port)
        try:
            # From the member's own address when the server is on IPv4 loopback.
            sock = connect_from(target or parts.hostname or "", port, target and self.source, 10)
            self.ws = websocket.create_connection(
                url, timeout=10, socket=sock, enable_multithread=True
            )
        except websocket.WebSocketBadStatusException as error:
            report(self.environment, ACK + self.suffix, 0, f"refused_{error.status_code}")
            self.ws = None
            return
        except (OSError, websocket.WebSocketException) as error:
            report(self.environment, ACK + self.suffix, 0, f"connect_{type(error).__name__}")
            self.ws = None
            return
        self.ws.settimeout(None)
        self.receiver = gevent.spawn(self.receive, self.ws)

    @task
    def send(self) -> None:
        now = time.monotonic()
        due = self.next_send
        self.schedule(now)
        if due is None or now < due or self.scheduled_rate <= 0:
            return
        if self.ws is None:
            self.connect()
            if self.ws is None:
                return  # refused: it counts as a failure, and the schedule goes on
        lag = (now - due) * 1000
        GENERATOR.tally.worst_lag_ms = max(GENERATOR.tally.worst_lag_ms, lag)
        self.expire(now)
        nonce = uuid.uuid4().hex[:16]
        # The wall-clock send time travels in the text: every member reads the same clock.
        text = f"{time.time():.6f} {nonce}"
        self.pending[nonce] = now
        try:
            self.ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))
        except (OSError, websocket.WebSocketException):
            self.pending.pop(nonce, None)
            report(self.environment, ACK + self.suffix, 0, "send_failed")
            self.ws = None
            return
        if GENERATOR.tally.measuring:
            GENERATOR.tally.sent += 1

    def expire(self, now: float) -> None:
        for nonce, sent in list(self.pending.items()):
            if now - sent > self.ack_timeout:
                del self.pending[nonce]
                report(self.environment, ACK + self.suffix, (now - sent) * 1000, "ack_timeout")

    def receive(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                data = ws.recv()
            except (OSError, websocket.WebSocketException):
                if self.ws is ws:
                    report(self.environment, ACK + self.suffix, 0, "connection_closed")
                    self.ws = None
                return
            now, wall = time.monotonic(), time.time()
            if not data or data == "pong":
                continue
            frame = json.loads(data)
            kind = frame.get("type")
            if kind == "ack":
                sent = self.pending.pop(frame.get("nonce"), None)
                if sent is not None:
                    report(self.environment, ACK + self.suffix, (now - sent) * 1000)
            elif kind == "message" and frame.get("username") != self.username:
                sent_at = float(frame["message"].split(" ", 1)[0])
                report(self.environment, DELIVERY + self.suffix, (wall - sent_at) * 1000)
            elif kind == "error":
                sent = self.pending.pop(frame.get("nonce"), None)
                elapsed = 0.0 if sent is None else (now - sent) * 1000
                report(self.environment, ACK + self.suffix, elapsed, frame.get("code", "error"))

    def on_stop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close()
        if self.receiver is not None:
            self.receiver.kill(block=False)


class HistoryReader(FastHttpUser):
    """Reads a random channel's latest 50 messages."""

    fixed_count = 0  # set from --readers when Locust starts
    wait_time = constant_pacing(0.5)

    def on_start(self) -> None:
        if not GENERATOR.layout_ready.wait(LAYOUT_TIMEOUT_SECONDS):
            raise RuntimeError("no layout from the master: did its test_start fail?")

    @task
    def read(self) -> None:
        assert GENERATOR.layout is not None
        server_id, channel_id = random.choice(GENERATOR.layout["channels"])
        path = f"/api/servers/{server_id}/channels/{channel_id}/messages?limit=50"
        with self.client.get(path, name=HISTORY, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status_{response.status_code}")


# -- the master: layout, steps, results -------------------------------------------------------


def create_layout(host: str, servers: int, channels: int) -> list[list[str]]:
    """Create the servers and channels (round robin over servers); [server_id, channel_id]s."""
    if urlsplit(host).hostname not in LOOPBACK_HOSTS:
        raise RuntimeError(f"this load test only runs against loopback, not {host!r}")
    created: list[list[str]] = []
    with httpx.Client(base_url=host, timeout=30, trust_env=False) as http:
        server_ids = []
        for number in range(1, servers + 1):
            response = http.post("/api/servers", json={"name": f"Load test {number}"})
            response.raise_for_status()
            server_ids.append(response.json()["id"])
        for number in range(channels):
            server_id = server_ids[number % servers]
            response = http.post(
                f"/api/servers/{server_id}/channels", json={"name": f"load-{number + 1}"}
            )
            response.raise_for_status()
            created.append([server_id, response.json()["id"]])
    return created


class SteppedRate(LoadTestShape):
    """All members join, then the offered rate steps through --rates. A greenlet conducts the
    steps (tick() only runs once a second); tick() keeps the users up until it is done, or
    until --run-time is up (Locust leaves that to a shape like this one)."""

    use_common_options = True  # --users, --spawn-rate and --run-time: read here

    def tick(self) -> tuple[int, float, list[type[User]]] | None:
        environment = self.runner.environment if self.runner else None
        assert environment is not None
        opts = options(environment)
        if not hasattr(self, "conductor"):
            self.done = False
            self.conductor = gevent.spawn(conduct, environment, self)
        if self.done or (opts.run_time and self.get_run_time() >= opts.run_time):
            self.conductor.kill()  # a test started again from the web UI conducts anew
            del self.conductor
            CONDUCTOR.started.clear()
            return None
        classes: list[type[User]] = [ChatMember] + ([HistoryReader] if opts.readers else [])
        users = users_of(opts)
        return users, spawn_rate(opts), classes


def spawn_rate(opts: Any) -> float:
    """Users started per second: --spawn-rate, or all at once."""
    return float(opts.spawn_rate or max(users_of(opts), 1))


@dataclass
class StepResult:
    index: int
    rate: float
    reports: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        latencies: dict[str, Counter[float]] = {}
        failures: dict[str, Counter[str]] = {}
        for part in self.reports:
            for name, counts in part["latencies"].items():
                latencies.setdefault(name, Counter()).update(
                    {float(ms): n for ms, n in counts.items()}
                )
            for name, counts in part["failures"].items():
                failures.setdefault(name, Counter()).update(counts)
        names = {}
        for name in sorted(set(latencies) | set(failures)):
            histogram = latencies.get(name, Counter())
            count = sum(histogram.values())
            names[name] = {
                "count": count,
                "per_second": sum(
                    sum(part["latencies"].get(name, {}).values()) / part["seconds"]
                    for part in self.reports
                    if part["seconds"] > 0
                ),
                "p50_ms": percentile(histogram, 0.50),
                "p90_ms": percentile(histogram, 0.90),
                "p99_ms": percentile(histogram, 0.99),
                "max_ms": max(histogram) if histogram else None,
                "failures": dict(failures.get(name, {})),
            }
        cpu = [p["cpu_seconds"] / p["seconds"] for p in self.reports if p["seconds"] > 0]
        return {
            "step": self.index,
            "offered_per_second": self.rate,
            "sent_per_second": sum(p["sent"] / p["seconds"] for p in self.reports if p["seconds"]),
            "seconds": max((p["seconds"] for p in self.reports), default=0.0),
            "generator_processes": len(self.reports),
            "generator_cpu_max": max(cpu, default=0.0),
            "worst_lag_ms": max((p["worst_lag_ms"] for p in self.reports), default=0.0),
            "names": names,
        }


@dataclass
class Conductor:
    """The master's record of the steps, filled by the processes' reports."""

    steps: dict[int, StepResult] = field(default_factory=dict)
    started: Event = field(default_factory=Event)  # the layout is out: members are joining

    def received(self, part: dict[str, Any]) -> None:
        step = self.steps.get(part["step"])
        if step is not None:
            step.reports.append(part)


CONDUCTOR = Conductor()


def processes(environment: Environment) -> int:
    runner = environment.runner
    return runner.worker_count if isinstance(runner, MasterRunner) else 1


def announce(environment: Environment, step: int, rate: float, measuring: bool) -> None:
    assert environment.runner is not None
    environment.runner.send_message(
        "accord_step", {"step": step, "rate": rate, "measuring": measuring}
    )


def wait_for_reports(environment: Environment, step: StepResult, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(step.reports) < processes(environment) and time.monotonic() < deadline:
        gevent.sleep(0.05)


DRAIN_SECONDS = (1.0, 20.0)  # at least, at most


def drain_seconds(step: dict[str, Any], good_rate: float) -> float:
    """How long the server needs to clear what a step left it: the messages sent beyond those
    acked, at the best rate it is known to keep up with, or at least the p99 wait the step
    saw (a queue that makes messages wait that long takes about that long to empty)."""
    ack = step["names"].get(ACK, {})
    acked = ack.get("per_second", 0.0)
    backlog = max(0.0, step["sent_per_second"] - acked) * step["seconds"]
    waited = (ack.get("p99_ms") or 0.0) / 1000
    low, high = DRAIN_SECONDS
    # Half as long again, to be safe: a step measured on a queue left by the last one would
    # blame the server for what came before it.
    return min(high, max(low, 1.5 * max(waited, backlog / max(good_rate, acked, 1.0))))


def conduct(environment: Environment, shape: SteppedRate) -> None:
    opts = options(environment)
    plan = RatePlan(
        rates_of(opts.rates),
        opts.search_from,
        stop_on_bad=bool(opts.stop_p99_ms or opts.search_from),
    )
    try:
        CONDUCTOR.started.wait()
        # Every member joins before the first step: at --spawn-rate that takes a while.
        gevent.sleep(max(opts.join_seconds, users_of(opts) / spawn_rate(opts) + 1))
        if opts.search_from:
            # A search trusts its first steps the most: warm up first (connections, caches),
            # at half the first rate, unmeasured.
            announce(environment, -1, opts.search_from / 2, measuring=False)
            gevent.sleep(opts.step_seconds)
        rate, index = plan.next(None, True), 0
        while rate is not None:
            step = CONDUCTOR.steps[index] = StepResult(index, rate)
            announce(environment, index, rate, measuring=False)
            gevent.sleep(opts.warmup_seconds)
            announce(environment, index, rate, measuring=True)
            gevent.sleep(max(opts.step_seconds - opts.warmup_seconds, opts.min_samples / rate))
            announce(environment, -1, rate, measuring=False)  # closes the step, load goes on
            kept_up = not past_the_knee(environment, step)  # waits for every report
            measured = Step.of(step.summary())
            overloaded = measured.failures > 0 or measured.acked < ACKED_SHARE * measured.sent
            rate, index = plan.next(rate, kept_up, overloaded), index + 1
            if rate is not None and not kept_up:
                announce(environment, -1, 0.0, measuring=False)  # a pause: the queues drain
                gevent.sleep(drain_seconds(step.summary(), plan.good))
        announce(environment, -1, 0.0, measuring=False)
        write_results(environment)
    finally:
        shape.done = True


def past_the_knee(environment: Environment, step: StepResult) -> bool:
    """Whether the server did not keep up with the step (see loadtest.kept_up)."""
    limit = options(environment).stop_p99_ms
    wait_for_reports(environment, step)
    return bool(limit) and not kept_up(Step.of(step.summary()), limit)


def write_results(environment: Environment) -> None:
    path = options(environment).results
    steps = [step.summary() for step in sorted(CONDUCTOR.steps.values(), key=lambda s: s.index)]
    steps = [step for step in steps if step["seconds"] > 0]
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"host": environment.host, "steps": steps}, file, indent=1)
    for step in steps:
        ack = step["names"].get(ACK, {})
        logger.info(
            "step %d: offered %.0f/s, acked %.0f/s, p50 %s ms, p99 %s ms, failures %s",
            step["step"],
            step["offered_per_second"],
            ack.get("per_second", 0),
            ack.get("p50_ms"),
            ack.get("p99_ms"),
            ack.get("failures"),
        )


# -- wiring: who listens to what, on the master and on the generators -------------------------


def on_step(environment: Environment, msg: Any, **_: Any) -> None:
    """A generator hears of a new step: report the one that ends, start counting the next."""
    data = msg.data
    tally = GENERATOR.tally
    if tally.step >= 0 and (data["step"] != tally.step or not data["measuring"]):
        if tally.measuring:
            assert environment.runner is not None
            environment.runner.send_message("accord_report", tally.report())
        GENERATOR.tally = tally = Tally()
    GENERATOR.rate = data["rate"]
    tally.step = data["step"]
    if data["measuring"]:
        tally.measuring = True
        tally.started = time.monotonic()
        tally.cpu_started = time.process_time()


def on_layout(environment: Environment, msg: Any, **_: Any) -> None:
    """A generator gets the test's layout: its members can join (a new test starts afresh)."""
    GENERATOR.layout = msg.data
    GENERATOR.slots = itertools.count()
    GENERATOR.tally = Tally()
    GENERATOR.rate = 0.0
    GENERATOR.layout_ready.set()


def on_report(environment: Environment, msg: Any, **_: Any) -> None:
    CONDUCTOR.received(msg.data)


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    opts = options(environment)
    if opts is not None:
        try:
            check_users(opts)
        except ValueError as error:
            raise SystemExit(str(error)) from None
        # What the web UI's form shows: this test's users, all started at once.
        opts.num_users = users_of(opts)
        opts.spawn_rate = spawn_rate(opts)
        ChatMember.fixed_count = membership_of(opts).total
        HistoryReader.fixed_count = opts.readers
        HistoryReader.wait_time = constant_pacing(1.0 / opts.reader_rate)
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        runner.register_message("accord_step", on_step)
        runner.register_message("accord_layout", on_layout)
    if isinstance(runner, (MasterRunner, LocalRunner)):
        runner.register_message("accord_report", on_report)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, (MasterRunner, LocalRunner)):
        return
    opts = options(environment)
    assert environment.host is not None, "pass --host, e.g. http://127.0.0.1:8787"
    rates_of(opts.rates)  # refuse a bad --rates before creating anything
    check_users(opts)  # the web UI's field
    if opts.search_from and not opts.stop_p99_ms:
        raise ValueError("--search-from needs --stop-p99-ms: it is how a step is judged")
    membership = membership_of(opts)  # refuses a hot share that makes no sense
    if ipv4_loopback(urlsplit(environment.host).hostname or "", 80):
        missing = missing_member_addresses(membership.total)
        if missing:
            logger.warning(missing)
        else:
            last = member_address(membership.total - 1)
            logger.info("Members connect from %s to %s, one each.", member_address(0), last)
    layout = {
        "channels": create_layout(environment.host, opts.servers, opts.channels),
        "processes": processes(environment),
        "membership": asdict(membership),
        "ack_timeout": opts.ack_timeout,
    }
    CONDUCTOR.steps.clear()
    runner.send_message("accord_layout", layout)
    CONDUCTOR.started.set()
