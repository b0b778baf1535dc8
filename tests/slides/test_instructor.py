"""The instructor's guide agrees with what it describes: its timings table is what
slides/timings.py measures, each agenda adds up (its clock too) with a 25-30 minute setup
block and slack, its talk blocks (and a slide of its own) last as long as the speaker notes
say, each agenda's cuts name exercises it has, every chapter's questions have an answer key;
the lab has the RISE extension, and the deck's demo cells run headless."""

import json
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from instructor_kit import build, timings
from nbclient import NotebookClient

from accord_app.settings import PROJECT_DIR

GUIDE = PROJECT_DIR / "slides" / "INSTRUCTOR.md"
# | 1:36 | block | minutes |, the Total row in **bold**.
ROW = re.compile(r"^\| (\d+):(\d\d) \| \**(.+?)\** \| \**(\d+)\** \|$", re.M)
MINUTES = re.compile(r"\((\d+) min")
SAVES = re.compile(r"Saves (\d+) min\.")
EXERCISE = re.compile(r"Exercise (\d)\.(\d)")
# What a block that is not a chapter may be.
OTHER_BLOCKS = ("Setup", "Talk", "Demo, recap", "Break", "Lunch", "Slack")
LIMITS = {"3 hours": 3 * 60, "a full day": 8 * 60, "a second morning": 160}


class Agenda(NamedTuple):
    rows: list[tuple[int, str, int]]  # (starts at, in minutes; block; minutes), Total last
    cuts: list[str]  # the items of its "What to cut when behind" list


def agendas() -> dict[str, Agenda]:
    found = {}
    text = GUIDE.read_text()
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        if not heading.startswith("Agenda: "):
            continue
        table = body.strip().split("\n\n", 1)[0]  # the section opens with its table
        rows = [(int(h) * 60 + int(m), block, int(n)) for h, m, block, n in ROW.findall(table)]
        _, _, cuts = body.partition("### What to cut when behind")
        items = re.split(r"^\d+\. ", cuts, flags=re.M)[1:]
        found[heading.removeprefix("Agenda: ")] = Agenda(rows, items)
    return found


def deck_minutes() -> tuple[int, int]:
    """Minutes of the talk before the lab slides, and of the slides after them."""
    slides = build.slides_of(json.loads(build.DECK.read_text())["cells"])
    lab = [index for index, found in enumerate(slides) if "Lab 0" in "".join(found["body"])]

    def minutes(part: list[dict[str, list[str]]]) -> int:
        return sum(int(MINUTES.findall(" ".join(found["notes"]))[0]) for found in part)

    return minutes(slides[: lab[0]]), minutes(slides[lab[-1] + 1 :])


def slide_minutes(title: str) -> int:
    """The minutes a deck slide's speaker notes give it, found by its title."""
    slides = build.slides_of(json.loads(build.DECK.read_text())["cells"])
    found = [s for s in slides if f">{title}</h2>" in "".join(s["body"])]
    assert len(found) == 1, f"no slide titled {title!r} in the deck"
    return int(MINUTES.findall(" ".join(found[0]["notes"]))[0])


def test_the_timings_table_is_what_timings_py_measures() -> None:
    measured = [f"| {t} | {w} | {e} | {m} |" for t, w, e, m in timings.table() + timings.cores()]
    assert len(measured) > len(timings.table()), "no chapter core measured"
    for row in measured:
        assert row in GUIDE.read_text(), f"INSTRUCTOR.md lacks {row}: run slides/timings.py"


