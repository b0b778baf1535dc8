"""The load tests' plots, drawn by the same code for the deck, the benchmark's report and
chapter 07.

Every figure is one panel, 16:9, sized for a projector: 12.8 x 7.2 inches with 20 pt text is
20 / 72 x 1280 / 12.8 = ~28 px per glyph when the picture is shown 1280 px wide. The
`*_figure()` functions make such a figure in one call; the `plot_*()` functions draw on an
Axes they are given. Sharding modes keep one colour and one marker everywhere.
"""

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

# Figures are built directly, without pyplot: nothing here needs (or changes) a display
# backend; a notebook shows a returned Figure, a script saves it with save().
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from accord_app.lab.loadtest import Step

# One colour and one marker per sharding mode, everywhere (colour-blind safe: Okabe-Ito; the
# marker tells them apart on a washed-out projector too).
MODE_COLOURS = {"global": "#D55E00", "server": "#009E73", "channel": "#0072B2"}
MODE_MARKERS = {"global": "s", "server": "^", "channel": "o"}
OTHER_COLOURS = ["#CC79A7", "#E69F00", "#56B4E9", "#000000"]
GUIDE_COLOUR = "#555555"  # the "keeps up" diagonal, the ideal line, the limit

SIZE_INCHES = (12.8, 7.2)  # 16:9
SCREEN_DPI = 100  # 1280 x 720 in a notebook
SAVE_DPI = 150  # 1920 x 1080 in a file: sharp when a slide scales it
TEXT_PT = 20.0  # ticks, legends, labels on the plot
LABEL_PT = 22.0  # axis labels
TITLE_PT = 24.0


def mode_of(label: str) -> str | None:
    return next((mode for mode in MODE_COLOURS if label.startswith(mode)), None)


def colour(label: str, index: int = 0) -> str:
    mode = mode_of(label)
    return MODE_COLOURS[mode] if mode else OTHER_COLOURS[index % len(OTHER_COLOURS)]


def marker(label: str) -> str:
    mode = mode_of(label)
    return MODE_MARKERS[mode] if mode else "D"


class ShownFigure(Figure):
    """A Figure that Jupyter shows as a picture when it is a cell's value. Jupyter's own
    picture of a figure is set up by pyplot; a Figure made without it would show as text."""

    def _repr_png_(self) -> bytes:
        picture = io.BytesIO()
        self.savefig(picture, format="png")
        return picture.getvalue()


def figure(title: str = "") -> tuple[Figure, list[Axes]]:
    """A slide-sized figure of one panel in the kit's style: (the figure, [its axes])."""
    fig = ShownFigure(figsize=SIZE_INCHES, dpi=SCREEN_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, which="major", alpha=0.35)
    ax.tick_params(labelsize=TEXT_PT, length=6)
    ax.xaxis.label.set_fontsize(LABEL_PT)
    ax.yaxis.label.set_fontsize(LABEL_PT)
    ax.title.set_fontsize(TITLE_PT)
    ax.set_title(title)
    return fig, [ax]


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=SAVE_DPI)


def plain(value: float) -> str:
    """1000 as "1,000" and 0.5 as "0.5": never 10^3 or 2x10^1."""
    return f"{value:,.0f}" if value >= 1 and value == round(value) else f"{value:g}"


def plain_axis(axis: Axis) -> None:
    """Plain numbers on a linear axis (no offset, no scientific notation)."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: plain(value)))


def log_axis(ax: Axes, which: str, low: float, high: float) -> None:
    """Axis `which` ("x" or "y") made logarithmic over [low, high], labelled with plain
    numbers of a 1-2-5 series (denser when the range is narrow): 10, 20, 50, 100, ...
    instead of 10^1 and 2x10^1."""
    if which == "x":
        ax.set_xscale("log")
        ax.set_xlim(low, high)
    else:
        ax.set_yscale("log")
        ax.set_ylim(low, high)
    axis = ax.xaxis if which == "x" else ax.yaxis
    for mantissas in ((1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [
            m * 10.0**power
            for power in range(-3, 7)
            for m in mantissas
            if low <= m * 10.0**power <= high
        ]
        if len(ticks) >= 3:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: plain(value)))
    axis.set_minor_formatter(NullFormatter())


def padded(values: Iterable[float], factor: float = 1.25) -> tuple[float, float]:
    """A log axis's range around the values, with room for markers."""
    positive = [value for value in values if value > 0]
    return min(positive) / factor, max(positive) * factor


