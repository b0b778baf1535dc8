"""Self-checks for the exercises: a short report of what passed, what is off, and a hint.

    with check("Exercise 1.1: GET /api") as report:
        response = httpx.get(f"{server.url}/api")
        report.expect(response.status_code == 200, "GET /api answers 200",
                      hint=f"it answered {response.status_code}")

A failed check raises CheckFailed, which stops "Run All" at the first unsolved exercise.
Jupyter shows it as the report alone, not as a traceback into this module.
"""

import gc
import inspect
import re
import sqlite3
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

PASS, FAIL, SKIPPED = "✅", "❌", "⏭"
SHOWN_LENGTH = 300


class CheckFailed(AssertionError):
    """Some expectation of a self-check did not hold; the printed report says which."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [f"{FAIL} {self}"]


def shown(value: object) -> str:
    """`value` as a hint shows it: what a row or a coroutine is, not its bare repr."""
    if isinstance(value, sqlite3.Row):
        return f"a sqlite3.Row {tuple(value)!r} (turn rows into tuples or dicts)"
    if inspect.iscoroutine(value):
        return f"a coroutine of {value.__qualname__}() (a call that was not awaited)"
    if isinstance(value, list) and any(isinstance(item, sqlite3.Row) for item in value):
        return f"a list of {len(value)} sqlite3.Row objects (turn rows into tuples or dicts)"
    if isinstance(value, list) and any(inspect.iscoroutine(item) for item in value):
        return f"a list of {len(value)} coroutines (calls that were not awaited)"
    if isinstance(value, Exception) and hasattr(value, "err_code"):
        # A server's refusal (nats' APIError) whose repr is only its class name.
        description = getattr(value, "description", None)
        return f"{type(value).__name__} (code {value.err_code}: {description})"
    text = repr(value)
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH] + "…"


def same(actual: object, expected: object) -> bool:
    """Equal, and of the same kind where Python is lenient: True is not 1, nor 1 True."""
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    if isinstance(actual, list | tuple) and isinstance(expected, list | tuple):
        return (
            isinstance(actual, list) == isinstance(expected, list)
            and len(actual) == len(expected)
            and all(map(same, actual, expected))
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[key], expected[key]) for key in expected
        )
    return actual == expected


@dataclass
class Outcome:
    passed: bool
    what: str
    hint: str = ""
    skipped: bool = False


@dataclass
class Report:
    title: str
    outcomes: list[Outcome] = field(default_factory=list)

    def expect(self, condition: bool, what: str, hint: str = "") -> bool:
        """Record one expectation; `hint` is shown only when it fails."""
        self.outcomes.append(Outcome(bool(condition), what, hint))
        return bool(condition)

    def equal(self, actual: object, expected: object, what: str, hint: str = "") -> bool:
        detail = f"expected {shown(expected)}, got {shown(actual)}"
        if actual == expected and not same(actual, expected):
            detail += " (equal in Python, but not the same type: True is not 1)"
        return self.expect(same(actual, expected), what, f"{detail}. {hint}".strip())

    def fail(self, what: str, hint: str = "") -> None:
        self.expect(False, what, hint)

    def skip(self, because: str, *whats: str) -> None:
        """Items that depend on one that failed: named as not checked, neither ticked (they
        would hold only because nothing happened) nor given hints of their own."""
        for what in whats:
            self.outcomes.append(Outcome(False, what, f"skipped: {because}", skipped=True))

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed and not o.skipped]

    def render(self) -> str:
        lines = [self.title]
        for outcome in self.outcomes:
            if outcome.skipped:
                lines.append(f"  {SKIPPED} {outcome.what}")
                lines.append(f"       {outcome.hint}")
                continue
            lines.append(f"  {PASS if outcome.passed else FAIL} {outcome.what}")
            if not outcome.passed and outcome.hint:
                lines.append(f"       hint: {outcome.hint}")
        passed = sum(outcome.passed for outcome in self.outcomes)
        if self.failures or passed < len(self.outcomes):
            lines.append(f"{passed} of {len(self.outcomes)} checks passed.")
        else:
            lines.append(f"All {len(self.outcomes)} checks passed.")
        return "\n".join(lines)


def _notebook_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of `error` in notebook cells, without those of the check's own cell.

    The outermost notebook frame is the cell running the check, whose lines are not the
    attendee's; the others are cells of theirs that the check called."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "ipykernel_" in frame.filename or frame.filename.startswith("<ipython-input")
    ]
    return [frame for frame in frames if frame.filename != frames[0].filename]


def describe(error: BaseException) -> str:
    """The error, and the last line of the attendee's code it went through (not library code,
    not the check's cell)."""
    text = f"{type(error).__name__}: {str(error) or '(no message)'}"
    if len(text) > SHOWN_LENGTH:
        text = text[:SHOWN_LENGTH] + "…"
    if isinstance(error, httpx.ReadError | httpx.RemoteProtocolError):
        text += (
            ". The server closed the connection without an answer: did your code raise? The"
            " server's error is printed under this cell."
        )
    in_your_code = _notebook_frames(error)
    if in_your_code:
        text += f" (raised through your code: `{(in_your_code[-1].line or '').strip()}`)"
    return text


