"""Make the attendee notebooks from the solution notebooks, the single source of the chapters.

In notebooks/solutions/*.ipynb, the answer to an exercise sits between two marker lines:

    def list_servers(conn):
        ### BEGIN SOLUTION
        rows = conn.execute("SELECT id, name FROM servers ORDER BY rowid")
        return [Server(*row) for row in rows]
        ### END SOLUTION

The attendee copy in notebooks/ keeps everything else and puts, at the marker's indentation:

        # TODO: your code here (the instructions are above)
        raise NotImplementedError("exercise 2.1")

The exercise number comes from the cell's "exercise-N.M" tag. Outputs are dropped from both.

Cells tagged "export" are also written, solved and without markers, to a module of
accord_app/lab/steps/ (chapterNN.py): that is how a later chapter's setup cell imports what an
earlier chapter built, and why the module can never drift from the notebook.

    python -m accord_app.lab.attendee           # write the attendee copies
    python -m accord_app.lab.attendee --check   # fail if a copy is stale or has outputs
"""

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

from accord_app.settings import PROJECT_DIR

NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"
STEPS_DIR = Path(__file__).resolve().parent / "steps"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

Notebook = dict[str, Any]


class MarkerError(ValueError):
    """The solution markers of a cell do not pair up."""


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_tags(cell: dict[str, Any]) -> list[str]:
    return [str(tag) for tag in cell.get("metadata", {}).get("tags", [])]


def exercise_label(cell: dict[str, Any]) -> str:
    for tag in cell_tags(cell):
        if tag.startswith("exercise-"):
            return "exercise " + tag.removeprefix("exercise-")
    return "this exercise"


def strip_solution(source: str, label: str) -> str:
    """Replace each BEGIN..END block by a TODO that raises NotImplementedError."""
    lines, inside, out = source.splitlines(keepends=True), False, []
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise MarkerError(f"line {number}: {BEGIN} inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# TODO: your code here (the instructions are above)\n")
            out.append(f'{indent}raise NotImplementedError("{label}")\n')
        elif marker == END:
            if not inside:
                raise MarkerError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{BEGIN} is never closed")
    stripped = "".join(out)
    try:  # a block cut out of an expression would leave the attendee a syntax error
        compile(stripped, "<attendee cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as error:
        raise MarkerError(f"the attendee copy is not valid Python: {error}") from None
    return stripped


def without_outputs(notebook: Notebook) -> Notebook:
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return notebook


def attendee_copy(solution: Notebook, name: str) -> Notebook:
    copy: Notebook = json.loads(json.dumps(solution))
    for index, cell in enumerate(copy["cells"]):
        if cell["cell_type"] != "code":
            continue
        try:
            cell["source"] = strip_solution(cell_source(cell), exercise_label(cell))
        except MarkerError as error:
            raise MarkerError(f"{name}, cell {index + 1}: {error}") from None
    return without_outputs(copy)


def step_module(solution: Notebook, name: str) -> str | None:
    """The "export" cells of a solution notebook as a module, or None if it has none."""
    cells = [cell_source(cell) for cell in solution["cells"] if "export" in cell_tags(cell)]
    if not cells:
        return None
    body = "\n\n\n".join(
        "".join(
            line
            for line in source.strip("\n").splitlines(keepends=True)
            if line.strip() not in (BEGIN, END)
        ).rstrip("\n")
        for source in cells
    )
    return (
        f'"""What chapter {name[:2]} builds, solved: generated from notebooks/solutions/{name}.\n\n'
        'Do not edit: change the notebook and run `make notebooks`."""\n\n'
        f"{body}\n"
    )


def dumps(notebook: Notebook) -> str:
    """The format Jupyter itself saves in, so opening and saving a notebook changes nothing."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def expected_copies(solutions_dir: Path = SOLUTIONS_DIR) -> dict[Path, str]:
    """Each attendee notebook's path and the text it should have."""
    copies = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        solution = json.loads(path.read_text(encoding="utf-8"))
        copies[solutions_dir.parent / path.name] = dumps(attendee_copy(solution, path.name))
        module = step_module(solution, path.name)
        if module is not None:
            copies[STEPS_DIR / f"chapter{path.name[:2]}.py"] = module
    return copies


def problems(solutions_dir: Path = SOLUTIONS_DIR) -> list[str]:
    """What --check reports: stale or missing copies, and notebooks saved with outputs."""
    found = []
    for path, text in expected_copies(solutions_dir).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            found.append(f"{path.relative_to(PROJECT_DIR)} is out of date with its solution")
    for path in sorted(solutions_dir.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        if any(cell.get("outputs") or cell.get("execution_count") for cell in cells):
            found.append(f"solutions/{path.name} has outputs; clear them before committing")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for problem in found:
            print(f"notebooks: {problem}", file=sys.stderr)
        if found:
            print("notebooks: run `make notebooks` to regenerate the copies", file=sys.stderr)
        return 1 if found else 0
    for path, text in expected_copies().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
