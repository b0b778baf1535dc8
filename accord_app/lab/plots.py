"""The load tests' plots, drawn the same way in chapter 07 and in the benchmark's report.

Each function draws on a matplotlib Axes it is given, so a notebook can place several side by
side; `figure()` makes one with the kit's style (large type, readable on a projector).
"""

import io
from collections.abc import Mapping, Sequence

# Figures are built directly, without pyplot: nothing here needs (or changes) a display
# backend; a notebook shows a returned Figure, a script saves it with fig.savefig().
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from accord_app.lab.loadtest import Step

# One colour per sharding mode, everywhere (colour-blind safe: Okabe-Ito).
MODE_COLOURS = {"global": "#D55E00", "server": "#E69F00", "channel": "#0072B2"}
OTHER_COLOURS = ["#009E73", "#CC79A7", "#56B4E9", "#000000"]


def colour(label: str, index: int = 0) -> str:
    for mode, value in MODE_COLOURS.items():
        if label.startswith(mode):
            return value
    return OTHER_COLOURS[index % len(OTHER_COLOURS)]


class ShownFigure(Figure):
    """A Figure that Jupyter shows as a picture when it is a cell's value. Jupyter's own
    picture of a figure is set up by pyplot; a Figure made without it would show as text."""

    def _repr_png_(self) -> bytes:
        picture = io.BytesIO()
        self.savefig(picture, format="png")
        return picture.getvalue()


def figure(columns: int = 1, width: float = 6.4, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    fig = ShownFigure(figsize=(width * columns, height), layout="constrained")
    axes = [fig.add_subplot(1, columns, column + 1) for column in range(columns)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
        for item in [ax.title, ax.xaxis.label, ax.yaxis.label]:
            item.set_fontsize(13)
        ax.tick_params(labelsize=11)
    return fig, axes


def by_offered(steps: Sequence[Step]) -> list[Step]:
    """Steps in order of offered load (a search visits them out of order)."""
    return sorted(steps, key=lambda step: step.offered)


def plot_throughput(
    ax: Axes, series: Mapping[str, Sequence[Step]], delivered: bool = False
) -> None:
    """Acked (or delivered) messages per second against the offered load, one line each.
    The diagonal is "keeps up": a line that bends away from it has hit its ceiling."""
    top = 0.0
    for index, (label, steps) in enumerate(series.items()):
        ordered = by_offered(steps)
        values = [step.delivered if delivered else step.acked for step in ordered]
        offered = [step.offered for step in ordered]
        ax.plot(offered, values, "o-", color=colour(label, index), label=label)
        top = max([top, *offered, *values])
    ax.plot([0, top], [0, top], ":", color="grey", label="keeps up")
    ax.set_xlabel("offered load (messages/s)")
    ax.set_ylabel(("delivered" if delivered else "acked") + " (messages/s)")
    ax.legend(fontsize=10)


def plot_latency(ax: Axes, series: Mapping[str, Sequence[Step]], limit_ms: float = 0) -> None:
    """p50 (dashed) and p99 (solid) of send→ack against the offered load, on a log scale:
    flat while the actor keeps up, then the hockey stick of a queue that only grows."""
    for index, (label, steps) in enumerate(series.items()):
        points = [
            (step.offered, step.ack.p50_ms, step.ack.p99_ms)
            for step in by_offered(steps)
            if step.ack.p50_ms is not None and step.ack.p99_ms is not None
        ]
        offered = [x for x, _, _ in points]
        line_colour = colour(label, index)
        ax.plot(
            offered, [p99 for _, _, p99 in points], "o-", color=line_colour, label=f"{label} p99"
        )
        ax.plot(
            offered,
            [p50 for _, p50, _ in points],
            "o--",
            color=line_colour,
            alpha=0.6,
            label=f"{label} p50",
        )
    if limit_ms:
        ax.axhline(limit_ms, color="grey", linestyle=":", label=f"limit {limit_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (messages/s)")
    ax.set_ylabel("send→ack latency (ms)")
    ax.legend(fontsize=9)


def plot_scaling(ax: Axes, sustained: Mapping[str, Mapping[int, float]], ideal: str = "") -> None:
    """Sustained throughput against the number of workers, one line per mode; with `ideal`
    (a mode), the straight line K x its one-worker figure."""
    for index, (mode, points) in enumerate(sustained.items()):
        workers = sorted(points)
        ax.plot(workers, [points[k] for k in workers], "o-", color=colour(mode, index), label=mode)
    if ideal in sustained and 1 in sustained[ideal]:
        workers = sorted(sustained[ideal])
        base = sustained[ideal][1]
        ax.plot(
            workers,
            [base * k for k in workers],
            ":",
            color="grey",
            label=f"ideal (K x {ideal} at K=1)",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({k for points in sustained.values() for k in points}))
    ax.set_xticklabels([str(k) for k in sorted({k for p in sustained.values() for k in p})])
    ax.set_xlabel("workers (K)")
    ax.set_ylabel("sustained throughput (messages/s)")
    ax.legend(fontsize=10)


def plot_activity(ax: Axes, latencies: Mapping[str, Mapping[int, tuple[float, float]]]) -> None:
    """The activity endpoint's p50 (dashed) and p99 (solid) against channels per server."""
    for index, (mode, points) in enumerate(latencies.items()):
        sizes = sorted(points)
        line_colour = colour(mode, index)
        ax.plot(sizes, [points[n][1] for n in sizes], "o-", color=line_colour, label=f"{mode} p99")
        ax.plot(
            sizes,
            [points[n][0] for n in sizes],
            "o--",
            color=line_colour,
            alpha=0.6,
            label=f"{mode} p50",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("channels in the server")
    ax.set_ylabel("GET /activity latency (ms)")
    ax.legend(fontsize=9)


def plot_isolation(ax: Axes, p99s: Mapping[str, tuple[float, float]]) -> None:
    """Quiet channels' p99 without and with a hot channel beside them, per mode (bars)."""
    modes = list(p99s)
    positions = range(len(modes))
    ax.bar(
        [p - 0.2 for p in positions],
        [p99s[m][0] for m in modes],
        0.4,
        color="#999999",
        label="no hot channel",
    )
    ax.bar(
        [p + 0.2 for p in positions],
        [p99s[m][1] for m in modes],
        0.4,
        color=[colour(m) for m in modes],
        label="with a hot channel",
    )
    ax.set_xticks(list(positions))
    ax.set_xticklabels(modes)
    ax.set_yscale("log")
    ax.set_ylabel("quiet channels' send→ack p99 (ms)")
    ax.legend(fontsize=10)
