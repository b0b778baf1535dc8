"""The deck builds into one page that a headless Chromium can walk with no network: every
slide shows, every image loads, every slide has speaker notes, and nothing is asked of another
machine. The title and the scaling slides are saved as screenshots in the test's temp folder;
UPDATE_SCREENSHOT=1 also rewrites the README's picture of the title slide."""

import functools
import http.server
import json
import os
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from instructor_kit import build, pdf, timings

from accord_app.settings import PROJECT_DIR

VIEWPORT = {"width": 1280, "height": 720}
TITLE_PICTURE = PROJECT_DIR / "docs" / "slides-title.png"
MINUTES = re.compile(r"\((\d+) min")


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


def test_every_slide_shows_with_its_images_and_notes_and_no_network(
    browser: Any, served: str, tmp_path: Path
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
    assert total == len(build.slides_of(json.loads(build.DECK.read_text())["cells"]))
    screenshots = []
    for index in range(total):
        page.evaluate(f"Reveal.slide({index})")
        page.wait_for_function(
            "Array.from(Reveal.getCurrentSlide().querySelectorAll('img'))"
            ".every(img => img.complete)"
        )
        slide = page.evaluate(
            """() => {
                const slide = Reveal.getCurrentSlide();
                return {
                    title: (slide.querySelector('h1, h2') || {}).textContent || '',
                    images: Array.from(slide.querySelectorAll('img'),
                                       img => [img.getAttribute('src'), img.naturalWidth]),
                    notes: Reveal.getSlideNotes(slide) || '',
                    number: document.querySelector('.slide-number').innerText
                        .split(/\\s+/).join(''),
                };
            }"""
        )
        where = f"slide {index + 1} ({slide['title']})"
        assert slide["title"], f"{where} has no title"
        assert slide["number"] == f"{index + 1}/{total}", where
        assert len(slide["notes"].split()) >= 10, f"{where} has no speaker notes"
        for src, width in slide["images"]:
            assert width > 0, f"{where}: {src} did not load"
        plots = [src for src, _ in slide["images"] if src.endswith(".png")]
        if index == 0 or plots:
            shot = tmp_path / f"slide-{index + 1:02d}.png"
            page.screenshot(path=str(shot))
            screenshots.append(shot)
            if index == 0 and os.environ.get("UPDATE_SCREENSHOT"):
                shutil.copy(shot, TITLE_PICTURE)
    print("screenshots:", *screenshots, sep="\n  ")
    assert problems == [], problems
    assert [url for url in asked if urlsplit(url).hostname != "127.0.0.1"] == []
    assert len(screenshots) >= 3, "the title and at least two slides of measured plots"
    context.close()


def test_the_pdf_has_every_slide(built: Path, tmp_path: Path) -> None:
    printed = pdf.print_pdf(built, tmp_path / "deck.pdf").read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![a-z])", printed))
    slides = len(build.slides_of(json.loads(build.DECK.read_text())["cells"]))
    # A slide longer than a page goes on over the next one, as in a browser's Print dialog.
    assert slides <= pages <= slides + 3, (pages, slides)


def test_the_readme_shows_the_title_slide() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("## For instructors\n", 1)[1].split("\n## ", 1)[0]
    assert f"]({TITLE_PICTURE.relative_to(PROJECT_DIR)})" in section
    header = TITLE_PICTURE.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert struct.unpack(">II", header[16:24]) == (VIEWPORT["width"], VIEWPORT["height"])


def test_speaker_notes_say_how_long() -> None:
    for found in build.slides_of(json.loads(build.DECK.read_text())["cells"]):
        assert MINUTES.search(" ".join(found["notes"])), (
            f"no '(N min' in the notes of {title_of(found)}"
        )


def test_lab_slides_give_each_chapter_its_measured_time() -> None:
    minutes = {title.split(" ")[0]: total for title, _, _, total in timings.table()}
    slides = build.slides_of(json.loads(build.DECK.read_text())["cells"])
    labs = {title_of(found).split(" ")[1]: found for found in slides if lab_slide(found)}
    assert sorted(labs) == sorted(minutes), "one lab slide per chapter"
    for number, found in labs.items():
        assert f"about {minutes[number]} minutes" in " ".join(found["body"]), number


def test_plots_in_the_deck_are_committed_reference_results() -> None:
    deck = build.DECK.read_text()
    shown = set(re.findall(r'src=\\"([^"\\]+\.png)', deck))
    assert shown, "the deck shows no measured plot"
    committed = subprocess.run(
        ["git", "ls-files", "benchmarks/reference"], cwd=PROJECT_DIR, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    for src in shown:
        path = (build.SLIDES_DIR / src).resolve().relative_to(PROJECT_DIR)
        assert path.as_posix() in committed, f"{src} is not a committed reference result"


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


def title_of(found: dict[str, list[str]]) -> str:
    match = re.search(r"<h[12][^>]*>(.*?)</h[12]>", " ".join(found["body"]))
    return match[1] if match else ""


def lab_slide(found: dict[str, list[str]]) -> bool:
    return title_of(found).startswith("Lab ")
