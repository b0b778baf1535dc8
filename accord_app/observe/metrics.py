"""This process's numbers in Prometheus' format, for `GET /metrics` (served by accord_app/app.py;
no web framework here, since the chat's core counts into it).

Three sources, each as cheap as it can be on the paths that carry messages:

- the runtime's rarer events (runtime.observe, accord_app/actors/events.py): wake-ups,
  hibernations, evictions, resets, alarms, overloads, counted as they happen into
  prometheus_client's own counters, one child per actor class looked up once;
- what the runtime tallies on every turn, commit and frame (events.Activity and Traffic, a
  few integer additions each; an event per turn into prometheus_client's locked histograms
  cost 10 % more server CPU per frame in benchmarks/fanout.py), and what is true now (actors
  awake, sockets open, mailbox depths): both read only when scraped, by `_NowCollector`;
- the web and chat layers, which call the `Metrics` methods on the rare paths (a refused frame
  or connection, a rate limit, a call to another worker).

Labels stay few and bounded: the actor's class, an error code from the code's own list, an
outcome, a direction. Never a channel id or a user: one series per channel would grow without
end and reveal who talks where; per-actor detail is the inspector's (accord_app/observe/).
Each app has its own CollectorRegistry, so several apps in one process (tests) never collide.
"""

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from accord_app.actors import ActorEvent, Distribution, EventKind, Runtime

PREFIX = "accord"
# Seconds a call to another worker takes: a millisecond, up to its deadline.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Where a call to another worker's actor ended (accord_app/chat/http/remote.py).
CALL_OUTCOMES = ("ok", "timed_out", "unreachable", "refused", "cancelled")


@dataclass(frozen=True, slots=True)
class _ClassMetrics:
    """One actor class's children of the event-driven metrics, looked up once."""

    wakeups: Counter
    hibernations: Counter
    evictions: Counter
    resets: Counter
    alarms: Counter
    overloads: Counter
    asleep: set[str]  # actors this process put to sleep that have not woken since


