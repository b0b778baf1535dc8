"""Every exercise's self-check fails the plausible wrong answers, at that exercise.

The notebook-level twin of mutation testing: a chapter's solution runs once in one kernel;
then, for each known-wrong answer, its exercise cell is run with the wrong code and the check
right after it must fail (CheckFailed, with at least one ❌ line), and the solution is put back
before the next one. Demo cells are not run again, so a wrong answer costs only its check.
"""

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from accord_app.lab import attendee

pytestmark = pytest.mark.notebooks

CELL_TIMEOUT = 180

# Right answers, to combine with a wrong one where an exercise cell holds several functions.
CEILING = "def actor_ceiling(cost_ms):\n    return 1000 / cost_ms\n"
INSIDE = "def messages_inside(rate_per_s, latency_ms):\n    return rate_per_s * latency_ms / 1000\n"
ROUTE = """import re
def route_key(mode, path):
    found = re.match(r"^/api/servers/([^/]+)/channels/([^/]+)/", path)
    if found:
        return shard_key(mode, found[1], found[2])
    found = re.match(r"^/api/servers/([^/]+)/activity$", path)
    return shard_key(mode, found[1], "") if found and mode != "channel" else None
"""
KEPT = (
    "    return max([s.offered for s in steps if s.ack.p99_ms <= p99_limit_ms"
    " and s.failures == 0 and s.acked >= 0.95 * s.sent and s.sent >= 0.85 * s.offered],"
    " default=0.0)\n"
)
PICK = """def pick_worker(key, addresses):
    scores = [xxhash.xxh64_intdigest((a + key).encode()) for a in addresses]
    return scores.index(max(scores)) + 1
"""

# chapter -> exercise tag -> [(the mistake, a whole wrong exercise cell)]
WRONG_ANSWERS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "07-scaling.ipynb": {
        "exercise-7.1": [
            ("the cost itself, not a rate", "def actor_ceiling(c):\n    return c\n" + INSIDE),
            (
                "per millisecond, not per second",
                "def actor_ceiling(c):\n    return 1 / c\n" + INSIDE,
            ),
            (
                "the ceiling for 20 ms, whatever the cost",
                "def actor_ceiling(c):\n    return 50.0\n" + INSIDE,
            ),
            (
                "Little's law with milliseconds as seconds",
                CEILING + "def messages_inside(rate, latency):\n    return rate * latency\n",
            ),
            (
                "Little's law upside down",
                CEILING + "def messages_inside(rate, latency):\n    return 1000 * rate / latency\n",
            ),
        ],
        "exercise-7.2": [
            (
                "the channel's key in every mode",
                ROUTE.replace(
                    "shard_key(mode, found[1], found[2])", 'shard_key("channel", *found.groups())'
                )
                + PICK,
            ),
            (
                "a server-wide path names an actor even under channel sharding",
                ROUTE.replace(' and mode != "channel"', "") + PICK,
            ),
            (
                "every path names the global actor",
                ROUTE.replace(
                    "    found = re.match",
                    '    if mode == "global":\n        return "global"\n    found = re.match',
                    1,
                )
                + PICK,
            ),
            (
                "the key's hash modulo K",
                ROUTE + "def pick_worker(key, addresses):\n"
                "    return xxhash.xxh64_intdigest(key.encode()) % len(addresses) + 1\n",
            ),
            ("workers numbered from 0", ROUTE + PICK.replace(" + 1", "")),
            ("the lowest score", ROUTE + PICK.replace("max(scores)", "min(scores)")),
            ("key before address", ROUTE + PICK.replace("(a + key)", "(key + a)")),
        ],
        "exercise-7.3": [
            (mistake, f"def sustained(steps, p99_limit_ms):\n{body}")
            for mistake, body in [
                ("the last step's load", "    return steps[-1].offered"),
                ("the most offered, fast or not", "    return max(s.offered for s in steps)"),
                ("failures ignored", KEPT.replace(" and s.failures == 0", "")),
                (
                    "a step exactly at the limit left out",
                    KEPT.replace("<= p99_limit_ms", "< p99_limit_ms"),
                ),
                (
                    "what was acked instead of the offered load",
                    KEPT.replace("[s.offered", "[s.acked"),
                ),
                ("unacked messages ignored", KEPT.replace(" and s.acked >= 0.95 * s.sent", "")),
                (
                    "the generators' shortfall ignored",
                    KEPT.replace(" and s.sent >= 0.85 * s.offered", ""),
                ),
                (
                    "the median instead of the p99",
                    KEPT.replace("s.ack.p99_ms <=", "s.ack.p50_ms <="),
                ),
                (
                    "the last good step before the first bad one",
                    "    best = 0.0\n"
                    "    for s in steps:\n"
                    "        if s.ack.p99_ms > p99_limit_ms or s.failures:\n"
                    "            break\n"
                    "        best = s.offered\n"
                    "    return best\n",
                ),
            ]
        ],
        "exercise-7.4": [
            (mistake, f"def actor_calls(mode, n):\n{body}")
            for mistake, body in [
                ("one call per channel in every mode", "    return n"),
                ("one call in every mode", "    return 1"),
                (
                    "one call per channel when global",
                    "    return 1 if mode == 'server' else channels",
                ),
                ("the remote calls only", "    return n // 2 if mode == 'channel' else 1"),
            ]
        ],
    },
}


def tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def errors_of(cell: Any) -> list[str]:
    return [
        output["ename"] for output in cell.get("outputs", []) if output["output_type"] == "error"
    ]


def text_of(cell: Any) -> str:
    return "".join(
        "".join(output.get("text", ""))
        for output in cell.get("outputs", [])
        if output["output_type"] == "stream"
    )


def exercise_and_check(cells: list[Any], tag: str) -> tuple[int, int]:
    [exercise] = [index for index, cell in enumerate(cells) if tag in tags(cell)]
    check = next(
        index for index in range(exercise + 1, len(cells)) if "check" in tags(cells[index])
    )
    return exercise, check


@pytest.mark.parametrize("chapter", sorted(WRONG_ANSWERS))
def test_every_known_wrong_answer_fails_at_its_own_exercise(chapter: str) -> None:
    path = attendee.SOLUTIONS_DIR / chapter
    notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(attendee.NOTEBOOKS_DIR)}},
    )
    cells = notebook.cells
    passed_through: list[str] = []
    with client.setup_kernel():
        # Everything but the last cell (which stops what the checks still need).
        for index, cell in enumerate(cells[:-1]):
            client.execute_cell(cell, index)
            assert not errors_of(cell), f"the solution failed in cell {index}: {text_of(cell)}"
        for tag, wrong_answers in WRONG_ANSWERS[chapter].items():
            exercise, check = exercise_and_check(cells, tag)
            solution = cells[exercise].source
            for mistake, source in wrong_answers:
                cells[exercise].source = source
                client.execute_cell(cells[exercise], exercise)
                assert not errors_of(cells[exercise]), (tag, mistake)
                client.execute_cell(cells[check], check)
                if errors_of(cells[check]) != ["CheckFailed"] or "❌" not in text_of(cells[check]):
                    passed_through.append(f"{tag}: {mistake}\n{text_of(cells[check])}")
            cells[exercise].source = solution
            client.execute_cell(cells[exercise], exercise)
        client.execute_cell(cells[-1], len(cells) - 1)
    assert passed_through == [], "wrong answers that earned green ticks:\n" + "\n".join(
        passed_through
    )


def test_every_exercise_of_these_chapters_has_known_wrong_answers() -> None:
    for chapter, by_exercise in WRONG_ANSWERS.items():
        cells = json.loads((attendee.SOLUTIONS_DIR / chapter).read_text(encoding="utf-8"))["cells"]
        exercises = {tag for cell in cells for tag in tags(cell) if tag.startswith("exercise-")}
        assert exercises == set(by_exercise), chapter
        assert all(len(answers) >= 2 for answers in by_exercise.values()), chapter