def test_each_agenda_adds_up_from_measured_parts() -> None:
    chapters = {title: minutes for title, _, _, minutes in timings.table() + timings.cores()}
    talk, closing = deck_minutes()
    found = agendas()
    assert set(found) == set(LIMITS)
    for name, agenda in found.items():
        *blocks, (end, total_name, total) = agenda.rows
        assert total_name == "Total", name
        assert sum(minutes for _, _, minutes in blocks) == total == end, f"the {name} agenda"
        assert total == LIMITS[name], f"the {name} agenda takes {total} minutes"
        clock = 0
        for starts, block, minutes in blocks:
            assert starts == clock, f"{name}: {block} starts at {clock // 60}:{clock % 60:02d}"
            clock += minutes
            if block in chapters:
                assert minutes == chapters[block], f"{name}: {block}"
            elif block.startswith("Talk"):
                assert minutes == talk, f"{name}: the talk's notes add up to {talk} minutes"
            elif block.startswith("Demo, recap"):
                assert minutes == closing, f"{name}: the closing slides take {closing} minutes"
            elif block.startswith("Slide: "):
                title = block.removeprefix("Slide: ")
                assert minutes == slide_minutes(title), f"{name}: the notes of {title!r}"
            else:
                assert block.startswith(OTHER_BLOCKS), f"{name}: {block!r}?"
        setup = [minutes for _, block, minutes in blocks if block.startswith("Setup")]
        assert len(setup) == 1 and 25 <= setup[0] <= 30, f"{name}: a 25-30 minute setup block"
        slack = sum(minutes for _, block, minutes in blocks if block == "Slack")
        working = sum(m for _, block, m in blocks if block not in {"Break", "Lunch", "Slack"})
        assert slack >= 0.05 * working, f"{name}: {slack} minutes of slack for {working} of work"
    days = {
        block for name in ("a full day", "a second morning") for _, block, _ in found[name].rows
    }
    assert {title for title, _, _, _ in timings.table()} <= days, "the days give every chapter"
    short = {block for _, block, _ in found["3 hours"].rows}
    assert any(block.startswith("07") for block in short), "3 hours keep chapter 07's core"


def test_each_agenda_says_what_to_cut_and_it_is_there_to_cut() -> None:
    for name, agenda in agendas().items():
        assert agenda.cuts, f"the {name} agenda has no list of what to cut when behind"
        chapters = {block[:2] for _, block, _ in agenda.rows if block[:2].isdigit()}
        slack = sum(minutes for _, block, minutes in agenda.rows if block == "Slack")
        saved = 0
        for item in agenda.cuts:
            (minutes,) = SAVES.findall(item) or [None]
            assert minutes, f"{name}: a cut that does not say what it saves: {item!r}"
            saved += int(minutes)
            for chapter, number in EXERCISE.findall(item):
                assert f"0{chapter}" in chapters, (
                    f"{name}: exercise {chapter}.{number} is not in it"
                )
                (path,) = timings.SOLUTIONS.glob(f"0{chapter}-*.ipynb")
                tags = [
                    tag
                    for cell in timings.cells_of(path)
                    for tag in cell.get("metadata", {}).get("tags", [])
                ]
                assert f"exercise-{chapter}.{number}" in tags, (
                    f"{name}: no exercise {chapter}.{number}"
                )
        # Half an hour late (a slow setup, a long question) must fit in the slack and the cuts.
        assert slack + saved >= 30, f"{name}: {slack} min of slack and {saved} min of cuts"


def test_every_chapters_questions_have_an_answer_key() -> None:
    text = GUIDE.read_text()
    _, _, keys = text.partition("## Answer keys")
    keys = keys.split("\n## ", 1)[0]
    for title, _, _, _ in timings.table():
        path = next(timings.SOLUTIONS.glob(f"{title[:2]}-*.ipynb"))
        markdown = "\n".join("".join(cell["source"]) for cell in timings.cells_of(path))
        questions = re.split(r"^## Questions.*$", markdown, flags=re.M)[-1].split("Next:")[0]
        asked = len(re.findall(r"^\d+\. ", questions, re.M))
        assert asked, f"chapter {title[:2]} asks no numbered questions"
        _, _, section = keys.partition(f"**{title}**")
        assert section, f"no answer key for {title}"
        answered = re.findall(r"^\d+\. ", section.split("\n**", 1)[0], re.M)
        assert len(answered) == asked, f"{title}: {asked} questions, {len(answered)} answers"


def test_the_lab_has_the_rise_extension() -> None:
    jupyter = PROJECT_DIR / ".venv" / "bin" / "jupyter"
    listed = subprocess.run(
        [str(jupyter), "labextension", "list"], capture_output=True, text=True, check=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # colours
    assert re.search(r"jupyterlab-rise v[\d.]+ enabled\b.*OK", text), text


@pytest.mark.notebooks
@pytest.mark.usefixtures("kernel_temp_folder")
def test_the_decks_demo_cells_run_headless(tmp_path: Path) -> None:
    notebook = nbformat.reads(build.DECK.read_text(encoding="utf-8"), as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]
    assert outputs and all(outputs), "a demo cell showed nothing"
    assert any("image/png" in out.get("data", {}) for cell in outputs for out in cell)
