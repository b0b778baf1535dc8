"""`make slides`: the deck (slides/accord.ipynb) as one self-contained reveal.js page.

    .venv/bin/python slides/build.py         # writes slides/build/index.html

The notebook is the one source: this script turns it into slides/build/, which works from a
USB stick with no network: reveal.js itself is vendored in slides/vendor/ (MIT licence, from
npm's reveal.js), code is coloured here by Pygments, and the diagrams and the measured plots
are copied beside the page. JupyterLab's RISE presents the same notebook to run its live
cells on the slides.

The page is laid out for a 1280x720 screen, scaled to fit any other: body text 34 px, code 24
px, captions 20 px (tests/slides/test_deck.py checks that nothing drawn is under 20 px, and
that no slide runs off its box).

How cells become slides (RISE's own metadata, "slideshow.slide_type"): "slide" and "subslide"
both start the next slide (the deck is one line, no vertical stacks), "fragment" appears on the
next click, "notes" are the speaker notes (press S), "skip" is left out, anything else joins
the slide before it. A code cell cannot run in the static page: it is shown beside what it
printed when slides/expected.py last ran it (slides/expected/), the plan B when a live demo
fails. The captions marked `class="setting" data-figure="..."` are filled from
benchmarks/reference/captions.json, so a plot always says how it was measured, in words
generated from the measurement itself (captions.json beside the plots, in that folder and
its replication/ folder); a plot without one does not build.
"""

import html
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import mistune
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, get_lexer_by_name
from pygments.util import ClassNotFound

