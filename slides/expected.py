"""Record what the deck's live cells show, for the slides beside them (the demo's plan B).

    .venv/bin/python slides/expected.py      # about two minutes; then `make slides`

Runs every code cell of slides/accord.ipynb in a fresh kernel, exactly as the live demo does,
and keeps what each one showed in slides/expected/: its printed text and its picture, if any,
in recorded.json with the date and the machine. The static deck (slides/build.py) shows them
beside each cell's code, so a demo that fails in the room still has its real result on screen.
Run it again whenever a live cell changes: each record keeps the code it ran, and a test checks
that it is the code on the slide.
"""

import base64
import datetime
import json
import os
import platform
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SLIDES_DIR = Path(__file__).resolve().parent
DECK = SLIDES_DIR / "accord.ipynb"
EXPECTED = SLIDES_DIR / "expected"


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def record(deck: Path = DECK, out: Path = EXPECTED) -> Path:
    notebook = nbformat.reads(deck.read_text(encoding="utf-8"), as_version=4)
    with tempfile.TemporaryDirectory(prefix="accord-expected-") as folder:
        client = NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        client.execute()
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    cells = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        shown: dict[str, str] = {"source": cell.source, "text": text}
        for output in cell.outputs:
            picture = output.get("data", {}).get("image/png")
            if picture:
                name = f"{cell.id}.png"
                (out / name).write_bytes(base64.b64decode(picture))
                shown["image"] = name
                shown["alt"] = f"What the cell {cell.id} drew when it was recorded"
        cells[cell.id] = shown
    machine = f"{cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    found = {"date": datetime.date.today().isoformat(), "machine": machine, "cells": cells}
    recorded = out / "recorded.json"
    recorded.write_text(json.dumps(found, indent=1) + "\n")
    return recorded


if __name__ == "__main__":
    print(f"Wrote {record().relative_to(SLIDES_DIR.parent)}")
