"""Run an ASGI app with uvicorn in a background thread, so a notebook can call it.

The notebook's kernel already runs an event loop in the main thread, so the server gets its own
thread and loop. It listens on 127.0.0.1 on a port the OS picks (port 0), which never clashes
with another chapter, another attendee's server or `make run`.
"""

import asyncio
import contextlib
import logging
import socket
import threading
import time
import traceback
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

DEFAULT_START_TIMEOUT = 10.0


class OneLineErrors(logging.Formatter):
    """Log an exception as its last line. An unsolved exercise raises in every request, and
    seventy lines of framework traceback per request would bury the self-check's report."""

    def formatException(self, ei: Any) -> str:
        return "".join(traceback.format_exception_only(ei[0], ei[1])).strip()


_SHORT = {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
# uvicorn's log config for servers started here: warnings and errors, one line each.
LAB_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"()": OneLineErrors, "format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "short",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {name: _SHORT for name in ["uvicorn", "uvicorn.error", "accord", "accord_app"]},
}

# Servers started by serve(), by name: running a cell again replaces its server, not adds one.
_running: dict[str, "BackgroundServer"] = {}


class ServerStartError(RuntimeError):
    """The app did not come up: its start-up raised, or it missed the deadline."""


class BackgroundServer:
    """One uvicorn server in a daemon thread. Use as a context manager, or start() and stop()."""

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any
    ) -> None:
        self.app = app
        self.uvicorn_options = uvicorn_options
        self.host = host
        self.requested_port = port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = DEFAULT_START_TIMEOUT) -> "BackgroundServer":
        # Binding here, not in uvicorn, tells us the port before the thread starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as error:
            sock.close()
            raise ServerStartError(
                f"cannot listen on {self.host}:{self.requested_port}: {error.strerror}"
            ) from error
        self.port = sock.getsockname()[1]
        options = {
            "log_level": "warning",
            "log_config": LAB_LOG_CONFIG,
            "lifespan": "on",
            **self.uvicorn_options,
        }
        config = uvicorn.Config(self.app, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"accord-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                reason = repr(self._error) if self._error else "its start-up failed, see the log"
                raise ServerStartError(f"the app stopped before serving: {reason}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"the app did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as error:  # reported by start(); a thread has nowhere else to say it
            self._error = error
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to shut down (finishing open requests) and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)

    def __enter__(self) -> "BackgroundServer":
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<BackgroundServer {self.url} {state}>"


def serve(
    app: ASGIApp,
    name: str = "default",
    timeout: float = DEFAULT_START_TIMEOUT,
    **uvicorn_options: Any,
) -> BackgroundServer:
    """Start `app` in the background; a server started earlier under `name` is stopped first."""
    previous = _running.pop(name, None)
    if previous is not None:
        previous.stop()
    server = BackgroundServer(app, **uvicorn_options).start(timeout)
    _running[name] = server
    print(f"Serving on {server.url}")
    return server


def stop_all() -> None:
    while _running:
        _, server = _running.popitem()
        with contextlib.suppress(Exception):
            server.stop()
