"""The deck builds into one page that a headless Chromium can walk with no network, and that
reads from the back row at 1280x720: no slide runs off its box, no text drawn under 20 px
(body, code, captions, the diagrams' labels; speaker notes excluded), nothing under the slide
number or the arrows, every picture drawn at
least at the size it was made for, no title on two lines, no slide of more than 50 words (its
code and a plot's generated caption of settings aside), and the PDF has one page per slide.
Every slide's screenshot is kept in the test's temp folder; UPDATE_SCREENSHOT=1 also rewrites
the committed ones under docs/ (the title and every slide of a measured plot)."""

import functools
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import threading
import xml.etree.ElementTree as ElementTree
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from instructor_kit import build, pdf, timings

from accord_app.settings import PROJECT_DIR

VIEWPORT = {"width": 1280, "height": 720}
MIN_TEXT_PX = 20  # the smallest type the back row of a room reads off a projector
MAX_WORDS = 50  # per slide; code, a plot's caption of settings and speaker notes aside
DOCS = PROJECT_DIR / "docs"
TITLE_PICTURE = DOCS / "slides-title.png"
SCALING_PICTURE = DOCS / "slides-scaling-line.png"
MINUTES = re.compile(r"\((\d+) min")
SVG = "{http://www.w3.org/2000/svg}"

