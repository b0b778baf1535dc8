"""A room without Wi-Fi: a fresh clone with a wheelhouse installs the lab with no network at
all. The wheelhouse is built here for this machine only (the full one, for five platforms and
three Pythons, is `make wheelhouse`); the install then runs in a network namespace of its own,
with nothing but a loopback that is down, so a single download would fail it."""

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accord_app.settings import PROJECT_DIR

PLATFORM = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}.get(platform.machine())
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def need(condition: bool, message: str) -> None:
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_a_fresh_clone_installs_the_lab_from_its_wheelhouse_offline(tmp_path: Path) -> None:
    need(sys.platform == "linux" and PLATFORM is not None, "builds a Linux wheelhouse")
    need(os.geteuid() == 0 and shutil.which("unshare") is not None, "needs root for unshare")
    clone = tmp_path / "accord"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True)
    tool = ["--platform", str(PLATFORM), "--python", PYTHON]
    subprocess.run([sys.executable, clone / "tools" / "wheelhouse.py", *tool], check=True)
    wheels = list((clone / "wheelhouse").glob("*.whl"))
    assert len(wheels) > 50 and (clone / "wheelhouse" / f"{PLATFORM}-{PYTHON}.txt").exists()

    # No pip configuration of this machine may offer another source (an index, a folder of
    # wheels): only the wheelhouse.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    environment |= {"PIP_CONFIG_FILE": os.devnull, "PYTHON": sys.executable}
    environment.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    installed = subprocess.run(
        ["unshare", "--net", "make", "--no-print-directory", ".venv/.installed-lab"],
        cwd=clone, env=environment, capture_output=True, text=True,
    )  # fmt: skip
    print(f"make lab's install, offline: {time.monotonic() - started:.0f} s")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "--no-index --find-links wheelhouse" in installed.stdout
    python = clone / ".venv" / "bin" / "python"
    # One process each: importing locust patches the standard library with gevent, which
    # breaks modules imported before it (so the lab never imports it beside JupyterLab).
    for module in ["accord_app", "jupyterlab", "locust", "matplotlib", "jupyterlab_rise"]:
        subprocess.run([python, "-c", f"import {module}"], check=True, cwd=tmp_path)
    extensions = subprocess.run(
        [clone / ".venv" / "bin" / "jupyter", "labextension", "list"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "jupyterlab-rise" in extensions.stdout + extensions.stderr
