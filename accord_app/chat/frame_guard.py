"""What the frames no handler sees cost: pings, pongs and the fragments of a message.

A member's messages pay a token each in the channel's actor (chat/channel.py). The WebSocket
protocol does work of its own before any handler runs: it answers a ping with a pong, keeps a
fragment until its message is whole, compares a pong with the ping in flight. Unpaid, that
work is free to a flooder. So, on both WebSocket paths (web/fast_websocket.py and
web/asgi_websocket.py):

- every ping, unsolicited pong and fragment (all but a message's last frame) costs a token
  from the budget the connection's messages pay from: its own bucket and its address's. The
  last frame is the message, which pays in its actor; a text the runtime answers by itself
  ("ping") pays here too, through `pay()`;
- a frame that finds the budget empty is refused: a ping gets no pong, a pong is ignored;
  `strikes` refusals in a row close the connection (1008), as refused messages do. A fragment
  that cannot be paid closes it at once: a message cannot lose a part;
- a message has at most MAX_FRAGMENTS fragments (1009, as for a message too big; websockets
  already bounds their total size with max_size);
- a ping is answered only while the peer reads: past the transport's high-water mark its pong
  is not queued, and the ping counts as refused, so a peer that never reads is cut off;
- a connection closed for flooding (any close above, or the channel's own after refused
  messages) puts its address in the HTTP edge's penalty box for FLOOD_PENALTY_SECONDS
  (`penalize`, which web/middleware.py sets at the upgrade): a flooder that connects again at
  once is held, unread, instead of costing a handshake, a join and a cut-off each time.

Pure bookkeeping over websockets' sans-I/O events: the protocols feed it what ServerProtocol
parsed and wrote, and act on what it keeps. Only websockets' public API is used.
"""

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from websockets.frames import Frame, Opcode
from websockets.protocol import Event

# The ASGI scope extension under which the WebSocket endpoint finds the connection's guard.
FRAME_GUARD = "accord.frame_guard"
MAX_FRAGMENTS = 8
# Bytes of a read handed to websockets' parser at a time, on both paths: small enough that
# parsing stops soon after the connection must (1 KiB holds ~100 of the smallest frames), big
# enough that a 16 KiB message takes a few calls.
PARSE_SLICE = 1024
# Before the endpoint arms the guard with the connection's budget, only this many frames pass:
# an honest client sends nothing before the upgrade's answer.
EARLY_FRAMES = 10
STRIKES = 20  # refused frames in a row before the close, until the budget says otherwise
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
# Seconds an address whose connection was closed for flooding waits before any of its new
# connections is read. A client that sends 20 refused frames in a row is not a person typing;
# a reconnecting flooder then costs one cut-off per penalty, not one per attempt.
FLOOD_PENALTY_SECONDS = 10
# A frame's fate: None, paid; False, refused; (code, reason), refused and the connection closes.
Verdict = tuple[int, str] | Literal[False] | None


class Budget(Protocol):
    """Where a connection's frames are paid from (chat/ratelimit.py's ConnectionBudget)."""

    def pay(self) -> bool:
        """Spend one token; False: over the limit, nothing spent."""
        ...


@dataclass(frozen=True)
class Screened:
    """What a parsed batch leaves to the protocol: the events to act on, the bytes to write
    (without the pongs of refused pings), and a close to make, if any."""

    events: list[Event]
    writes: list[bytes]
    close: tuple[int, str] | None = None