def where_defined(name: str) -> str | None:
    """An import line that would define `name`: a loaded module of that name, or something
    of that name defined in one of accord_app's loaded modules."""
    if "." not in name and name in sys.modules:
        return f"import {name}"
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("accord_app.") and module is not None:
            found = getattr(module, name, None)
            if found is not None and getattr(found, "__module__", None) == module_name:
                return f"from {module_name} import {name}"
    return None


def name_hint(error: NameError) -> str:
    if not _notebook_frames(error):
        return f"{error}: run the exercise cell above first"
    name = error.name or ""
    found = where_defined(name)
    if found:
        return f"{error} in your code: it needs `{found}`"
    return f"{error} in your code: define it, or run the cell that does"


def never_awaited(caught: list[warnings.WarningMessage]) -> list[str]:
    """The names of coroutines that were created and dropped without an `await`."""
    names = []
    for warning in caught:
        found = re.search(r"coroutine '([^']+)' was never awaited", str(warning.message))
        if found:
            names.append(found[1])
    return names


@contextmanager
def check(title: str) -> Iterator[Report]:
    """Collect expectations, print the report, raise CheckFailed if any failed.

    An exception inside the block is a failed check too: NotImplementedError means the exercise
    still holds its TODO; anything else is shown with the line of the notebook that raised it.
    A coroutine dropped without `await` (Python warns when it is garbage-collected, in any
    thread) fails the check and is named: its symptoms, timeouts, point elsewhere.
    """
    report = Report(title)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            yield report
        except NotImplementedError as error:
            hint = f"it still raises NotImplementedError: {error}"
            report.fail("the exercise is solved", hint=hint)
        except NameError as error:
            report.fail("the exercise cell ran", hint=name_hint(error))
        except Exception as error:
            report.fail("the code runs without raising", hint=describe(error))
            # Its frames may hold what the code made and dropped: let them go now.
            traceback.clear_frames(error.__traceback__)
        # A dropped coroutine caught in a reference cycle (an exception's traceback that holds
        # the frame which made it, an object that holds it and is held by it) is freed, and
        # warned about, only when the cycle collector next runs: at some later cell, which the
        # warning would then blame. Collect here, so this check names it.
        gc.collect()
    for name in dict.fromkeys(never_awaited(caught)):
        report.fail(
            "every coroutine is awaited",
            hint=f"{name}() was called without `await`, so it never ran: put `await` before"
            " the call",
        )
    for other in caught:
        if not never_awaited([other]):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if not report.outcomes:
        report.fail("the check looked at something", hint="this check recorded no expectation")
    if not report.failures and not all(outcome.passed for outcome in report.outcomes):
        report.fail("every item was checked", hint="items were skipped, though none failed")
    print(report.render())
    if report.failures:
        count = len(report.failures)
        raise CheckFailed(f"{count} check{'s' if count > 1 else ''} off in: {report.title}")
