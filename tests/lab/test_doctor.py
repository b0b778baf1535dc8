"""`make doctor` tells a ready laptop from one that is not: every line green here, and the
matching line red, with its fix, when .venv is missing or broken, a port is taken, the Python is
too old or the lab would need a browser. It runs on the standard library alone (`python -S`
below: no site-packages at all)."""

import fcntl
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from accord_app.lab import doctor
from accord_app.settings import PROJECT_DIR

KIT_PORTS = doctor.PORTS
CHECKS = 4 + len(KIT_PORTS) + 2  # Python, .venv, kernel, browser; the ports; Caddy, PostgreSQL


@contextmanager
def kit_ports() -> Iterator[None]:
    """The kit's default ports to this test alone: the lock that the tests which run the kit on
    them take too (tests/loadtest/test_readme_load_test.py), as two test processes share the
    suite."""
    with open(Path(tempfile.gettempdir()) / "accord-port-8787.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_doctor(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-S", "-m", "accord_app.lab.doctor", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout.splitlines()


def line_about(lines: list[str], words: str) -> tuple[str, str]:
    """The check's line that contains `words`, and its fix ("" for a green line)."""
    for index, line in enumerate(lines):
        if words in line and line.lstrip().startswith(("ok", "FAIL")):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            return line, following.strip() if "fix:" in following else ""
    raise AssertionError(f"no line about {words!r} in:\n" + "\n".join(lines))


def test_make_doctor_is_all_green_on_this_machine() -> None:
    # As a person types it: the Python on PATH, not .venv's.
    path = os.pathsep.join(
        part
        for part in os.environ["PATH"].split(os.pathsep)
        if Path(part).resolve() != (PROJECT_DIR / ".venv" / "bin").resolve()
    )
    environment = {**os.environ, "PATH": path}
    environment.pop("VIRTUAL_ENV", None)
    with kit_ports():
        done = subprocess.run(
            ["make", "--no-print-directory", "doctor"],
            cwd=PROJECT_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == CHECKS + 1, done.stdout
    assert all(line.startswith("  ok    ") for line in lines[:-1]), done.stdout
    assert lines[-1] == f"All {CHECKS} checks passed: `make lab` opens the chapters."


def test_without_a_venv_its_line_is_red_with_the_fix(tmp_path: Path) -> None:
    clone = tmp_path / "accord"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True)
    status, lines = run_doctor("--project", str(clone))
    assert status == 1, lines
    venv, fix = line_about(lines, ".venv is not ready")
    assert venv.startswith("  FAIL") and "there is no .venv/bin/python" in venv
    assert fix.startswith("fix: `make lab` creates it"), fix
    kernel, fix = line_about(lines, "Jupyter kernel")
    assert kernel.startswith("  FAIL") and "ipykernel install --prefix .venv" in fix
    for wheel in ("Caddy", "PostgreSQL"):
        line, fix = line_about(lines, wheel)
        assert line.startswith("  FAIL") and fix == "fix: `make lab`", line
    assert line_about(lines, "Python 3.")[0].startswith("  ok"), lines
    assert lines[-1].endswith("checks failed: fix them, then `make doctor` again.")

    # A venv whose install never ran: its Python starts but the kit is not in it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", clone / ".venv"], check=True)
    status, lines = run_doctor("--project", str(clone))
    venv, fix = line_about(lines, ".venv cannot")
    assert status == 1 and venv == "  FAIL  .venv cannot import accord_app", lines
    assert fix == "fix: `make clean && make lab`"

    # The kit importable from it (as `pip install -e .` leaves it), but no stamp of a finished
    # install; then a stamp older than the lock.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = clone / ".venv" / "lib" / version / "site-packages"
    (site / "accord.pth").write_text(f"{clone}\n")
    venv, fix = line_about(run_doctor("--project", str(clone))[1], ".venv ")
    assert venv == "  FAIL  .venv exists but the lab's install never finished", venv
    assert fix == "fix: `make lab`"
    stamp = clone / ".venv" / ".installed-lab"
    stamp.touch()
    os.utime(stamp, (1_000_000_000, 1_000_000_000))  # 2001: older than any checkout
    venv, fix = line_about(run_doctor("--project", str(clone))[1], ".venv ")
    assert venv == "  FAIL  .venv is older than pyproject.toml and requirements/lab.txt", venv
    assert fix == "fix: `make lab` installs it again"


def test_a_lab_that_needs_a_browser_is_red(tmp_path: Path) -> None:
    clone = tmp_path / "accord"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True)
    assert line_about(run_doctor("--project", str(clone))[1], "Chromium")[0].startswith("  ok")
    with (clone / "requirements" / "lab.txt").open("a") as lock:
        lock.write("playwright==1.65.2\n")
    line, fix = line_about(run_doctor("--project", str(clone))[1], "browser driver")
    assert (
        line == "  FAIL  the lab needs a browser driver: requirements/lab.txt mentions playwright"
    )
    assert "dev extra" in fix


def test_a_taken_port_is_red_with_its_fix() -> None:
    with kit_ports(), socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", 8888))
            holder.listen()
        except OSError:
            pass  # something else holds it already: taken all the same
        status, lines = run_doctor()
    assert status == 1, lines
    line, fix = line_about(lines, "8888")
    assert line == "  FAIL  port 8888 is taken: make lab's JupyterLab cannot listen there"
    assert '`make lab LAB_ARGS="--port 8899"`' in fix and "lsof -iTCP:8888" in fix
    # The other ports are told apart: 8787's line does not blame 8888.
    assert "8888" not in line_about(lines, "8787")[0]


def test_a_python_older_than_3_11_is_red_with_the_fix() -> None:
    old = doctor.check_python((3, 10, 13), "/usr/bin/python3")
    assert not old.ok and "3.10.13" in old.text and "too old" in old.text
    assert "make lab PYTHON=python3.12" in old.fix
    assert doctor.check_python((3, 11, 0), "/usr/bin/python3").ok
