"""The instructor's scripts, slides/build.py, pdf.py and timings.py, imported by the tests (they
are scripts in a folder, not a package)."""

import importlib.util
from types import ModuleType

from accord_app.settings import PROJECT_DIR


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"slides_{name}", PROJECT_DIR / "slides" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load("build")
pdf = load("pdf")
timings = load("timings")
