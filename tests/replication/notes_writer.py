"""A host that records numbers in one replicated actor until it is killed or fenced, printing
a line for each answer: `ack N EPOCH`, `fenced N` (then it stops), `error N KIND`.

    python notes_writer.py NATS_URLS DATA_DIR HOST_NAME FIRST_NUMBER

A few calls are in flight at once, as a busy channel's members would have, so group commits
carry several numbers."""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from replica_tools import LOG_TIMEOUT, Notes

from accord_app.actors import ActorError, Runtime
from accord_app.actors.errors import Fenced
from accord_app.actors.natslog import NatsLog

IN_FLIGHT = 4


async def main(urls: str, folder: str, name: str, first: int) -> None:
    log = NatsLog(urls.split(","), timeout=LOG_TIMEOUT)
    await log.connect()
    runtime = Runtime(folder, replication=log, replica_name=name)
    notes = runtime.namespace("notes", Notes)
    stub = notes.get(notes.id_from_name("a"))
    numbers = iter(range(first, first + 10_000_000))
    fenced = asyncio.Event()

    async def writer() -> None:
        while not fenced.is_set():
            number = next(numbers)
            try:
                epoch = await stub.record(number)
            except Fenced:
                print(f"fenced {number}", flush=True)
                fenced.set()
            except ActorError as error:
                print(f"error {number} {type(error).__name__}", flush=True)
            else:
                print(f"ack {number} {epoch}", flush=True)

    print("ready", flush=True)
    await asyncio.gather(*(writer() for _ in range(IN_FLIGHT)))
    print("stopped", flush=True)


if __name__ == "__main__":
    urls, folder, name, first = sys.argv[1:5]
    asyncio.run(main(urls, folder, name, int(first)))
