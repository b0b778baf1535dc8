"""The instructor's live demo, as the guide gives it (slides/INSTRUCTOR.md, "The live demos"):
it runs without a refusal, and shows one actor for everything far behind one per channel."""

import re
import shlex
import subprocess

from accord_app.settings import PROJECT_DIR

SECTION = "## The live demos"
# Two clusters, each loaded for about 30 s, and their start and stop.
DEMO_SECONDS = 240
ROW = re.compile(r"^\s*(\d+) msg/s\s+(\d+) ms\s+(\d+) ms\s+(\d+) ms\s+(\d+) ms$", re.MULTILINE)


def guide_commands() -> list[list[str]]:
    """The `make` commands the section shows as code (indented lines)."""
    text = (PROJECT_DIR / "slides" / "INSTRUCTOR.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    code = [line[4:] for line in section.splitlines() if line.startswith("    ")]
    return [shlex.split(line) for line in code if line.startswith("make ")]


def test_the_guides_demo_runs_as_written_and_shows_the_difference() -> None:
    [command] = guide_commands()
    done = subprocess.run(
        command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=DEMO_SECONDS,
        check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "429" not in output and "refused" not in output, output[-4000:]
    # It says what to expect before it runs, and compares after.
    assert output.index("What to expect") < output.index("global sharding")
    rows = [tuple(map(int, row)) for row in ROW.findall(output)]
    assert [row[0] for row in rows] == [20, 40, 60], output[-4000:]
    _, global_p50, _, channel_p50, _ = rows[-1]
    assert global_p50 >= 10 * channel_p50, output[-4000:]
    # The channel actors keep up at every rate: near the 20 ms cost.
    assert all(row[3] < 100 for row in rows), output[-4000:]
