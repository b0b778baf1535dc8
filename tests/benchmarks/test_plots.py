"""accord_app/lab/plots.py draws for a projector: one 16:9 panel, text that is at least 20 px
when the picture is shown 1280 px wide, points in order of load, plain numbers on log axes,
one colour per sharding mode, the latency limit drawn and named."""

import re
from collections.abc import Callable

import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from accord_app.lab import plots
from accord_app.lab.loadtest import Step

SHOWN_WIDTH_PX = 1280
SMALLEST_GLYPH_PX = 20


def step(offered: float, acked: float, p99: float) -> Step:
    ack = {"count": 100, "per_second": acked, "p50_ms": p99 / 3, "p99_ms": p99, "failures": {}}
    return Step.of(
        {
            "offered_per_second": offered,
            "sent_per_second": offered,
            "generator_cpu_max": 0.2,
            "names": {"send→ack": ack, "send→delivery": ack},
        }
    )


# As a knee search runs them: out of order, and 80/s tried twice (its last try counts).
SEARCH = [step(40, 40, 30), step(80, 80, 60), step(160, 90, 2400), step(80, 79, 300)]
SERIES = {"global": SEARCH[:2], "server": SEARCH[1:], "channel": SEARCH}
SUSTAINED = {"global": {1: 70.0, 2: 75.0, 4: 72.0, 8: 74.0}, "channel": {1: 60.0, 8: 470.0}}
ACTIVITY = {
    "server": {1: (5.0, 19.0), 1000: (20.0, 25.0)},
    "channel": {1: (15.0, 39.0), 1000: (4100.0, 4400.0)},
}
ISOLATION = {"global": (63.0, 1990.0), "channel": (33.0, 31.0)}

FIGURES: dict[str, Callable[[], Figure]] = {
    "throughput": lambda: plots.throughput_figure(SERIES),
    "latency": lambda: plots.latency_figure(SERIES, limit_ms=250),
    "scaling": lambda: plots.scaling_figure(SUSTAINED, ideal="channel"),
    "activity": lambda: plots.activity_figure(ACTIVITY),
    "isolation": lambda: plots.isolation_figure(ISOLATION, limit_ms=250),
}


def drawn(name: str) -> tuple[Figure, Axes]:
    fig = FIGURES[name]()
    fig.draw_without_rendering()  # lays out the ticks and their labels
    [ax] = fig.axes
    return fig, ax


def texts(fig: Figure) -> list[Text]:
    return [
        text
        for text in fig.findobj(Text)
        if isinstance(text, Text) and text.get_visible() and text.get_text().strip()
    ]


def glyph_px(fig: Figure, text: Text, dpi: float = plots.SAVE_DPI) -> float:
    """A text's size in pixels when the saved picture is shown SHOWN_WIDTH_PX wide: a point
    is 1/72 inch, so the file has fontsize / 72 x dpi pixels per glyph in a picture
    width x dpi pixels wide, scaled by SHOWN_WIDTH_PX over that width."""
    in_file = text.get_fontsize() / 72 * dpi
    return in_file * SHOWN_WIDTH_PX / (fig.get_figwidth() * dpi)


@pytest.mark.parametrize("name", FIGURES)
def test_one_16_9_panel_with_text_readable_at_1280_px(name: str) -> None:
    fig, ax = drawn(name)
    width, height = fig.get_size_inches()
    assert width / height == pytest.approx(16 / 9)
    shown = texts(fig)
    kinds = {
        "tick labels": ax.get_xticklabels() + ax.get_yticklabels(),
        "axis labels": [ax.xaxis.label, ax.yaxis.label],
        "legend": ax.get_legend().get_texts(),
    }
    for kind, found in kinds.items():
        assert any(text in shown for text in found), f"{name}: no {kind} shown"
    small = {text.get_text(): round(glyph_px(fig, text), 1) for text in shown}
    small = {text: px for text, px in small.items() if px < SMALLEST_GLYPH_PX}
    assert not small, f"{name}: text under {SMALLEST_GLYPH_PX} px at {SHOWN_WIDTH_PX} px: {small}"


