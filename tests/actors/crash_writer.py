"""Crash-test helper, run as a script: ack durable writes as fast as possible, forever.

    python tests/actors/crash_writer.py DATA_DIR RUN

Each key is printed (and flushed) only after the stub call that wrote it returned, so every
line on stdout is a promise that the write survives a SIGKILL.
"""

import asyncio
import sys
from pathlib import Path

from accord_app.actors import Actor, Runtime

CALLERS = 64


class Ledger(Actor):
    async def record(self, key: str) -> None:
        self.storage.put(key, True)


async def main(data_dir: Path, run: str) -> None:
    runtime = Runtime(data_dir)
    ledgers = runtime.namespace("crash", Ledger)
    stub = ledgers.get(ledgers.id_from_name("victim"))

    async def caller(number: int) -> None:
        for sequence in range(10**9):
            key = f"{run}-{number}-{sequence}"
            await stub.record(key)
            sys.stdout.write(key + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(caller(number) for number in range(CALLERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
