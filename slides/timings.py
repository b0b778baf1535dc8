"""How long each chapter takes, estimated from its length: the numbers in INSTRUCTOR.md.

    .venv/bin/python slides/timings.py

Reading at READING_WORDS_PER_MINUTE (slower than prose: the text explains code), plus
MINUTES_PER_EXERCISE for each exercise, plus the minutes its demos spend running (load tests).
These are the minutes of a room that keeps up; the agendas add breaks and slack on top, and
list what to cut when the room is slower. Adjust the two rates if your room differs.

A short agenda keeps only a chapter's core: its title cell and some of its "## " sections,
timed the same way (CORES).
"""

import json
import math
import re
from pathlib import Path
from typing import Any

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
READING_WORDS_PER_MINUTE = 150
MINUTES_PER_EXERCISE = 8
DEMO_MINUTES = {"07": 2}  # the load tests of chapter 07 run for about two minutes
# Chapter -> (the core's name, its "## " sections, the minutes its demos run). Chapter 07's
# core is the talk's main point: one actor's line (7.1), the knee of a load test (7.3) and
# the scaling line of the reference results.
CORES = {
    "07": (
        "07 · Scaling, the core: one actor's line and the knee",
        ("One actor is one line", "Load testing: where does it break?"),
        2,  # the knee's load test (about 35 s) and the live scaling run (four short clusters)
    )
}


def minutes_of(cells: list[dict[str, Any]], demo_minutes: int) -> tuple[int, int, int]:
    """(words, exercises, minutes) of some cells of a chapter."""
    markdown = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]
    words = sum(len(re.findall(r"\w+", text)) for text in markdown)
    exercises = sum("exercise" in cell.get("metadata", {}).get("tags", []) for cell in cells)
    minutes = math.ceil(words / READING_WORDS_PER_MINUTE) + MINUTES_PER_EXERCISE * exercises
    return words, exercises, minutes + demo_minutes


def cells_of(path: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return cells


def chapter_minutes(path: Path) -> tuple[str, int, int, int]:
    """(title, words, exercises, minutes) of one chapter notebook."""
    cells = cells_of(path)
    title = "".join(cells[0]["source"]).splitlines()[0].lstrip("# ").strip()
    return title, *minutes_of(cells, DEMO_MINUTES.get(path.name[:2], 0))


def section_cells(cells: list[dict[str, Any]], sections: tuple[str, ...]) -> list[dict[str, Any]]:
    """The title cell, and the cells of the named "## " sections (each runs to the next)."""
    kept, keeping = [cells[0]], False
    for cell in cells[1:]:
        heading = (
            re.match(r"## (.+)", "".join(cell["source"]))
            if cell["cell_type"] == "markdown"
            else None
        )
        if heading:
            keeping = heading.group(1).strip() in sections
        if keeping:
            kept.append(cell)
    found = {
        match.group(1).strip()
        for cell in kept
        for match in re.finditer(r"^## (.+)$", "".join(cell["source"]), re.M)
    }
    missing = set(sections) - found
    if missing:
        raise ValueError(f"no section {sorted(missing)} in the chapter: update CORES")
    return kept


def table() -> list[tuple[str, int, int, int]]:
    return [chapter_minutes(path) for path in sorted(SOLUTIONS.glob("*.ipynb"))]


def cores() -> list[tuple[str, int, int, int]]:
    """(name, words, exercises, minutes) of each chapter's core."""
    found = []
    for chapter, (name, sections, demo) in sorted(CORES.items()):
        (path,) = SOLUTIONS.glob(f"{chapter}-*.ipynb")
        found.append((name, *minutes_of(section_cells(cells_of(path), sections), demo)))
    return found


def main() -> None:
    print("| chapter | words | exercises | minutes |")
    print("|---|---|---|---|")
    for title, words, exercises, minutes in table() + cores():
        print(f"| {title} | {words} | {exercises} | {minutes} |")


if __name__ == "__main__":
    main()
