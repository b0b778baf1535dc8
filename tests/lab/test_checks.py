"""The self-check reports: what a wrong answer is shown as, and which line gets the blame."""

import gc
import linecache
import sqlite3
import threading
import warnings
from types import CodeType

import httpx
import pytest

from accord_app.lab.checks import CheckFailed, Report, check, describe, name_hint, same, shown


def test_equal_tells_true_from_one_though_python_does_not() -> None:
    report = Report("t")
    assert not report.equal(1, True, "a bool")
    assert not report.equal([True, 2], [1, 2], "in a list")
    assert not report.equal({"api": 1}, {"api": True}, "in a dict")
    assert report.equal({"api": True, "n": [1, (2, 3)]}, {"api": True, "n": [1, (2, 3)]}, "same")
    assert "not the same type" in report.failures[0].hint


@pytest.mark.parametrize(
    ("actual", "expected"),
    [([1, 2], (1, 2)), ([1], [1, 1]), ({"a": 1}, {"a": 1, "b": 2}), (0, False), (2.0, 2.5)],
)
def test_same_refuses_what_differs(actual: object, expected: object) -> None:
    assert not same(actual, expected)


def test_rows_and_coroutines_are_named_not_shown_as_a_bare_repr() -> None:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT 1 AS number, 'left port' AS text").fetchall()
    assert shown(rows[0]) == "a sqlite3.Row (1, 'left port') (turn rows into tuples or dicts)"
    assert "a list of 1 sqlite3.Row objects" in shown(rows)

    async def entries() -> list[int]:
        return []

    pending = entries()
    assert "a coroutine of" in shown(pending) and "not awaited" in shown(pending)
    assert shown([pending, 1]) == "a list of 2 coroutines (calls that were not awaited)"
    pending.close()
    assert shown("x" * 1000).endswith("…") and len(shown("x" * 1000)) == 301


def test_items_after_a_failure_are_skipped_neither_ticked_nor_hinted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(CheckFailed, match="1 check off"), check("t") as report:
        if not report.expect(False, "the first step", hint="its own hint"):
            report.skip("the first step failed", "a later step", "the last step")
    printed = capsys.readouterr().out
    assert "✅" not in printed
    assert printed.count("skipped: the first step failed") == 2
    assert "0 of 3 checks passed." in printed


def test_a_report_with_skips_but_no_failure_still_fails() -> None:
    with pytest.raises(CheckFailed), check("t") as report:
        report.expect(True, "a step")
        report.skip("nothing failed", "a later step")


def test_a_servers_refusal_shows_its_code_and_description() -> None:
    class APIError(Exception):
        err_code, description = 10071, "wrong last sequence: 0"

    assert shown(APIError()) == "APIError (code 10071: wrong last sequence: 0)"


def test_a_coroutine_never_awaited_fails_the_check_and_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def join() -> None:
        return None

    def forgets_the_await() -> None:
        join()  # the coroutine is dropped at once: Python warns it was never awaited

    def in_another_thread() -> None:
        thread = threading.Thread(target=forgets_the_await)
        thread.start()
        thread.join()

    def keeps_it_in_a_cycle() -> None:
        owner: dict[str, object] = {"seq": join()}  # as Owner.apply(seq, ...) would keep it
        owner["self"] = owner  # freed only by the cycle collector

    def raises_while_holding_it() -> None:
        ack = join()
        raise AttributeError(f"{ack!r} has no attribute 'seq'")  # its frame holds the coroutine

    # The cycle collector stays off: the check must free what the exercise dropped itself, or
    # the warning would come at whichever later cell the collector happens to run in.
    gc.disable()
    try:
        for body in [forgets_the_await, in_another_thread, keeps_it_in_a_cycle,
                     raises_while_holding_it]:  # fmt: skip
            with pytest.raises(CheckFailed), check("t") as report:
                report.expect(True, "the rest passes")
                body()
            printed = capsys.readouterr().out
            assert "❌ every coroutine is awaited" in printed, body.__name__
            assert "join() was called without `await`" in printed
    finally:
        gc.enable()


def test_other_warnings_are_still_shown() -> None:
    with pytest.warns(UserWarning, match="unrelated"), check("t") as report:
        report.expect(True, "fine")
        warnings.warn("unrelated", UserWarning, stacklevel=1)


def test_an_empty_error_message_and_a_dropped_connection_say_what_happened() -> None:
    text = describe(httpx.ReadError(""))
    assert text.startswith("ReadError: (no message)")
    assert "closed the connection without an answer" in text


def cell(source: str, name: str) -> CodeType:
    """`source` compiled as IPython compiles a cell: a file name like /tmp/ipykernel_12/345.py,
    its lines in linecache."""
    filename = f"/tmp/ipykernel_1/{name}.py"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def test_the_checks_own_cell_is_not_quoted_as_the_attendees_code() -> None:
    check_cell = cell("def run():\n    attendee()\n", "check")
    attendee_cell = cell("def attendee():\n    1 / 0\n", "mine")
    namespace: dict[str, object] = {}
    exec(attendee_cell, namespace)
    exec(check_cell, namespace)
    with pytest.raises(ZeroDivisionError) as raised:
        namespace["run"]()  # type: ignore[operator]
    assert describe(raised.value).endswith("(raised through your code: `1 / 0`)")

    exec(cell("def run():\n    1 / 0\n", "check"), namespace)
    with pytest.raises(ZeroDivisionError) as raised:
        namespace["run"]()  # type: ignore[operator]
    assert "your code" not in describe(raised.value)


def test_a_name_missing_in_the_attendees_code_gets_its_import() -> None:
    import accord_app.chat.protocol  # noqa: F401 (loaded, as in the chapters' kernels)

    attendee_cell = cell("def send():\n    encode({})\n", "mine")
    check_cell = cell("def run():\n    send()\n", "check")
    namespace: dict[str, object] = {}
    exec(attendee_cell, namespace)
    exec(check_cell, namespace)
    with pytest.raises(NameError) as raised:
        namespace["run"]()  # type: ignore[operator]
    assert "from accord_app.chat.protocol import encode" in name_hint(raised.value)

    exec(cell("def send():\n    asyncio.sleep(0)\n", "mine"), namespace)
    with pytest.raises(NameError) as raised:
        namespace["run"]()  # type: ignore[operator]
    assert "`import asyncio`" in name_hint(raised.value)

    exec(cell("def run():\n    exercise()\n", "check"), namespace)
    with pytest.raises(NameError) as raised:
        namespace["run"]()  # type: ignore[operator]
    assert "run the exercise cell above first" in name_hint(raised.value)
