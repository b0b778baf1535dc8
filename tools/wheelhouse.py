"""`make wheelhouse`: every wheel `make lab` needs, for the laptops attendees bring.

    .venv/bin/python tools/wheelhouse.py                # 5 platforms x Python 3.11-3.13
    .venv/bin/python tools/wheelhouse.py --platform linux-x86_64 --python 3.11

Copy the repository with its wheelhouse/ folder to USB sticks. `make lab` sees the folder and
installs from it alone (pip --no-index): no network at all, not even a slow one.

The wheels are those of the lab's lock (requirements/lab.txt): the versions the kit was tested
with, whose hashes `make lab` checks. For each platform and Python version, uv selects the
lock's requirements as that laptop would see them: markers such as `sys_platform == "win32"`
are decided for the target, which pip's own `download --platform` cannot do (it decides them
for the machine it runs on, and would fetch uvloop for Windows and forget colorama). pip then
downloads exactly those wheels, binary only: an attendee's laptop has no compiler to count on.
Each pair's file list is kept as wheelhouse/<platform>-<python>.txt, so the size per platform
can be told afterwards.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
WHEELHOUSE = PROJECT_DIR / "wheelhouse"
PYTHONS = ["3.11", "3.12", "3.13"]


def manylinux(arch: str) -> list[str]:
    """The wheel tags a Linux with glibc 2.28 accepts, by their new and their legacy names:
    pip widens a macOS version downwards by itself, but not these."""
    legacy = ["manylinux2014", "manylinux2010", "manylinux1"]
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 4, -1)] + [
        f"{name}_{arch}" for name in legacy
    ]


# The oldest macOS the wheels must install on; uv and pip are both held to it.
MACOS = 13
# Our name -> (uv's name for the platform, the wheel tags pip accepts for it).
PLATFORMS = {
    "linux-x86_64": ("x86_64-manylinux_2_28", manylinux("x86_64")),
    "linux-aarch64": ("aarch64-manylinux_2_28", manylinux("aarch64")),
    "macos-arm64": (
        "aarch64-apple-darwin",
        [f"macosx_{MACOS}_0_arm64", f"macosx_{MACOS}_0_universal2"],
    ),
    "macos-x86_64": (
        "x86_64-apple-darwin",
        [f"macosx_{MACOS}_0_x86_64", f"macosx_{MACOS}_0_universal2"],
    ),
    "windows-x86_64": ("x86_64-pc-windows-msvc", ["win_amd64"]),
}
# Not a requirement of the lab but needed to install it: the build backend of pyproject.toml,
# for pip's `install -e .`, which has no network to fetch it from either.
BUILD_REQUIREMENTS = ["setuptools>=68"]


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        sys.exit("uv is missing: `make wheelhouse` installs it (pip install uv).")
    return found


def resolve(platform: str, python: str, out: Path) -> None:
    """Write the lab's locked requirements that one platform and Python need to `out`."""
    target, _tags = PLATFORMS[platform]
    command = [uv(), "pip", "compile", str(PROJECT_DIR / "requirements" / "lab.txt")]
    command += ["--python-platform", target, "--python-version", python]
    command += ["--only-binary", ":all:", "--no-header", "--no-annotate", "--quiet"]
    environment = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": f"{MACOS}.0"}
    subprocess.run([*command, "--output-file", str(out)], check=True, env=environment)
    with out.open("a") as requirements:
        requirements.write("".join(f"{line}\n" for line in BUILD_REQUIREMENTS))


def download(platform: str, python: str) -> list[str]:
    """Download one platform's wheels into the wheelhouse; the names of its files."""
    _target, tags = PLATFORMS[platform]
    with tempfile.TemporaryDirectory(dir=WHEELHOUSE) as scratch:
        folder = Path(scratch)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary", ":all:", "--implementation", "cp"]
        command += ["--dest", str(folder / "wheels"), *[f"--platform={tag}" for tag in tags]]
        # The lock may pin a package differently for early and late releases of one Python
        # (e.g. `python_full_version >= '3.11.5'`): a laptop may have either, so take both.
        # The late release fetches only what the early one did not (one or two pins differ):
        # pip would otherwise check every wheel a second time, half of this function's time.
        fetched: set[str] = set()
        for release in [f"{python}.0", f"{python}.99"]:
            requirements = folder / f"requirements-{release}.txt"
            resolve(platform, release, requirements)
            pins = requirements.read_text().splitlines()  # one requirement per line
            missing = [pin for pin in pins if pin.strip() and pin not in fetched]
            if missing:
                requirements.write_text("".join(f"{pin}\n" for pin in missing))
                fetch = [*command, "--python-version", release, "--requirement", str(requirements)]
                subprocess.run(fetch, check=True)
            fetched.update(pins)
        names = sorted(path.name for path in (folder / "wheels").iterdir())
        for name in names:  # pure-Python wheels are shared by every platform: kept once
            if not (WHEELHOUSE / name).exists():
                (folder / "wheels" / name).rename(WHEELHOUSE / name)
    return names


def megabytes(names: set[str]) -> float:
    return sum((WHEELHOUSE / name).stat().st_size for name in names) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS))
    parser.add_argument("--python", action="append", choices=PYTHONS)
    args = parser.parse_args()
    WHEELHOUSE.mkdir(exist_ok=True)
    per_platform: dict[str, set[str]] = {}
    for platform in args.platform or list(PLATFORMS):
        for python in args.python or PYTHONS:
            print(f"{platform}, Python {python}...", flush=True)
            names = download(platform, python)
            (WHEELHOUSE / f"{platform}-{python}.txt").write_text("\n".join(names) + "\n")
            per_platform.setdefault(platform, set()).update(names)
    everything = {path.name for path in WHEELHOUSE.glob("*.whl")}
    for platform, wheels in per_platform.items():
        print(f"{platform:16} {len(wheels):4} wheels {megabytes(wheels):7.1f} MB")
    print(f"{'wheelhouse/':16} {len(everything):4} wheels {megabytes(everything):7.1f} MB")


if __name__ == "__main__":
    main()
