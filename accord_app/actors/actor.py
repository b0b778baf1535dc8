"""What an actor is and what it is given: the `Actor` base class and its `ActorContext`.

An actor sees the runtime only through its context (`self.ctx`), and the context sees the
runtime's side of the actor only through the `Host` protocol below, which `host.ActorHost`
satisfies. So this module imports neither the host nor the runtime: both import it.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from accord_app.actors import ids
from accord_app.actors.sockets import HibernatableWebSocket, Transport
from accord_app.actors.storage import Storage


class Host(Protocol):
    """What a context asks of the runtime's side of its actor (`host.ActorHost` is the one)."""

    auto_response: tuple[str, str] | None

    @property
    def id(self) -> ids.ActorId: ...

    @property
    def storage(self) -> Storage | None: ...

    @property
    def blockers(self) -> list[Callable[[], Awaitable[object]]]: ...

    @property
    def sockets(self) -> list[HibernatableWebSocket]: ...

    def accept_websocket(
        self, transport: Transport, tags: Sequence[str]
    ) -> HibernatableWebSocket: ...

    def call_later(self, delay: float, callback: Callable[[], Awaitable[object]]) -> None: ...


class ActorContext:
    """What an actor can ask of the runtime: `self.ctx` inside the actor."""

    __slots__ = ("_host",)

    def __init__(self, host: Host) -> None:
        self._host = host

    @property
    def id(self) -> ids.ActorId:
        return self._host.id

    @property
    def storage(self) -> Storage:
        storage = self._host.storage
        assert storage is not None, "storage is open while the actor exists"
        return storage

    def block_concurrency_while(self, initialise: Callable[[], Awaitable[object]]) -> None:
        """Run `initialise()` before any other event reaches the actor (from the constructor,
        which cannot await). If it raises, the actor resets and the waiting event gets the error.

        Inside a turn nothing else runs anyway (turns never interleave), so this only matters
        where Durable Objects would let events in: construction.
        """
        self._host.blockers.append(initialise)

    def accept_websocket(
        self, transport: Transport, tags: Sequence[str] = ()
    ) -> HibernatableWebSocket:
        """Hand a connected socket to the runtime; its events come to the websocket_* handlers."""
        return self._host.accept_websocket(transport, tags)

    def call_later(self, delay: float, callback: Callable[[], Awaitable[object]]) -> None:
        """Run `callback()` (a method of this actor) in a turn of its own in `delay` seconds
        (ask from a turn, not from the constructor):
        what the actor sends then passes the output gate like any turn's frames.

        A timer in memory, like Erlang's `Process.send_after` or a Durable Object's setTimeout,
        not a durable alarm: it costs no write, and it is gone if the actor is reset, as is the
        instance whose state it was meant for. While one is pending the actor is not idle, so
        it neither hibernates nor is evicted before its callback has run."""
        self._host.call_later(delay, callback)

    def get_websockets(self, tag: str | None = None) -> list[HibernatableWebSocket]:
        return [ws for ws in self._host.sockets if tag is None or tag in ws.tags]

    def set_websocket_auto_response(self, request: str | None, response: str = "") -> None:
        """Answer the text frame `request` with `response` without waking the actor (a ping).
        None removes it."""
        self._host.auto_response = None if request is None else (request, response)


class Actor:
    """Base class of actors. Public `async def` methods are callable through stubs; the
    handlers below are called by the runtime. State that must survive goes to `self.storage`:
    the instance itself is rebuilt after hibernation or a reset.

    Storage writes happen inside turns only. A task the actor starts may read, but a write it
    makes once its turn has ended raises StorageError: it would be committed by no one. To
    write later, have the task call the actor through its stub (a turn of its own)."""

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx

    @property
    def storage(self) -> Storage:
        return self.ctx.storage

    async def alarm(self) -> None:
        """Runs when the alarm set with `storage.set_alarm()` is due."""

    async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
        """A message arrived on a socket accepted with `ctx.accept_websocket()`."""

    async def websocket_close(self, ws: HibernatableWebSocket, code: int, reason: str) -> None:
        """The peer closed `ws` (it is already gone from `ctx.get_websockets()`)."""

    async def websocket_error(self, ws: HibernatableWebSocket, error: Exception) -> None:
        """Receiving from `ws` failed; the socket is closed and gone."""

    @classmethod
    def websocket_refused(
        cls, ws: HibernatableWebSocket, data: str | bytes, error: Exception
    ) -> None:
        """A message that arrived on `ws` came to nothing: the actor could not start (its
        storage is unavailable), `websocket_message` raised, or the commit that would have
        kept its writes failed. Say so to the client with `ws.send(...)`. A class method:
        there may be no instance to ask. By default the client is told nothing."""

    @classmethod
    def websocket_auto_response_paid(cls, ws: HibernatableWebSocket) -> bool:
        """May the runtime answer this frame on `ws` with the auto-response? Called instead of
        waking the actor, so a class method; an actor that limits what clients may ask
        charges the frame here (False: no answer). By default every one is answered."""
        return True
