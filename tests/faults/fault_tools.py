"""Helpers of the fault tests that are not fixtures."""

import json
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from accord_app.chat.ratelimit import ChatLimits

GENEROUS = ChatLimits(messages_per_second=1000, burst=1000, client_messages_per_second=1000,
                      client_burst=1000)  # fmt: skip


def refused(url: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """Open a WebSocket that must be refused at the handshake: its HTTP status and JSON body."""
    with pytest.raises(InvalidStatus) as refusal, connect(url, **options):
        pass
    response = refusal.value.response
    return response.status_code, json.loads(response.body)


@contextmanager
def opened(urls: list[str]) -> Iterator[list[ClientConnection]]:
    """Several WebSockets open at once, all closed afterwards."""
    with ExitStack() as stack:
        yield [stack.enter_context(connect(url)) for url in urls]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@contextmanager
def logged(*names: str) -> Iterator[Records]:
    """What the server logs meanwhile. The lab's servers log through their own handlers and
    do not propagate to the root logger, where pytest's caplog listens."""
    records = Records()
    loggers = [logging.getLogger(name) for name in names or ("accord", "accord_app")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(records)


def wait_hibernated(app: Any, timeout: float = 5.0) -> None:
    """Until no channel actor is awake and every actor's file is closed. The server runs in
    another thread, whose dicts may change while they are read: such a read is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            channels = app.state.channels
            if channels.live_count == 0 and not channels.closing_futures():
                return
        except RuntimeError:  # "dictionary changed size during iteration"
            pass
        assert time.monotonic() < deadline, "the actors never hibernated"
        time.sleep(0.01)
