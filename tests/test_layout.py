"""The tree tells the architecture: only the composition root stands at the top of accord_app/,
and the README's "Layout" section lists every module of the package, one line each (and no
module that is gone)."""

import re
from pathlib import Path

from accord_app.settings import PROJECT_DIR

PACKAGE = PROJECT_DIR / "accord_app"
# What assembles the app and starts it; everything else lives in a layer's subpackage.
COMPOSITION_ROOT = {"__init__.py", "__main__.py", "app.py", "settings.py"}


def package_modules() -> set[str]:
    """Every module, as a path under accord_app/: a package stands for its __init__.py."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name == "__init__.py" and relative.parent != Path("."):
            modules.add(f"{relative.parent.as_posix()}/")
        else:
            modules.add(relative.as_posix())
    return modules


def readme_layout() -> set[str]:
    """The entries under accord_app/ in the README's Layout block, as paths: each line's first
    word, below its parent folder's line by two more spaces."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, path) of the open folders
    inside = False
    for line in block.splitlines():
        match = re.match(r"( *)(\S+)", line)
        if match is None:
            continue
        indent, word = len(match[1]), match[2]
        if indent == 0:
            inside = word == "accord_app/"
            folders = []
            continue
        if not inside or not (word.endswith((".py", "/"))):
            continue
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "".join(folder for _, folder in folders) + word
        listed.add(path)
        if word.endswith("/"):
            folders.append((indent, word))
    return listed


def test_only_the_composition_root_stands_at_the_top() -> None:
    top = {path.name for path in PACKAGE.glob("*.py")}
    assert top - COMPOSITION_ROOT == set(), "move these into the subpackage of their layer"


def test_the_readme_layout_lists_every_module() -> None:
    modules = package_modules()
    listed = readme_layout()
    assert sorted(modules - listed) == [], "add these to the README's Layout section"
    stale = {path for path in listed - modules if not (PACKAGE / path).is_dir()}
    assert sorted(stale) == [], "the README's Layout section lists modules that are gone"
