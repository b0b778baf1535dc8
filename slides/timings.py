"""How long each chapter takes, estimated from its length: the numbers in INSTRUCTOR.md.

    .venv/bin/python slides/timings.py

Reading at READING_WORDS_PER_MINUTE (slower than prose: the text explains code), plus
MINUTES_PER_EXERCISE for each exercise, plus the minutes its demos spend running (load tests).
Measured against rooms, not a stopwatch: adjust the two rates if your room differs.
"""

import json
import math
import re
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
READING_WORDS_PER_MINUTE = 150
MINUTES_PER_EXERCISE = 8
DEMO_MINUTES = {"07": 2}  # the load tests of chapter 07 run for about two minutes


def chapter_minutes(path: Path) -> tuple[str, int, int, int]:
    """(title, words, exercises, minutes) of one chapter notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    markdown = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]
    words = sum(len(re.findall(r"\w+", text)) for text in markdown)
    exercises = sum("exercise" in cell.get("metadata", {}).get("tags", []) for cell in cells)
    title = markdown[0].splitlines()[0].lstrip("# ").strip()
    minutes = math.ceil(words / READING_WORDS_PER_MINUTE) + MINUTES_PER_EXERCISE * exercises
    return title, words, exercises, minutes + DEMO_MINUTES.get(path.name[:2], 0)


def table() -> list[tuple[str, int, int, int]]:
    return [chapter_minutes(path) for path in sorted(SOLUTIONS.glob("*.ipynb"))]


def main() -> None:
    print("| chapter | words | exercises | minutes |")
    print("|---|---|---|---|")
    for title, words, exercises, minutes in table():
        print(f"| {title} | {words} | {exercises} | {minutes} |")


if __name__ == "__main__":
    main()
