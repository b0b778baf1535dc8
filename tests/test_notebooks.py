"""The chapters run: attendee copies with every check failing (the checks really look at the
attendee's code), and the copies are in sync. The solutions run end to end, every check
passing, in tests/test_checks_bite.py, which then tries wrong answers in the same kernel."""

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from accord_app.lab import attendee

SOLUTIONS = sorted(attendee.SOLUTIONS_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120

pytestmark = pytest.mark.notebooks


def tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def execute_to_the_last_check(path: Path) -> Any:
    """Run every cell up to the last self-check, on past errors (a failed check stops nothing
    here), then the last cell, which stops what the chapter started. The demos after the last
    check, and the cells tagged "demo" before it, run in the solution's run
    (tests/test_checks_bite.py); here they would only spend minutes on load tests that prove
    nothing about the checks."""
    notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(attendee.NOTEBOOKS_DIR)}},
    )
    cells = notebook.cells
    last_check = max(index for index, cell in enumerate(cells) if "check" in tags(cell))
    with client.setup_kernel():
        for index in [*range(last_check + 1), len(cells) - 1]:
            if "demo" not in tags(cells[index]):
                client.execute_cell(cells[index], index)
    return notebook


def errors_of(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return [output for output in cell.get("outputs", []) if output["output_type"] == "error"]


def text_of(cell: dict[str, Any]) -> str:
    return "".join(
        "".join(output.get("text", ""))
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )


def test_there_are_chapters() -> None:
    assert [path.name[:2] for path in SOLUTIONS][:3] == ["00", "01", "02"]


def test_attendee_copies_are_up_to_date() -> None:
    assert attendee.problems() == [], "run `make notebooks`"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.stem)
def test_every_exercise_has_a_check_and_a_todo(solution: Path) -> None:
    cells = json.loads(solution.read_text(encoding="utf-8"))["cells"]
    assert "setup" in tags(cells[1]), "the first code cell is the setup cell"
    exercises = [index for index, cell in enumerate(cells) if "exercise" in tags(cell)]
    for index, next_index in zip(exercises, [*exercises[1:], len(cells)], strict=True):
        assert attendee.BEGIN in attendee.cell_source(cells[index])
        between = cells[index + 1 : next_index]
        assert any("check" in tags(cell) for cell in between), f"cell {index} has no check"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.stem)
def test_demo_cells_are_neither_exercises_nor_checks(solution: Path) -> None:
    """A "demo" cell is skipped in the attendee copy's run: it must be the same in both
    copies, and no check may be one."""
    for cell in json.loads(solution.read_text(encoding="utf-8"))["cells"]:
        if "demo" in tags(cell):
            assert not {"check", "exercise", "setup"} & set(tags(cell)), cell["id"]
            assert attendee.BEGIN not in attendee.cell_source(cell), cell["id"]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda path: path.stem)
def test_attendee_checks_fail_before_the_exercises_are_solved(
    solution: Path, kernel_temp_folder: Path
) -> None:
    notebook = execute_to_the_last_check(attendee.NOTEBOOKS_DIR / solution.name)
    cells = notebook["cells"]
    assert not errors_of(cells[1]), "the setup cell must run in the attendee copy"
    if "tempfile.mkdtemp(" in cells[1].source:  # its data folder, where pytest cleans it up
        assert any(kernel_temp_folder.iterdir()), "the chapter's folder is not in the test's TMPDIR"
    for cell in cells:
        if "check" in tags(cell):
            names = [error["ename"] for error in errors_of(cell)]
            assert names == ["CheckFailed"], f"{cell['id']}: {names}\n{text_of(cell)}"