def legend(ax: Axes, location: Literal["best", "upper left"] = "best") -> None:
    ax.legend(fontsize=TEXT_PT, loc=location, framealpha=0.92)


def limit_line(ax: Axes, limit_ms: float, label_at: float = 0.5) -> None:
    """The latency limit, drawn and labelled on the plot (not only in the legend), its name
    at `label_at` of the width: the middle, where neither a line that climbs at the left (one
    actor) nor one that climbs at the right (many) usually is."""
    ax.axhline(limit_ms, color=GUIDE_COLOUR, linestyle="--", linewidth=2)
    ax.annotate(
        f"{limit_ms:g} ms limit",
        xy=(label_at, limit_ms),
        xycoords=("axes fraction", "data"),
        xytext=(0, 6),
        textcoords="offset points",
        fontsize=TEXT_PT,
        color=GUIDE_COLOUR,
        ha="center",
        va="bottom",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
    )


def by_offered(steps: Sequence[Step]) -> list[Step]:
    """Steps in order of offered load. A search visits loads out of order and tries a
    doubtful one twice: a load counts as its last try, as in sustained_throughput()."""
    last_try = {round(step.offered, 6): step for step in steps}
    return [last_try[offered] for offered in sorted(last_try)]


def line(ax: Axes, label: str, index: int, xs: Sequence[float], ys: Sequence[float]) -> None:
    ax.plot(
        xs,
        ys,
        linestyle="-",
        linewidth=3,
        marker=marker(label),
        markersize=11,
        color=colour(label, index),
        label=label,
    )


def plot_throughput(
    ax: Axes, series: Mapping[str, Sequence[Step]], delivered: bool = False
) -> None:
    """Acked (or delivered) messages per second against the offered load, one line each,
    on log axes. The diagonal is "keeps up": a line that bends away from it has hit its
    ceiling."""
    values: list[float] = []
    for index, (label, steps) in enumerate(series.items()):
        ordered = by_offered(steps)
        offered = [step.offered for step in ordered]
        done = [step.delivered if delivered else step.acked for step in ordered]
        line(ax, label, index, offered, done)
        values += offered + done
    low, high = padded(values)
    ax.plot([low, high], [low, high], ":", linewidth=2.5, color=GUIDE_COLOUR, label="keeps up")
    log_axis(ax, "x", low, high)
    log_axis(ax, "y", low, high)
    ax.set_xlabel("offered load (messages/s)")
    ax.set_ylabel(("delivered" if delivered else "acked") + " (messages/s)")
    legend(ax, "upper left")


def plot_latency(ax: Axes, series: Mapping[str, Sequence[Step]], limit_ms: float = 0) -> None:
    """send→ack p99 against the offered load, on log axes: flat while the actor keeps up,
    then the hockey stick of a queue that only grows."""
    offered_all: list[float] = []
    latencies: list[float] = [limit_ms] if limit_ms else []
    for index, (label, steps) in enumerate(series.items()):
        points = [
            (step.offered, step.ack.p99_ms)
            for step in by_offered(steps)
            if step.ack.p99_ms is not None
        ]
        line(ax, label, index, [x for x, _ in points], [y for _, y in points])
        offered_all += [x for x, _ in points]
        latencies += [y for _, y in points]
    if limit_ms:
        limit_line(ax, limit_ms)
    log_axis(ax, "x", *padded(offered_all, 1.1))
    log_axis(ax, "y", *padded(latencies, 1.5))
    ax.set_xlabel("offered load (messages/s)")
    ax.set_ylabel("send→ack p99 (ms)")
    legend(ax)  # where it hides no point: a climbing line can take any corner


