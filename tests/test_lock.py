"""The locks in requirements/ agree with pyproject.toml: every dependency it names is locked at
a version it allows, with hashes, and the developers' lock keeps the lab's versions. (After
changing a dependency: `make lock`.)"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from accord_app.settings import PROJECT_DIR

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def locked(name: str) -> dict[str, list[tuple[Version, str, int]]]:
    """{package: [(version, marker, hashes), ...]} of requirements/<name>.txt."""
    found: dict[str, list[tuple[Version, str, int]]] = {}
    entry: tuple[str, Version, str] | None = None
    hashes = 0
    lines = (PROJECT_DIR / "requirements" / f"{name}.txt").read_text().splitlines()
    for line in [*lines, ""]:
        match = PIN.match(line)
        if match or not line.startswith("    --hash="):
            if entry is not None:
                package, version, marker = entry
                found.setdefault(package, []).append((version, marker, hashes))
                entry = None
            if match:
                entry = (canonicalize_name(match[1]), Version(match[2]), match[3] or "")
                hashes = 0
        else:
            hashes += 1
    return found


def wanted(*extras: str) -> list[Requirement]:
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(("lock", "extras"), [("lab", ["lab"]), ("dev", ["lab", "dev"])])
def test_every_dependency_is_locked_at_a_version_pyproject_allows(
    lock: str, extras: list[str]
) -> None:
    pins = locked(lock)
    assert len(pins) > 50, f"requirements/{lock}.txt looks empty"
    for requirement in wanted(*extras):
        entries = pins.get(canonicalize_name(requirement.name))
        assert entries, f"{requirement.name} is not in requirements/{lock}.txt: run make lock"
        for version, _, _ in entries:
            assert version in requirement.specifier, (
                f"requirements/{lock}.txt has {requirement.name} {version}, pyproject.toml"
                f" asks for {requirement.specifier}: run make lock"
            )
    unhashed = [name for name, entries in pins.items() for *_, hashes in entries if not hashes]
    assert unhashed == [], f"locked without hashes: {unhashed}"


def test_the_developers_lock_keeps_the_labs_versions() -> None:
    lab, dev = locked("lab"), locked("dev")
    changed = {
        name: (entries, dev.get(name))
        for name, entries in lab.items()
        if sorted(version for version, *_ in entries)
        != sorted(version for version, *_ in dev.get(name, []))
    }
    assert changed == {}, "the developers' lock moved lab packages: run make lock"


def test_make_lock_writes_what_make_installs() -> None:
    makefile = (PROJECT_DIR / "Makefile").read_text()
    for lock in ["lab", "dev"]:
        header = (PROJECT_DIR / "requirements" / f"{lock}.txt").read_text().splitlines()[1]
        assert "--universal --generate-hashes" in header, header
        assert Path(f"requirements/{lock}.txt").as_posix() in makefile
    assert "--require-hashes --requirement $(LAB_LOCK)" in makefile
    assert "--require-hashes --requirement $(DEV_LOCK)" in makefile
