"""`make slides`: the deck (slides/accord.ipynb) as one self-contained reveal.js page.

    .venv/bin/python slides/build.py         # writes slides/build/index.html

The notebook is the one source: JupyterLab presents it live with RISE (demo cells run on the
slide), and this script turns it into slides/build/, which works from a USB stick with no
network: reveal.js itself is vendored in slides/vendor/ (MIT licence, from npm's reveal.js),
and the diagrams and the measured plots are copied beside the page.

How cells become slides (RISE's own metadata, "slideshow.slide_type"): "slide" and "subslide"
start a slide, "fragment" appears on the next click, "notes" are the speaker notes (press S),
"skip" is left out, anything else joins the slide before it. A code cell is shown as code:
in the static page it cannot run, so it says where it can. The captions marked
`class="setting" data-experiment="..."` are filled from benchmarks/reference/summary.json, so
a plot always says how it was measured, in words generated from the measurement itself.
"""

import html
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import mistune

SLIDES_DIR = Path(__file__).resolve().parent
PROJECT_DIR = SLIDES_DIR.parent
DECK = SLIDES_DIR / "accord.ipynb"
BUILD_DIR = SLIDES_DIR / "build"
REFERENCE = PROJECT_DIR / "benchmarks" / "reference"
DIAGRAMS = SLIDES_DIR / "diagrams"
PLOT_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')
SETTING = re.compile(r'(<small class="setting" data-experiment="(\w+)">)(.*?)(</small>)', re.S)

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
  .reveal img.wide {{ max-height: 62vh; max-width: 100%; border: 0; }}
  .reveal img.half {{ max-height: 52vh; max-width: 48%; border: 0; }}
  .reveal small {{ display: block; color: #444; font-size: 0.55em; }}
  .reveal pre code {{ font-size: 0.62em; line-height: 1.3; max-height: 60vh; }}
  .reveal .demo-note {{ font-size: 0.5em; color: #555; }}
  .reveal table {{ font-size: 0.75em; }}
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


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def slide_type(cell: dict[str, Any]) -> str:
    return str(cell.get("metadata", {}).get("slideshow", {}).get("slide_type", "-"))


def render(cell: dict[str, Any]) -> str:
    if cell["cell_type"] == "code":
        code = html.escape(source(cell))
        return (
            f'<pre><code class="language-python">{code}</code></pre>\n'
            '<p class="demo-note">A live demo: run it in JupyterLab (<code>make lab</code>,'
            " slides/accord.ipynb, RISE).</p>"
        )
    rendered = mistune.html(source(cell))
    assert isinstance(rendered, str)
    return rendered


def slides_of(cells: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    """[{"body": [html, ...], "notes": [html, ...]}], one per slide, in order."""
    found: list[dict[str, list[str]]] = []
    for cell in cells:
        kind = slide_type(cell)
        if kind == "skip":
            continue
        if kind in ("slide", "subslide") or not found:
            found.append({"body": [], "notes": []})
        if kind == "notes":
            found[-1]["notes"].append(render(cell))
        elif kind == "fragment":
            found[-1]["body"].append(f'<div class="fragment">{render(cell)}</div>')
        else:
            found[-1]["body"].append(render(cell))
    return found


def settings(summary: dict[str, Any]) -> dict[str, str]:
    """One sentence per experiment of the reference run: how its plots were measured."""
    machine = summary["machine"]
    where = (
        f"{machine['cpu']}, {machine['cores']} cores, {summary['started'][:10]}"
        f" (benchmarks/reference)"
    )
    found = {}
    for run in summary["loads"]:
        if run["experiment"] in found:
            continue
        cost = f"{run['cost_ms']:g} ms {run['kind']} cost" if run["cost_ms"] else "no extra cost"
        found[run["experiment"]] = (
            f"Measured by benchmarks/scaling.py: {cost} per message, {run['channels']}"
            f" channels, {run['members']} members each, send→ack p99 limit"
            f" {summary['p99_limit_ms']:g} ms; {where}."
        )
    return found


def copy_image(src: str, build: Path) -> str:
    """Copy a local image beside the page; its new relative address."""
    if re.match(r"^[a-z]+:", src):
        raise DeckError(f"the deck may only show local images, not {src}")
    path = (SLIDES_DIR / src).resolve()
    if not path.is_file():
        raise DeckError(f"the deck shows {src}, which does not exist ({path})")
    # A plot is a measurement: only the committed reference run's files may be shown, never
    # a picture drawn or edited by hand. Drawings are the SVG diagrams of slides/diagrams.
    allowed = REFERENCE if path.suffix in PLOT_SUFFIXES else DIAGRAMS
    if not path.is_relative_to(allowed):
        raise DeckError(f"the deck shows {src}, which is not in {allowed.relative_to(PROJECT_DIR)}")
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
    summary_path = REFERENCE / "summary.json"
    setting = settings(json.loads(summary_path.read_text())) if summary_path.exists() else {}
    sections = []
    for number, found in enumerate(slides_of(notebook["cells"]), start=1):
        body = "\n".join(found["body"])
        body = IMAGE.sub(lambda m: m[1] + copy_image(m[2], out) + m[3], body)
        body = SETTING.sub(lambda m: m[1] + html.escape(setting.get(m[2], m[3])) + m[4], body)
        notes = "\n".join(found["notes"])
        aside = f'<aside class="notes">{notes}</aside>' if notes else ""
        sections.append(f'<section id="slide-{number}">\n{body}\n{aside}\n</section>')
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