def plot_scaling(ax: Axes, sustained: Mapping[str, Mapping[int, float]], ideal: str = "") -> None:
    """Sustained throughput against the number of workers, one line per mode, on linear
    axes (a straight line is linear scaling); with `ideal` (a mode), the line K x its
    one-worker figure."""
    workers = sorted({k for points in sustained.values() for k in points})
    for index, (mode, points) in enumerate(sustained.items()):
        ks = sorted(points)
        line(ax, mode, index, ks, [points[k] for k in ks])
    if ideal in sustained and 1 in sustained[ideal]:
        base = sustained[ideal][1]
        ax.plot(
            workers,
            [base * k for k in workers],
            ":",
            linewidth=2.5,
            color=GUIDE_COLOUR,
            label=f"ideal: K x {ideal} at K=1",
        )
    ax.set_xticks(workers)
    plain_axis(ax.xaxis)
    plain_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("workers (K)")
    ax.set_ylabel("sustained throughput (messages/s)")
    legend(ax, "upper left")


def plot_activity(
    ax: Axes, latencies: Mapping[str, Mapping[int, tuple[float, float]]], measure: str = "p99"
) -> None:
    """The activity endpoint's slow end against the channels in the server, per mode (log
    axes). `latencies` is {mode: {channels: (median, slow end)}}; `measure` names the slow
    end (a p99, or the slowest of a few requests)."""
    sizes: list[float] = []
    values: list[float] = []
    for index, (mode, points) in enumerate(latencies.items()):
        ordered = sorted(points)
        line(ax, mode, index, ordered, [points[n][1] for n in ordered])
        sizes += ordered
        values += [points[n][1] for n in ordered]
    log_axis(ax, "x", *padded(sizes, 1.4))
    log_axis(ax, "y", *padded(values, 1.5))
    ax.set_xlabel("channels in the server")
    ax.set_ylabel(f"GET /activity {measure} (ms)")
    legend(ax)


def plot_isolation(ax: Axes, p99s: Mapping[str, tuple[float, float]], limit_ms: float = 0) -> None:
    """Quiet channels' send→ack p99, alone and beside a hot channel: one bar per mode, in
    the mode's colour, for each situation, with its value written on it."""
    modes = list(p99s)
    width = 0.8 / len(modes)
    values = [limit_ms] if limit_ms else []
    for index, mode in enumerate(modes):
        offset = (index - (len(modes) - 1) / 2) * width
        heights = list(p99s[mode])
        bars = ax.bar(
            [situation + offset for situation in (0, 1)],
            heights,
            width * 0.92,
            color=colour(mode, index),
            label=mode,
        )
        ax.bar_label(bars, [f"{h:,.0f} ms" for h in heights], fontsize=TEXT_PT, padding=4)
        values += heights
    if limit_ms:
        limit_line(ax, limit_ms, label_at=0.25)  # above the first group: no bar there is tall
    low, high = min(values) / 3, max(values) * 3  # room for the values above the bars
    log_axis(ax, "y", low, high)
    ax.set_xticks([0, 1], ["quiet channels alone", "beside a hot channel"])
    ax.set_ylabel("quiet channels' send→ack p99 (ms)")
    legend(ax, "upper left")


# -- one figure per call ---------------------------------------------------------------------------


def throughput_figure(
    series: Mapping[str, Sequence[Step]], delivered: bool = False, title: str = ""
) -> Figure:
    fig, [ax] = figure(title=title)
    plot_throughput(ax, series, delivered)
    return fig


def latency_figure(
    series: Mapping[str, Sequence[Step]], limit_ms: float = 0, title: str = ""
) -> Figure:
    fig, [ax] = figure(title=title)
    plot_latency(ax, series, limit_ms)
    return fig


def scaling_figure(
    sustained: Mapping[str, Mapping[int, float]], ideal: str = "", title: str = ""
) -> Figure:
    fig, [ax] = figure(title=title)
    plot_scaling(ax, sustained, ideal)
    return fig


def activity_figure(
    latencies: Mapping[str, Mapping[int, tuple[float, float]]],
    measure: str = "p99",
    title: str = "",
) -> Figure:
    fig, [ax] = figure(title=title)
    plot_activity(ax, latencies, measure)
    return fig


def isolation_figure(
    p99s: Mapping[str, tuple[float, float]], limit_ms: float = 0, title: str = ""
) -> Figure:
    fig, [ax] = figure(title=title)
    plot_isolation(ax, p99s, limit_ms)
    return fig
