"""Self-checks for the exercises: a short report of what passed, what is off, and a hint.

    with check("Exercise 1.1: GET /api") as report:
        response = httpx.get(f"{server.url}/api")
        report.expect(response.status_code == 200, "GET /api answers 200",
                      hint=f"it answered {response.status_code}")

A failed check raises CheckFailed, which stops "Run All" at the first unsolved exercise.
Jupyter shows it as the report alone, not as a traceback into this module.
"""

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

PASS, FAIL = "✅", "❌"


class CheckFailed(AssertionError):
    """Some expectation of a self-check did not hold; the printed report says which."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [f"{FAIL} {self}"]


@dataclass
class Outcome:
    passed: bool
    what: str
    hint: str = ""


@dataclass
class Report:
    title: str
    outcomes: list[Outcome] = field(default_factory=list)

    def expect(self, condition: bool, what: str, hint: str = "") -> bool:
        """Record one expectation; `hint` is shown only when it fails."""
        self.outcomes.append(Outcome(bool(condition), what, hint))
        return bool(condition)

    def equal(self, actual: object, expected: object, what: str, hint: str = "") -> bool:
        detail = f"expected {expected!r}, got {actual!r}"
        return self.expect(actual == expected, what, f"{detail}. {hint}".strip())

    def fail(self, what: str, hint: str = "") -> None:
        self.expect(False, what, hint)

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    def render(self) -> str:
        lines = [self.title]
        for outcome in self.outcomes:
            lines.append(f"  {PASS if outcome.passed else FAIL} {outcome.what}")
            if not outcome.passed and outcome.hint:
                lines.append(f"       hint: {outcome.hint}")
        passed = len(self.outcomes) - len(self.failures)
        if self.failures:
            lines.append(f"{passed} of {len(self.outcomes)} checks passed.")
        else:
            lines.append(f"All {len(self.outcomes)} checks passed.")
        return "\n".join(lines)


def describe(error: BaseException) -> str:
    """The error, and the last line of notebook code it went through (not library code)."""
    text = f"{type(error).__name__}: {error}"
    if len(text) > 300:
        text = text[:300] + "…"
    in_notebook = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "ipykernel_" in frame.filename or frame.filename.startswith("<ipython-input")
    ]
    if in_notebook:
        text += f" (raised through your code: `{(in_notebook[-1].line or '').strip()}`)"
    return text


@contextmanager
def check(title: str) -> Iterator[Report]:
    """Collect expectations, print the report, raise CheckFailed if any failed.

    An exception inside the block is a failed check too: NotImplementedError means the exercise
    still holds its TODO; anything else is shown with the line of the notebook that raised it.
    """
    report = Report(title)
    try:
        yield report
    except NotImplementedError as error:
        report.fail("the exercise is solved", hint=f"it still raises NotImplementedError: {error}")
    except NameError as error:
        report.fail("the exercise cell ran", hint=f"{error}: run the exercise cell above first")
    except Exception as error:
        report.fail("the code runs without raising", hint=describe(error))
    if not report.outcomes:
        report.fail("the check looked at something", hint="this check recorded no expectation")
    print(report.render())
    if report.failures:
        count = len(report.failures)
        raise CheckFailed(f"{count} check{'s' if count > 1 else ''} off in: {report.title}")