# What one slide shows, measured in the page: every visible text with its drawn font size,
# every element's box, the pictures with their natural and drawn widths, the title's lines.
MEASURE = """() => {
    const slide = Reveal.getCurrentSlide();
    const scale = Reveal.getScale();
    const visible = (element) => {
        for (let e = element; e && e !== document.body; e = e.parentElement) {
            const style = getComputedStyle(e);
            if (style.display === 'none' || style.visibility === 'hidden') return false;
        }
        return true;
    };
    const number = document.querySelector('.slide-number');
    // The slide number and the arrows sit over the slide's corner: nothing may hide under them.
    const chrome = [number, ...document.querySelectorAll('.controls button')]
        .filter((e) => visible(e) && getComputedStyle(e).opacity !== '0')
        .map((e) => e.getBoundingClientRect());
    const texts = [];
    const hidden = [];
    const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!node.textContent.trim() || parent.closest('aside.notes') || !visible(parent)) continue;
        texts.push([node.textContent.trim().slice(0, 40),
                    parseFloat(getComputedStyle(parent).fontSize) * scale]);
        const range = document.createRange();
        range.selectNodeContents(node);
        for (const line of range.getClientRects()) {
            if (chrome.some((c) => line.left < c.right && line.right > c.left
                                   && line.top < c.bottom && line.bottom > c.top)) {
                hidden.push(node.textContent.trim().slice(0, 40));
            }
        }
    }
    for (const img of slide.querySelectorAll('img')) {
        const box = img.getBoundingClientRect();
        if (chrome.some((c) => box.left < c.right && box.right > c.left
                               && box.top < c.bottom && box.bottom > c.top)) {
            hidden.push(img.getAttribute('src'));
        }
    }
    texts.push([number.innerText, parseFloat(getComputedStyle(number).fontSize) * scale]);
    const outside = [];
    for (const element of slide.querySelectorAll('*')) {
        if (element.closest('aside.notes') || !visible(element)) continue;
        const box = element.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        if (box.left < -1 || box.top < -1 || box.right > innerWidth + 1
            || box.bottom > innerHeight + 1
            || element.scrollWidth > element.clientWidth + 1
            // a line box may be a few pixels shorter than its glyphs: no cut below 8 px
            || element.scrollHeight > element.clientHeight + 8) {
            outside.push(`${element.tagName}.${element.className} `
                + `${(element.textContent || element.getAttribute('src') || '').slice(0, 40)}`);
        }
    }
    const title = slide.querySelector('h1, h2');
    const lines = title ? title.getBoundingClientRect().height
        / parseFloat(getComputedStyle(title).lineHeight) : 0;
    const prose = slide.cloneNode(true);
    prose.querySelectorAll('aside, pre, small.setting').forEach((e) => e.remove());
    return {
        title: title ? title.textContent : '',
        titleLines: lines,
        words: prose.textContent.split(/\\s+/).filter((w) => /\\w/.test(w)).length,
        texts: texts,
        outside: outside,
        hidden: hidden,
        images: Array.from(slide.querySelectorAll('img'), (img) => ({
            src: img.getAttribute('src'), natural: img.naturalWidth,
            drawn: img.getBoundingClientRect().width})),
        notes: Reveal.getSlideNotes(slide) || '',
        number: number.innerText.split(/\\s+/).join(''),
    };
}"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build.build(out=tmp_path_factory.mktemp("deck")))


@pytest.fixture
def served(built: Path) -> Iterator[str]:
    """The built deck on a free loopback port, as a USB stick's folder would be served."""
    handler = functools.partial(QuietHandler, directory=str(built.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_every_slide_reads_from_the_back_row_with_no_network(
    browser: Any, served: str, built: Path, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    asked: list[str] = []

    def gate(route: Any) -> None:
        asked.append(route.request.url)
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(served)
    page.wait_for_function("window.Reveal && Reveal.isReady()")
    total = page.evaluate("Reveal.getTotalSlides()")
    assert total == len(deck_slides())
    assert page.evaluate("Reveal.getScale()") == 1, "the deck is laid out for 1280x720"
    kept = {}
    for index in range(total):
        page.evaluate(f"Reveal.slide({index})")
        page.wait_for_function(
            "Array.from(Reveal.getCurrentSlide().querySelectorAll('img'))"
            ".every(img => img.complete)"
        )
        slide = page.evaluate(MEASURE)
        where = f"slide {index + 1} ({slide['title']})"
        shot = tmp_path / f"slide-{index + 1:02d}.png"
        page.screenshot(path=str(shot))
        assert slide["title"], f"{where} has no title"
        assert slide["titleLines"] < 1.5, f"{where}: the title wraps"
        assert slide["number"] == f"{index + 1}/{total}", where
        assert len(slide["notes"].split()) >= 10, f"{where} has no speaker notes"
        assert slide["outside"] == [], f"{where} runs off its box: {slide['outside']}"
        assert slide["hidden"] == [], f"{where}: under the slide number: {slide['hidden']}"
        small = [(text, size) for text, size in slide["texts"] if size < MIN_TEXT_PX]
        assert small == [], f"{where}: text under {MIN_TEXT_PX} px"
        assert slide["words"] <= MAX_WORDS, f"{where} has {slide['words']} words"
        for image in slide["images"]:
            assert image["natural"] > 0, f"{where}: {image['src']} did not load"
            drawn, needed = image["drawn"], intended_width(built.parent / image["src"])
            assert drawn >= needed - 1, f"{where}: {image['src']} {drawn:.0f} px < {needed}"
        figures = [Path(i["src"]).stem for i in slide["images"] if "/reference/" in i["src"]]
        if index == 0:
            kept[TITLE_PICTURE] = shot
        for figure in figures:
            kept[DOCS / f"slides-{figure.replace('_', '-')}.png"] = shot
    print("screenshots:", tmp_path)
    assert problems == [], problems
    assert [url for url in asked if urlsplit(url).hostname != "127.0.0.1"] == []
    assert len(kept) >= 4, "the title and the slides of measured plots"
    assert SCALING_PICTURE in kept, "the README's picture of the scaling slide"
    if os.environ.get("UPDATE_SCREENSHOT"):
        for committed, shot in kept.items():
            shutil.copy(shot, committed)
    for committed in kept:
        assert png_size(committed) == (VIEWPORT["width"], VIEWPORT["height"]), committed
    context.close()


def intended_width(picture: Path) -> float:
    """The narrowest a picture may be drawn with its text still >= MIN_TEXT_PX.

    A diagram (SVG): its smallest label, in its own units, scaled to the drawn width. A plot
    (PNG from matplotlib): its text is at least 20 pt, so it must be drawn at least at one CSS
    pixel per point, its width in points (pixels x 72 / dpi). A picture without a dpi: its
    own pixels."""
    if picture.suffix == ".svg":
        root = ElementTree.parse(picture).getroot()
        width = float(root.attrib["viewBox"].split()[2])
        return width * MIN_TEXT_PX / smallest_label(root)
    dpi = png_dpi(picture)
    natural = png_size(picture)[0]
    return natural * 72 / dpi if dpi else natural


def smallest_label(element: ElementTree.Element, inherited: float = 16.0) -> float:
    """The smallest font-size of any text in an SVG (attributes, as the deck's diagrams set
    them; 16, the browser's default, where none is set)."""
    size = float(element.attrib.get("font-size", inherited))
    sizes = [size] if element.tag in (f"{SVG}text", f"{SVG}tspan") else []
    sizes += [smallest_label(child, size) for child in element]
    return min(sizes, default=float("inf"))


def png_size(picture: Path) -> tuple[int, int]:
    header = picture.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{picture} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def png_dpi(picture: Path) -> float:
    """The dots per inch in a PNG's pHYs chunk (matplotlib writes it), or 0."""
    data = picture.read_bytes()
    at = 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"pHYs":
            per_metre, _, unit = struct.unpack(">IIB", data[at + 8 : at + 17])
            return per_metre * 0.0254 if unit == 1 else 0.0
        if kind == b"IDAT":
            return 0.0
        at += 12 + length
    return 0.0


def test_diagram_labels_stay_inside_their_pictures(browser: Any) -> None:
    """A label cut at a diagram's edge (as a caption was) is not seen by the page's checks:
    the SVG is a picture there. Each diagram is opened on its own and its texts measured."""
    page = browser.new_page(viewport=VIEWPORT)
    for diagram in sorted(build.DIAGRAMS.glob("*.svg")):
        page.goto(diagram.as_uri())
        cut = page.evaluate(
            """() => {
                const svg = document.documentElement;
                const [x, y, w, h] = svg.getAttribute('viewBox').split(/\\s+/).map(Number);
                return Array.from(svg.querySelectorAll('text'), (text) => {
                    const box = text.getBBox();
                    return box.x < x - 1 || box.y < y - 1 || box.x + box.width > x + w + 1
                        || box.y + box.height > y + h + 1 ? text.textContent : null;
                }).filter(Boolean);
            }"""
        )
        assert cut == [], f"{diagram.name}: {cut} run past the picture's edge"
    page.close()


def test_the_pdf_has_one_page_per_slide(built: Path, tmp_path: Path) -> None:
    printed = pdf.print_pdf(built, tmp_path / "deck.pdf").read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![a-z])", printed))
    assert pages == len(deck_slides()), "a slide longer than a page goes on over the next one"


def test_the_readme_shows_the_title_and_the_scaling_slides() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    for heading, picture in [("For instructors", TITLE_PICTURE), ("Load tests", SCALING_PICTURE)]:
        section = re.split(rf"^#+ {heading}[^\n]*\n", readme, maxsplit=1, flags=re.M)[1]
        section = re.split(r"^#+ ", section, maxsplit=1, flags=re.M)[0]
        assert f"]({picture.relative_to(PROJECT_DIR)})" in section, heading
        assert png_size(picture) == (VIEWPORT["width"], VIEWPORT["height"])


def test_speaker_notes_say_how_long() -> None:
    for found in deck_slides():
        assert MINUTES.search(" ".join(found["notes"])), (
            f"no '(N min' in the notes of {title_of(found)}"
        )


def test_lab_slides_give_each_chapter_its_measured_time() -> None:
    minutes = {title.split(" ")[0]: total for title, _, _, total in timings.table()}
    labs = {title_of(found).split(" ")[1]: found for found in deck_slides() if lab_slide(found)}
    assert sorted(labs) == sorted(minutes), "one lab slide per chapter"
    for number, found in labs.items():
        assert f"about {minutes[number]} minutes" in " ".join(found["body"]), number
        assert MINUTES.findall(" ".join(found["notes"])) == [str(minutes[number])], number


def test_the_agenda_slide_names_every_chapter() -> None:
    chapters = sorted(title.split(" ")[0] for title, _, _, _ in timings.table())
    today = next(found for found in deck_slides() if title_of(found) == "Today")
    assert f"chapters {chapters[0]} to {chapters[-1]}" in " ".join(today["body"])


def test_the_deck_is_one_line_of_slides_and_promises_nothing_to_come() -> None:
    """RISE's right arrow walks the deck in order only with no vertical sub-slides; a slide
    for attendees shows what exists."""
    cells = json.loads(build.DECK.read_text())["cells"]
    assert [build.slide_type(cell) for cell in cells].count("subslide") == 0
    for found in deck_slides():
        assert "to come" not in " ".join(found["body"]), title_of(found)


def test_each_live_cell_has_a_slide_and_its_recorded_output() -> None:
    """The demo's plan B: next to each live cell, what it showed when it last ran."""
    cells = json.loads(build.DECK.read_text())["cells"]
    recorded = build.read_recorded()
    code_per_slide: list[int] = []
    for cell in cells:
        if build.slide_type(cell) in ("slide", "subslide"):
            code_per_slide.append(0)
        if cell["cell_type"] == "code":
            code_per_slide[-1] += 1
            shown = recorded["cells"].get(cell["id"], {})
            assert shown.get("text") or shown.get("image"), f"{cell['id']}: run expected.py"
            assert shown["source"] == build.source(cell), f"{cell['id']} changed: run expected.py"
    assert max(code_per_slide) == 1, "one live cell per slide"
    assert set(recorded["cells"]) == {c["id"] for c in cells if c["cell_type"] == "code"}


def test_pictures_in_the_deck_are_committed_measurements() -> None:
    deck = build.DECK.read_text()
    shown = set(re.findall(r'src=\\"([^"\\]+\.png)', deck))
    assert shown, "the deck shows no measured plot"
    recorded = build.read_recorded()["cells"].values()
    shown |= {f"expected/{cell['image']}" for cell in recorded if cell.get("image")}
    committed = subprocess.run(
        ["git", "ls-files", "benchmarks/reference", "slides/expected"], cwd=PROJECT_DIR,
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for src in shown:
        path = (build.SLIDES_DIR / src).resolve().relative_to(PROJECT_DIR)
        assert path.as_posix() in committed, f"{src} is not a committed measurement"


@pytest.mark.parametrize(
    "src",
    [
        "../benchmarks/results/c_scaling.png",  # a local run, not the reference
        "../accord_app/static/favicon.png",
        "https://example.com/plot.png",
        "../benchmarks/reference/missing.png",
        "../accord_app/static/favicon.svg",  # a drawing, but not one of the diagrams
    ],
)
def test_the_build_refuses_any_other_picture(tmp_path: Path, src: str) -> None:
    deck = json.loads(build.DECK.read_text())
    deck["cells"].append(
        {"cell_type": "markdown", "metadata": {}, "source": f'<img src="{src}" alt="">'}
    )
    doctored = tmp_path / "deck.ipynb"  # images are found from slides/, wherever the deck is
    doctored.write_text(json.dumps(deck))
    with pytest.raises(build.DeckError, match=re.escape(src)):
        build.build(deck=doctored, out=tmp_path / "out")


def test_the_smallest_label_of_a_diagram_is_found() -> None:
    """The size check of the diagrams rests on this: a small label deep in a group counts."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50" font-size="30">'
        '<g font-size="28"><text>a</text><g><text font-size="12">b</text></g></g>'
        "<text>c</text></svg>"
    )
    assert smallest_label(ElementTree.fromstring(svg)) == 12


def test_the_dpi_of_a_plot_is_read(tmp_path: Path) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data))

    header = struct.pack(">IIBBBBB", 1920, 1080, 8, 6, 0, 0, 0)
    physical = struct.pack(">IIB", 5906, 5906, 1)  # 150 dpi, in dots per metre
    picture = tmp_path / "plot.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"pHYs", physical))
    assert round(png_dpi(picture)) == 150
    assert round(intended_width(picture)) == 922


def deck_slides() -> list[dict[str, list[str]]]:
    return build.slides_of(json.loads(build.DECK.read_text())["cells"])


def title_of(found: dict[str, list[str]]) -> str:
    match = re.search(r"<h[12][^>]*>(.*?)</h[12]>", " ".join(found["body"]))
    return match[1] if match else ""


def lab_slide(found: dict[str, list[str]]) -> bool:
    return title_of(found).startswith("Lab ")
