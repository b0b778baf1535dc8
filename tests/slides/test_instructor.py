"""The instructor's guide agrees with what it describes: its timings table is what
slides/timings.py measures, each agenda adds up, its talk blocks last as long as the speaker
notes say; the lab has the RISE extension, and the deck's demo cells run headless."""

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from instructor_kit import build, timings
from nbclient import NotebookClient

from accord_app.settings import PROJECT_DIR

GUIDE = PROJECT_DIR / "slides" / "INSTRUCTOR.md"
ROW = re.compile(r"^\| \**(.+?)\** \| \**(\d+)\** \|$", re.M)  # **bold** too
MINUTES = re.compile(r"\((\d+) min")


def agendas() -> dict[str, list[tuple[str, int]]]:
    """{"3 hours": [(block, minutes), ...], ...}, the Total row last."""
    found = {}
    for part in re.split(r"^## Agenda: ", GUIDE.read_text(), flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        table = body.strip().split("\n\n", 1)[0]  # the section opens with its table
        found[name] = [(block, int(minutes)) for block, minutes in ROW.findall(table)]
    return found


def deck_minutes() -> tuple[int, int]:
    """Minutes of the talk before the lab slides, and of the slides after them."""
    slides = build.slides_of(json.loads(build.DECK.read_text())["cells"])
    lab = [index for index, found in enumerate(slides) if "Lab 0" in "".join(found["body"])]

    def minutes(part: list[dict[str, list[str]]]) -> int:
        return sum(int(MINUTES.findall(" ".join(found["notes"]))[0]) for found in part)

    return minutes(slides[: lab[0]]), minutes(slides[lab[-1] + 1 :])


def test_the_timings_table_is_what_timings_py_measures() -> None:
    measured = [f"| {t} | {w} | {e} | {m} |" for t, w, e, m in timings.table()]
    assert measured, "no chapters measured"
    for row in measured:
        assert row in GUIDE.read_text(), f"INSTRUCTOR.md lacks {row}: run slides/timings.py"


def test_each_agenda_adds_up_from_measured_parts() -> None:
    chapters = {title: minutes for title, _, _, minutes in timings.table()}
    talk, closing = deck_minutes()
    found = agendas()
    assert set(found) == {"3 hours", "a full day"}
    limits = {"3 hours": 180, "a full day": 7 * 60}
    for name, rows in found.items():
        *blocks, (total_name, total) = rows
        assert total_name == "Total", name
        assert sum(minutes for _, minutes in blocks) == total, f"the {name} agenda"
        assert total <= limits[name], f"the {name} agenda takes {total} minutes"
        for block, minutes in blocks:
            if block in chapters:
                assert minutes == chapters[block], f"{name}: {block}"
            elif block.startswith("Talk"):
                assert minutes == talk, f"{name}: the talk's notes add up to {talk} minutes"
            elif block.startswith("Demo, recap"):
                assert minutes == closing, f"{name}: the closing slides take {closing} minutes"
            else:
                assert block in {"Setup check", "Break", "Lunch"}, f"{name}: {block!r}?"
    day = {block for block, _ in found["a full day"]}
    assert set(chapters) <= day, "the full day gives every chapter"


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