class Metrics:
    """Every metric of one app, in its own registry. `attach(runtime)` starts the counting."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        by_class = "actor_class"
        self.wakeups = counter("actor_wakeups", "Actors woken (instance built).", by_class)
        self.hibernations = counter(
            "actor_hibernations", "Actors hibernated after idle_timeout.", by_class
        )
        self.evictions = counter(
            "actor_evictions", "Actors hibernated early to make room (max_live).", by_class
        )
        self.resets = counter("actor_resets", "Instances thrown away after an error.", by_class)
        self.alarms = counter("actor_alarms", "Alarm turns run.", by_class)
        self.overloads = counter(
            "actor_overloads", "Events refused because the mailbox was full.", by_class
        )
        self.refused_frames = counter(
            "websocket_refused_frames", "Chat frames answered with an error frame, by code.", "code"
        )
        self.refused_connections = counter(
            "websocket_refused_connections", "WebSocket upgrades refused, by code.", "code"
        )
        self.rate_limited = counter(
            "rate_limited",
            "Refused for going over a rate limit: an HTTP request or a chat frame.",
            "what",
        )
        self.remote_call_seconds = Histogram(
            f"{PREFIX}_remote_call_seconds",
            "Calls to an actor on another worker (through the router), by outcome.",
            ["outcome"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self._classes: dict[str, _ClassMetrics] = {}
        self._now = _NowCollector(self)
        registry.register(self._now)
        self._handlers: dict[EventKind, Callable[[_ClassMetrics, ActorEvent], None]] = {
            EventKind.WOKE: _woke,
            EventKind.HIBERNATED: _hibernated,
            EventKind.EVICTED: _evicted,
            EventKind.RESET: lambda m, e: m.resets.inc(),
            EventKind.ALARM: lambda m, e: m.alarms.inc(),
            EventKind.OVERLOADED: lambda m, e: m.overloads.inc(),
        }
        for outcome in CALL_OUTCOMES:  # every outcome shown from the start, at zero
            self.remote_call_seconds.labels(outcome)

    # -- the runtime ---------------------------------------------------------------------------

    def attach(self, runtime: Runtime) -> Callable[[], None]:
        """Count `runtime`'s events and read its state when scraped; returns the detach."""
        self._now.runtime = runtime
        stop = runtime.observe(self.on_event, self._handlers)

        def detach() -> None:
            stop()
            self._now.runtime = None

        return detach

    def watch_http_refusals(self, refusals: Tally[str]) -> None:
        """Report the counts of refused HTTP connections (web/middleware.py keeps them)."""
        self._now.http_refusals = refusals

    def on_event(self, event: ActorEvent) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            metrics = self._classes.get(event.actor_class) or self._class(event.actor_class)
            handler(metrics, event)

    def _class(self, name: str) -> _ClassMetrics:
        self._classes[name] = found = _ClassMetrics(
            self.wakeups.labels(name),
            self.hibernations.labels(name),
            self.evictions.labels(name),
            self.resets.labels(name),
            self.alarms.labels(name),
            self.overloads.labels(name),
            set(),
        )
        return found

    def asleep(self, actor_class: str) -> int:
        metrics = self._classes.get(actor_class)
        return 0 if metrics is None else len(metrics.asleep)

    # -- the web and chat layers ---------------------------------------------------------------

    def frame_refused(self, code: str) -> None:
        self.refused_frames.labels(code).inc()
        if code == "rate_limited":
            self.rate_limited.labels("chat_frame").inc()

    def connection_refused(self, code: str) -> None:
        self.refused_connections.labels(code).inc()

    def request_rate_limited(self) -> None:
        self.rate_limited.labels("http_request").inc()

    def remote_call(self, outcome: str, seconds: float) -> None:
        self.remote_call_seconds.labels(outcome).observe(seconds)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type for a scrape, in the format its Accept header asks for
        (Prometheus' text format, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


def _woke(metrics: _ClassMetrics, event: ActorEvent) -> None:
    metrics.wakeups.inc()
    metrics.asleep.discard(event.actor_id)


def _hibernated(metrics: _ClassMetrics, event: ActorEvent) -> None:
    metrics.hibernations.inc()
    metrics.asleep.add(event.actor_id)


def _evicted(metrics: _ClassMetrics, event: ActorEvent) -> None:
    metrics.evictions.inc()
    metrics.asleep.add(event.actor_id)


def buckets(tally: Distribution) -> tuple[list[tuple[str, float]], float]:
    """A runtime's Distribution as a histogram's cumulative buckets, and its sum."""
    found, below = [], 0
    for bound, count in zip(
        (*map(floatToGoString, tally.bounds), "+Inf"), tally.buckets, strict=True
    ):
        below += count
        found.append((bound, float(below)))
    return found, tally.sum


class _NowCollector(Collector):
    """What is true at scrape time, read from the runtime when Prometheus asks."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.runtime: Runtime | None = None
        self.http_refusals: Tally[str] = Tally()

    def collect(self) -> Iterable[Metric]:
        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)

        def histogram(name: str, doc: str) -> HistogramMetricFamily:
            return HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=("actor_class",))

        awake = gauge("actors_awake", "Actors in memory now.", "actor_class")
        asleep = gauge(
            "actors_hibernated",
            "Actors this process put to sleep (hibernated or evicted) that have not woken since.",
            "actor_class",
        )
        queued = gauge(
            "actor_mailbox_depth", "Events waiting for a turn, all actors.", "actor_class"
        )
        deepest = gauge(
            "actor_mailbox_depth_max", "The longest mailbox of one actor now.", "actor_class"
        )
        sockets = gauge("websockets_open", "WebSockets the actors hold now.", "actor_class")
        frames = CounterMetricFamily(
            f"{PREFIX}_websocket_frames",
            "WebSocket frames through the actors' sockets (in: received, out: sent).",
            labels=("actor_class", "direction"),
        )
        payload = CounterMetricFamily(
            f"{PREFIX}_websocket_bytes",
            "Payload bytes of those frames (UTF-8 for text; WebSocket headers not counted).",
            labels=("actor_class", "direction"),
        )
        commits = CounterMetricFamily(
            f"{PREFIX}_actor_commits",
            "Group commits, by outcome (ok: durable, failed: its writes were lost).",
            labels=("actor_class", "outcome"),
        )
        tallies = {
            "turns": histogram("actor_turn_seconds", "Turns and how long each took."),
            "commit_turns": histogram("actor_commit_turns", "Turns that wrote, per commit."),
            "commit_writes": histogram(
                "actor_commit_writes", "Writes (puts, deletes, SQL), per group commit."
            ),
            "fsync_seconds": histogram(
                "actor_fsync_seconds", "How long each commit took to be durable (fsync)."
            ),
            "append_seconds": histogram(
                "replica_append_seconds",
                "With a replicated log: how long each batch's append took until a majority had it.",
            ),
        }
        replicated = {
            "appends_failed": CounterMetricFamily(
                f"{PREFIX}_replica_append_failures",
                "Appends to the replicated log that no majority answered in time.",
                labels=("actor_class",),
            ),
            "epochs_opened": CounterMetricFamily(
                f"{PREFIX}_replica_epochs_opened",
                "Epochs this process opened on the log (activations of a replicated actor).",
                labels=("actor_class",),
            ),
            "fences": CounterMetricFamily(
                f"{PREFIX}_replica_fences",
                "Copies of actors here fenced (a newer epoch elsewhere, or handed back).",
                labels=("actor_class",),
            ),
        }
        runtime = self.runtime
        for namespace in runtime.namespaces if runtime is not None else ():
            name = namespace.actor_class.__name__
            hosts = namespace.hosts()
            depths = [len(host.mailbox) for host in hosts]
            awake.add_metric([name], sum(1 for host in hosts if host.instance is not None))
            asleep.add_metric([name], self.metrics.asleep(name))
            queued.add_metric([name], sum(depths))
            deepest.add_metric([name], max(depths, default=0))
            sockets.add_metric([name], sum(len(host.sockets) for host in hosts))
            traffic = namespace.traffic
            frames.add_metric([name, "in"], traffic.frames_in)
            frames.add_metric([name, "out"], traffic.frames_out)
            payload.add_metric([name, "in"], traffic.bytes_in)
            payload.add_metric([name, "out"], traffic.bytes_out)
            activity = namespace.activity
            commits.add_metric([name, "ok"], activity.fsync_seconds.count)
            commits.add_metric([name, "failed"], activity.commits_failed)
            for field, family in tallies.items():
                family.add_metric([name], *buckets(getattr(activity, field)))
            for field, counter in replicated.items():
                counter.add_metric([name], getattr(activity, field))
        refused = CounterMetricFamily(
            f"{PREFIX}_http_refused_connections",
            "HTTP requests refused before the app saw them (too many connections from one"
            " address, slow or oversized headers, an unknown Host), by code; this process.",
            labels=("code",),
        )
        for code, count in sorted(self.http_refusals.items()):
            refused.add_metric([code], count)
        yield from (awake, asleep, queued, deepest, sockets, frames, payload, commits)
        yield from (*tallies.values(), *replicated.values(), refused)