SLIDES_DIR = Path(__file__).resolve().parent
PROJECT_DIR = SLIDES_DIR.parent
DECK = SLIDES_DIR / "accord.ipynb"
BUILD_DIR = SLIDES_DIR / "build"
REFERENCE = PROJECT_DIR / "benchmarks" / "reference"
DIAGRAMS = SLIDES_DIR / "diagrams"
EXPECTED = SLIDES_DIR / "expected"
RECORDED = EXPECTED / "recorded.json"
PLOT_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')
SETTING = re.compile(r'(<small class="setting" data-figure="([\w.-]+)">)(.*?)(</small>)', re.S)
# Inline colours: the page needs no stylesheet of Pygments', and prints the same.
CODE_FORMAT = HtmlFormatter(noclasses=True, nowrap=True, style="default")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="vendor/reveal.css">
<link rel="stylesheet" href="vendor/theme/white.css">
<style>
  .reveal {{ font-size: 34px; }}
  /* The padding is on an inner box: reveal's print view takes a section's own away. */
  .reveal .slides section {{ height: 720px; padding: 0; text-align: left; }}
  .reveal .slide-body {{ box-sizing: border-box; height: 720px; padding: 24px 48px; }}
  .reveal section.title .slide-body {{ text-align: center; padding-top: 150px; }}
  .reveal h1 {{ font-size: 72px; text-transform: none; }}
  .reveal h2 {{ font-size: 46px; text-transform: none; margin: 0 0 24px; }}
  .reveal h3 {{ font-size: 36px; text-transform: none; }}
  .reveal ul, .reveal ol {{ display: block; margin-left: 1.1em; }}
  .reveal li {{ margin-bottom: 10px; line-height: 1.3; }}
  .reveal small {{ display: block; color: #333; font-size: 20px; line-height: 1.3; }}
  .reveal img {{ border: 0; margin: 0; max-width: 100%; max-height: none; }}
  /* Pictures end above the slide number and the arrows in the bottom corner. */
  .reveal img.diagram {{ display: block; max-height: 530px; width: auto; margin: 0 auto; }}
  .reveal .plot-row {{ display: flex; gap: 16px; align-items: flex-start; }}
  .reveal .plot-row img.plot {{ flex: 0 0 auto; width: 924px; height: auto; }}
  .reveal .plot-row small {{ flex: 1 1 0; line-height: 1.2; }}
  .reveal pre {{ width: 100%; margin: 0 0 20px; box-shadow: none; font-size: 24px; }}
  .reveal pre code {{ max-height: none; line-height: 1.3; padding: 10px 14px;
    background: #f6f6f6; }}
  .reveal code {{ font-size: 0.9em; }}
  .reveal pre code {{ font-size: 24px; }}
  .reveal table {{ font-size: 30px; margin: 0; }}
  .reveal table th, .reveal table td {{ padding: 6px 14px; }}
  .reveal .demo {{ display: flex; gap: 28px; align-items: flex-start; }}
  .reveal .demo .live {{ flex: 0 0 auto; }}
  .reveal .demo .expected {{ flex: 1 1 0; min-width: 0; }}
  .reveal .demo .expected h3 {{ font-size: 22px; margin: 0 0 8px; color: #333; }}
  .reveal .demo .expected pre code {{ font-size: 20px; background: #fffbe8; }}
  /* A picture needs the slide's width: the title and the code share the row above it. */
  .reveal .picture-demo {{ display: grid; grid-template-columns: auto 1fr; column-gap: 32px; }}
  .reveal .picture-demo .demo, .reveal .picture-demo .expected {{ display: contents; }}
  .reveal .picture-demo h2 {{ grid-column: 1; grid-row: 1; }}
  .reveal .picture-demo .expected h3 {{ grid-column: 1; grid-row: 2; }}
  .reveal .picture-demo .live {{ grid-column: 2; grid-row: 1 / span 2; }}
  .reveal .picture-demo .expected img {{ grid-column: 1 / -1; grid-row: 3; height: 530px;
    margin: 0 auto; }}
  .reveal .slide-number, html.reveal-print .reveal .slide-number-pdf {{ font-size: 20px; }}
</style>
</head>
<body>
<div class="reveal"><div class="slides">
{sections}
</div></div>
<script src="vendor/reveal.js"></script>
<script src="vendor/plugin/notes.js"></script>
<script>
  Reveal.initialize({{
    width: 1280,
    height: 720,
    margin: 0,
    center: false,
    hash: true,
    slideNumber: "c/t",
    transition: "none",
    plugins: [RevealNotes],
  }});
</script>
</body>
</html>
"""


class DeckError(ValueError):
    """The deck refers to something that is not there."""


class CodeRenderer(mistune.HTMLRenderer):
    """Markdown's fenced code, coloured as in the live notebook."""

    def block_code(self, code: str, info: str | None = None) -> str:
        try:
            lexer = get_lexer_by_name(info.split()[0]) if info else PythonLexer()
        except ClassNotFound:
            lexer = PythonLexer()
        return f"<pre><code>{highlight(code, lexer, CODE_FORMAT)}</code></pre>\n"


MARKDOWN = mistune.create_markdown(renderer=CodeRenderer(escape=False), plugins=["table"])


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def slide_type(cell: dict[str, Any]) -> str:
    return str(cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-"))


def render_code(cell: dict[str, Any], recorded: dict[str, Any]) -> str:
    """A live cell: its code, and beside it (or under it, for a picture) what it showed when
    it was last recorded."""
    if cell.get("id") not in recorded["cells"]:
        raise DeckError(f"no recorded output for the live cell {cell.get('id')}: run expected.py")
    shown = recorded["cells"][cell["id"]]
    parts = []
    if shown.get("text"):
        parts.append(f"<pre><code>{html.escape(shown['text'].rstrip())}</code></pre>")
    if shown.get("image"):
        parts.append(f'<img src="expected/{shown["image"]}" alt="{html.escape(shown["alt"])}">')
    if not parts:
        parts.append("<p>It prints nothing.</p>")
    code = highlight(source(cell), PythonLexer(), CODE_FORMAT)
    return (
        f'<div class="demo"><div class="live"><pre><code>{code}</code></pre></div>\n'
        f'<div class="expected"><h3>Expected (recorded {recorded["date"]})</h3>'
        f"{''.join(parts)}</div></div>"
    )


def render(cell: dict[str, Any], recorded: dict[str, Any]) -> str:
    if cell["cell_type"] == "code":
        return render_code(cell, recorded)
    rendered = MARKDOWN(source(cell))
    assert isinstance(rendered, str)
    return rendered


def slides_of(
    cells: list[dict[str, Any]], recorded: dict[str, Any] | None = None
) -> list[dict[str, list[str]]]:
    """[{"body": [html, ...], "notes": [html, ...]}], one per slide, in order."""
    recorded = recorded if recorded is not None else read_recorded()
    found: list[dict[str, list[str]]] = []
    for cell in cells:
        kind = slide_type(cell)
        if kind == "skip":
            continue
        if kind in ("slide", "subslide") or not found:
            found.append({"body": [], "notes": []})
        if kind == "notes":
            found[-1]["notes"].append(render(cell, recorded))
        elif kind == "fragment":
            found[-1]["body"].append(f'<div class="fragment">{render(cell, recorded)}</div>')
        else:
            found[-1]["body"].append(render(cell, recorded))
    return found


def read_recorded() -> dict[str, Any]:
    if not RECORDED.exists():
        return {"date": "never", "machine": "", "cells": {}}
    recorded: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    return recorded


def captions() -> dict[str, str]:
    """{figure file: its caption}, written with the figures by the benchmarks:
    benchmarks/scaling.py's in reference/, replication.py's in reference/replication/."""
    found: dict[str, str] = {}
    for path in sorted(REFERENCE.glob("**/captions.json")):
        written = json.loads(path.read_text(encoding="utf-8"))
        found.update({name: entry["caption"] for name, entry in written.items()})
    return found


def caption_of(figure: str, found: dict[str, str]) -> str:
    if figure not in found:
        where = REFERENCE.relative_to(PROJECT_DIR)
        raise DeckError(f"{figure} has no caption in any captions.json under {where}")
    return found[figure]


def copy_image(src: str, build: Path) -> str:
    """Copy a local image beside the page; its new relative address."""
    if re.match(r"^[a-z]+:", src):
        raise DeckError(f"the deck may only show local images, not {src}")
    path = (SLIDES_DIR / src).resolve()
    if not path.is_file():
        raise DeckError(f"the deck shows {src}, which does not exist ({path})")
    # A picture is a measurement or a recording: only the committed reference run's plots and
    # the demo's recorded outputs may be shown, never a picture drawn or edited by hand.
    # Drawings are the SVG diagrams of slides/diagrams.
    allowed = (REFERENCE, EXPECTED) if path.suffix in PLOT_SUFFIXES else (DIAGRAMS,)
    if not any(path.is_relative_to(folder) for folder in allowed):
        names = " or ".join(str(folder.relative_to(PROJECT_DIR)) for folder in allowed)
        raise DeckError(f"the deck shows {src}, which is not in {names}")
    relative = path.relative_to(PROJECT_DIR)
    target = build / "images" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return f"images/{relative.as_posix()}"


def build(deck: Path = DECK, out: Path = BUILD_DIR) -> Path:
    notebook = json.loads(deck.read_text(encoding="utf-8"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(SLIDES_DIR / "vendor", out / "vendor")
    caption = captions()
    sections = []
    for number, found in enumerate(slides_of(notebook["cells"]), start=1):
        body = "\n".join(found["body"])
        body = IMAGE.sub(lambda m: m[1] + copy_image(m[2], out) + m[3], body)
        body = SETTING.sub(lambda m: m[1] + html.escape(caption_of(m[2], caption)) + m[4], body)
        notes = "\n".join(found["notes"])
        aside = f'<aside class="notes">{notes}</aside>' if notes else ""
        kind = ' class="title"' if "<h1>" in body else ""  # the opening and the closing
        if '<div class="demo">' in body and "<img" in body:
            body = f'<div class="picture-demo">{body}</div>'
        sections.append(
            f'<section id="slide-{number}"{kind}>\n<div class="slide-body">\n{body}\n</div>\n'
            f"{aside}\n</section>"
        )
    title = "Accord: global-scale chat from actors"
    page = out / "index.html"
    page.write_text(PAGE.format(title=title, sections="\n".join(sections)), encoding="utf-8")
    return page


def main() -> None:
    try:
        page = build()
    except DeckError as error:
        sys.exit(f"The deck did not build: {error}")
    print(
        f"Wrote {page.relative_to(PROJECT_DIR)}: open it in a browser (S: speaker notes,"
        " ?print-pdf: printable)."
    )


if __name__ == "__main__":
    main()
