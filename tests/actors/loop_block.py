"""How long the event loop is held at most while N new actors are created (each creation
makes a database file and fsyncs it and its folders). A measurement, not a test:

    .venv/bin/python tests/actors/loop_block.py [actors=200] [rounds=5]

prints the longest time between two turns of the loop, per round and the median."""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from accord_app.actors import Actor, Runtime


class Touched(Actor):
    async def touch(self) -> None:
        self.storage.put("touched", True)


async def longest_block(data_dir: Path, actors: int) -> float:
    runtime = Runtime(data_dir)
    namespace = runtime.namespace("touched", Touched)
    longest = 0.0
    done = False

    async def watch() -> None:
        nonlocal longest
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0)
            longest = max(longest, time.perf_counter() - before)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(namespace.get(namespace.new_unique_id()).touch() for _ in range(actors)))
    done = True
    await watcher
    await runtime.close()
    return longest


def main() -> None:
    actors = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    results = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            results.append(asyncio.run(longest_block(Path(folder), actors)) * 1000)
    shown = ", ".join(f"{ms:.1f}" for ms in results)
    median = statistics.median(results)
    print(f"{actors} new actors: longest loop block {median:.1f} ms median ({shown})")


if __name__ == "__main__":
    main()
