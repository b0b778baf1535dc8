"""An extra cost per message, off by default: what makes "one actor is one line" measurable.

On a laptop the event loop, not the actor, is usually what runs out first, so all sharding
modes measure about the same. A fixed cost per message changes that, in one of three ways:

- "turn": the actor's turn waits that long (an awaited delay, like a synchronous call to a
  moderation service). The actor is the line; the process and the core stay free, so at 5 ms
  one actor serves ~200 messages/s while 20 actors in one process serve ~20 x 200.
- "blocking": the worker's whole event loop waits (time.sleep), but not the core. One worker
  then behaves like one small machine: K workers on a 2-core laptop act like K machines.
- "cpu": real busy work (that much CPU time) that holds a core, the honest laptop figure,
  bounded by its cores.

Set it with ACCORD_WORK_MS and ACCORD_WORK_KIND; every benchmark report states the setting.
"""

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum


class CostKind(StrEnum):
    TURN = "turn"
    BLOCKING = "blocking"
    CPU = "cpu"


@dataclass(frozen=True)
class MessageCost:
    ms: float = 0.0
    kind: CostKind = CostKind.TURN

    def __post_init__(self) -> None:
        if not self.ms >= 0:  # also refuses NaN
            raise ValueError(f"the cost per message is 0 ms or more, not {self.ms!r}")
        object.__setattr__(self, "kind", CostKind(self.kind))  # a plain "turn" works too

    def __str__(self) -> str:
        return f"{self.ms:g} ms {self.kind.value}" if self.ms else "no extra cost"

    async def spend(self) -> None:
        """Pay the cost once, inside the actor's turn."""
        if not self.ms:
            return
        seconds = self.ms / 1000
        if self.kind == CostKind.TURN:
            await asyncio.sleep(seconds)
        elif self.kind == CostKind.BLOCKING:
            time.sleep(seconds)
        else:
            # Counted in this thread's CPU time, not on the clock: the cost is that much work,
            # and on a busy machine the work takes longer, as it would in production.
            deadline = time.thread_time() + seconds
            while time.thread_time() < deadline:
                pass