class FrameGuard:
    """One connection's frame accounting. `close(code, reason)` ends the connection: the
    protocol's own way to fail it, used when `pay()` runs out of strikes outside a batch."""

    __slots__ = ("_close", "_early", "_fragments", "budget", "penalize", "refused", "strikes")

    def __init__(self, close: Callable[[int, str], None]) -> None:
        self._close = close
        # Puts the connection's address in the penalty box for that many seconds; a no-op
        # unless the HTTP edge sets it (a cluster's router, which carries everyone, is never
        # boxed).
        self.penalize: Callable[[float], None] = _unboxed
        self.budget: Budget | None = None
        self.strikes = STRIKES
        self.refused = 0  # frames refused in a row
        self._early = 0  # frames before arm()
        self._fragments = 0  # of the message being received

    def arm(self, budget: Budget, strikes: int) -> None:
        """From now on frames pay from `budget`; `strikes` refusals in a row close."""
        self.budget, self.strikes = budget, strikes

    def pay(self) -> bool:
        """One token for a frame no handler pays for. False: refused, and counted; out of
        strikes, the connection is closed."""
        verdict = self._pay()
        if verdict is None:
            return True
        if verdict is not False:
            self.flooded()
            self._close(*verdict)
        return False

    def flooded(self) -> None:
        """The connection is being closed for flooding: its address waits in the box."""
        self.penalize(FLOOD_PENALTY_SECONDS)

    def _pay(self) -> Verdict:
        if self.budget is None:
            self._early += 1
            paid = self._early <= EARLY_FRAMES
        else:
            paid = self.budget.pay()
        if paid:
            self.refused = 0
            return None
        return self._refuse()

    def _refuse(self) -> Verdict:
        self.refused += 1
        if self.refused >= self.strikes:
            return CLOSE_POLICY, f"{self.strikes} refused frames in a row"
        return False

    def screen(
        self,
        events: Sequence[Event],
        writes: list[bytes],
        writable: bool,
        closing: bool,
        awaited_pong: bytes | None = None,
    ) -> Screened:
        """Pay for each frame of a parsed batch. `writes` is what ServerProtocol queued while
        parsing it (a pong per ping, in order); `writable`: the peer is reading (the transport
        is under its high-water mark); `closing`: the server sent its close and waits for the
        peer's: any other frame counts as refused, so a flooder that goes on is dropped after
        `strikes` more frames instead of being parsed until the close timeout. The pong that
        answers the server's own keepalive ping (`awaited_pong`, its payload) is free, once."""
        kept: list[Event] = []
        pongs: deque[tuple[bytes, bool]] = deque()  # each ping's pong, and whether it goes
        close: tuple[int, str] | None = None
        for event in events:
            if not isinstance(event, Frame):
                kept.append(event)
                continue
            if (
                awaited_pong is not None
                and event.opcode is Opcode.PONG
                and bytes(event.data) == awaited_pong
            ):
                kept.append(event)  # asked for: the keepalive's answer costs the client nothing
                awaited_pong = None
                continue
            # After a close, nothing more is acted on (or answered): the connection ends.
            verdict = self._frame(event, writable, closing) if close is None else False
            if event.opcode is Opcode.PING:
                pong = Frame(Opcode.PONG, event.data).serialize(mask=False)
                pongs.append((pong, verdict is None))
            if verdict is None:
                kept.append(event)
            elif verdict is not False:
                close = verdict
                self.flooded()
        return Screened(kept, _without_refused_pongs(writes, pongs), close)

    def _frame(self, frame: Frame, writable: bool, closing: bool) -> Verdict:
        opcode = frame.opcode
        if opcode is Opcode.CLOSE:
            return None
        if closing:
            return self._refuse()
        if opcode is Opcode.PING and not writable:
            return self._refuse()  # not reading: no pong queued behind the others
        if opcode in (Opcode.PING, Opcode.PONG):
            return self._pay()
        if frame.fin:  # a message's last frame (or only one): its handler pays for it
            self._fragments = 0
            return None
        self._fragments += 1
        if self._fragments > MAX_FRAGMENTS:
            return CLOSE_TOO_BIG, f"a message in more than {MAX_FRAGMENTS} fragments"
        if self._pay() is not None:
            return CLOSE_POLICY, "rate limited: a fragment over the connection's budget"
        return None


def _unboxed(seconds: float) -> None:
    """No penalty box: served without the HTTP edge (tests, notebooks), or a router's peer."""


def _without_refused_pongs(writes: list[bytes], pongs: deque[tuple[bytes, bool]]) -> list[bytes]:
    """ServerProtocol queued a pong for every ping, in the pings' order, each write one frame:
    drop those of refused pings. Nothing else it writes while parsing (a close, b"") can equal
    a pong's bytes."""
    if all(keep for _, keep in pongs):
        return writes
    kept = []
    for data in writes:
        if pongs and data == pongs[0][0]:
            _, keep = pongs.popleft()
            if not keep:
                continue
        kept.append(data)
    return kept
