"""Watching actors from a notebook: the inspector page in the notebook, or a live view in the
kernel when there is no server to ask.

- `inspector(url)`: the app's /inspect page in an IFrame, live in JupyterLab (the page may be
  framed by pages of this machine only). Run headless, the cell just keeps the frame's HTML.
- `LiveActors(namespace)`: a table of a namespace's actors, redrawn in the cell's output each
  time one wakes, hibernates, is evicted or gains or loses a socket (runtime.observe), with the
  last events under it.
- `DeepestMailbox(url)`: asks /inspect/api/view four times a second, in a thread, while a load
  test runs, and keeps the deepest mailbox it saw and whose it was.
"""

import html
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from IPython.display import IFrame, display

from accord_app.actors import ActorEvent, EventKind, Namespace

FRAME_HEIGHT = 460
# The runtime's events that change the table (turns and commits would redraw it constantly).
REDRAWN_ON = {
    EventKind.WOKE,
    EventKind.HIBERNATED,
    EventKind.EVICTED,
    EventKind.SOCKET_OPENED,
    EventKind.SOCKET_CLOSED,
}
LAST_EVENTS = 6


def inspector(url: str, height: int = FRAME_HEIGHT) -> IFrame:
    """The app at `url` (a server or the cluster's router): its inspector page."""
    return IFrame(f"{url}/inspect", width="100%", height=height)


class LiveActors:
    """A namespace's actors in the cell's output, redrawn as they change; close() stops it."""

    def __init__(self, namespace: Namespace[Any]) -> None:
        self.namespace = namespace
        self.events: deque[str] = deque(maxlen=LAST_EVENTS)
        # IPython's display() has no type hints; its handle's update() redraws the output.
        self.handle: Any = display(self.bundle(), raw=True, display_id=True)  # type: ignore[no-untyped-call]
        self.stop: Callable[[], None] | None = namespace.runtime.observe(self.on_event)

    def on_event(self, event: ActorEvent) -> None:
        if event.kind in REDRAWN_ON and event.namespace == self.namespace.name:
            self.events.append(f"{event.kind.value}: {event.name or event.actor_id[:12]}")
            self.handle.update(self.bundle(), raw=True)

    def bundle(self) -> dict[str, str]:
        """The table as HTML for JupyterLab and as text for a terminal or a headless run."""
        rows = [
            (info.name or info.id[:12], "awake" if info.live else "hibernated", info.websockets)
            for info in self.namespace.list_actors()
        ]
        text = [f"{name:20} {state:10} sockets {sockets}" for name, state, sockets in rows]
        cells = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{state}</td><td>{sockets}</td></tr>"
            for name, state, sockets in rows
        )
        table = (
            "<table><tr><th>actor</th><th>state</th><th>sockets</th></tr>"
            f"{cells}</table><pre>{html.escape(chr(10).join(self.events))}</pre>"
        )
        return {"text/plain": "\n".join([*text, *self.events]), "text/html": table}

    def close(self) -> None:
        if self.stop is not None:
            self.stop()
            self.stop = None


class DeepestMailbox:
    """`with DeepestMailbox(url) as deepest:` during a load test; then `deepest.depth` and
    `deepest.name`: the deepest mailbox the inspector showed, and whose."""

    def __init__(self, url: str, every: float = 0.25) -> None:
        self.client = httpx.Client(base_url=url, timeout=2.0, trust_env=False)
        self.every = every
        self.depth = 0
        self.name = ""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                actors = self.client.get("/inspect/api/view").json()["actors"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue  # a worker restarting: the next look will do
            for actor in actors:
                if actor["mailbox"] > self.depth:
                    self.depth, self.name = actor["mailbox"], actor["name"]

    def __enter__(self) -> "DeepestMailbox":
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done.set()
        self.thread.join()
        self.client.close()