def test_glyph_size_is_computed_from_points_dpi_and_width() -> None:
    fig, _ = drawn("latency")
    text = Text(text="x", fontsize=10)
    assert glyph_px(fig, text, dpi=100) == pytest.approx(10 / 72 * 100)  # 1280 px file: 13.9
    assert glyph_px(fig, text, dpi=200) == pytest.approx(10 / 72 * 100)  # the same, scaled


@pytest.mark.parametrize("name", ["throughput", "latency"])
def test_points_follow_the_offered_load_and_a_repeated_load_counts_once(name: str) -> None:
    _, ax = drawn(name)
    lines = {line.get_label(): line for line in ax.get_lines()}
    channel = lines["channel"]
    assert list(channel.get_xdata()) == [40, 80, 160]
    last_try = SEARCH[3]
    expected = last_try.acked if name == "throughput" else last_try.ack.p99_ms
    assert list(channel.get_ydata())[1] == expected


def mode_colours(ax: Axes) -> dict[str, set[str]]:
    """{mode: colours of everything labelled with it: lines, bars, legend entries}."""
    found: dict[str, set[str]] = {}
    artists = [*ax.get_lines(), *ax.containers]
    legend = ax.get_legend()
    for artist in artists:
        label = artist.get_label()
        if label in plots.MODE_COLOURS:
            if isinstance(artist, Line2D):
                colours = {to_hex(artist.get_color())}
            else:
                colours = {to_hex(bar.get_facecolor()) for bar in artist}
            found.setdefault(label, set()).update(colours)
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        if text.get_text() in plots.MODE_COLOURS:
            colour = handle.get_color() if isinstance(handle, Line2D) else None
            if isinstance(handle, Rectangle):
                colour = handle.get_facecolor()
            found.setdefault(text.get_text(), set()).add(to_hex(colour))
    return found


@pytest.mark.parametrize("name", FIGURES)
def test_every_mode_has_its_own_colour_in_the_plot_and_the_legend(name: str) -> None:
    _, ax = drawn(name)
    found = mode_colours(ax)
    assert found, f"{name}: no mode drawn"
    for mode, colours in found.items():
        assert colours == {plots.MODE_COLOURS[mode].lower()}, f"{name}: {mode} drawn {colours}"


def test_a_label_that_names_a_mode_takes_its_colour_and_marker() -> None:
    assert plots.colour("channel, one hot channel, K=2") == plots.MODE_COLOURS["channel"]
    assert plots.marker("server") == plots.MODE_MARKERS["server"]
    assert plots.colour("another run", 1) not in plots.MODE_COLOURS.values()


@pytest.mark.parametrize("name", ["throughput", "latency", "activity", "isolation"])
def test_log_axes_are_labelled_with_plain_numbers(name: str) -> None:
    _, ax = drawn(name)
    axes = {"x": ax.xaxis, "y": ax.yaxis}
    logs = {which: axis for which, axis in axes.items() if axis.get_scale() == "log"}
    assert logs, f"{name}: no log axis"
    for which, axis in logs.items():
        low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
        labels = [
            tick.label1.get_text()
            for tick in axis.get_major_ticks()
            if tick.label1.get_visible() and low <= tick.get_loc() <= high
        ]
        labels = [label for label in labels if label]
        assert len(labels) >= 2, f"{name} {which}: {labels}"
        assert all(re.fullmatch(r"[\d,]+(\.\d+)?", label) for label in labels), labels
        minor = [t.label1.get_text() for t in axis.get_minor_ticks() if t.label1.get_text()]
        assert not minor, f"{name} {which}: minor ticks labelled {minor}"


def test_plain_numbers() -> None:
    assert [plots.plain(v) for v in (20, 1000, 0.5, 2.5)] == ["20", "1,000", "0.5", "2.5"]


@pytest.mark.parametrize("name", ["latency", "isolation"])
def test_the_limit_is_drawn_and_named(name: str) -> None:
    fig, ax = drawn(name)
    assert any(list(line.get_ydata()) == [250, 250] for line in ax.get_lines())
    assert "250 ms limit" in [text.get_text() for text in texts(fig)]


def test_the_isolation_bars_carry_their_values() -> None:
    fig, _ = drawn("isolation")
    shown = {text.get_text() for text in texts(fig)}
    assert {"63 ms", "1,990 ms", "33 ms", "31 ms"} <= shown
