"""Settings that say what they do: the data folder's default is where `--help` says it is."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accord_app.settings import DATA_DIR_HELP, PROJECT_DIR, Settings


def test_the_data_folder_is_data_in_the_folder_the_app_starts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # as an installed package, far from the project folder
    assert Settings().data_dir == tmp_path / "data"
    assert Settings.from_env({}).data_dir == tmp_path / "data"
    assert Settings.from_env({"ACCORD_DATA_DIR": "elsewhere"}).data_dir == Path("elsewhere")


@pytest.mark.parametrize("module", ["accord_app", "accord_app.cluster"])
def test_help_says_where_the_data_goes(module: str, tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    shown = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, env=environment,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert " ".join(DATA_DIR_HELP.split()) in " ".join(shown.split())
