"""Chapter 09's hosts: small processes that own channels whose log is a JetStream subject.

Each host answers requests on `host.<n>.send` ({"channel", "id", "text"}). The first request for
a channel activates it there: the host reads the channel's log from the start, applies every
entry, and appends "epoch E opened by host n" with the chapter's own `append` (exercise 9.2).
Then each message is stored with the chapter's `store` (exercise 9.3) and the reply carries its
sequence. An append that JetStream refuses because its expected sequence is stale means that a
newer owner exists: the host fences itself, drops the channel and answers "moved".

The exercises' code runs in these processes (a check must be able to pause one with SIGSTOP or
kill it with kill -9, which it cannot do to the notebook's own kernel): `OwnerHost` writes the
cells that define them to a file that the process runs first. Every acknowledgement, epoch and
fence is also written, a JSON line each, to the host's events file, for the checks to count.

    python -m accord_app.lab.owner --host 1 --servers nats://127.0.0.1:4222,... \
        --code cells.py --events host-1.jsonl
"""

import argparse
import asyncio
import contextlib
import json
import linecache
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError

from accord_app.lab.jetstream import connect

STREAM = "CHANNELS"
# JetStream's error codes for a stale expected sequence: 10164 when the append it did not
# expect is still being replicated (two owners appending at the same moment).
WRONG_LAST_SEQUENCE = {10071, 10164}
# A host gives up on a JetStream request after this long (the client sends the message again):
# while the stream elects a new leader, a request to the old one gets no answer at all.
REQUEST_TIMEOUT_S = 1.0


@dataclass
class Owner:
    """What a host knows of a channel it owns: the state rebuilt from the channel's log."""

    subject: str
    host: int
    epoch: int = 0
    applied: int = 0  # the stream sequence of the last entry of the log applied here
    acked: int = 0  # the sequence of this owner's own last acknowledged append (0: none yet)
    messages: dict[str, int] = field(default_factory=dict)  # message id -> its sequence

    def apply(self, seq: int, entry: dict[str, Any]) -> None:
        if entry.get("kind") == "epoch":
            self.epoch = max(self.epoch, int(entry["epoch"]))
        elif entry.get("kind") == "message":
            self.messages.setdefault(str(entry["id"]), seq)
        self.applied = seq


def subject_of(channel: str) -> str:
    return f"chan.{channel}"


async def ensure_stream(js: JetStreamContext, replicas: int, deadline_s: float = 30.0) -> None:
    """The stream of every channel's log, with `replicas` copies (waits for the cluster to
    elect its meta leader, a few seconds after it starts)."""
    config = StreamConfig(name=STREAM, subjects=["chan.>"], num_replicas=replicas)
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            await js.add_stream(config)
            return
        except (NatsTimeout, APIError, NoRespondersError):
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.25)


async def read_log(
    js: JetStreamContext, subject: str, deadline_s: float = 20.0
) -> list[tuple[int, dict[str, Any]]]:
    """Every entry of a channel's log, in order: (stream sequence, entry). Entry by entry, each
    the next one of the subject after the last read; a request that gets no answer (the stream
    is electing a leader) is asked again, until `deadline_s`."""
    entries: list[tuple[int, dict[str, Any]]] = []
    give_up = time.monotonic() + deadline_s
    while True:
        after = entries[-1][0] + 1 if entries else 1
        try:
            found = await js.get_msg(STREAM, seq=after, subject=subject, next=True)
        except NotFoundError:
            return entries
        except NatsTimeout:
            if time.monotonic() > give_up:
                raise
            continue
        entries.append((found.seq or after, json.loads(found.data or b"{}")))


def is_fenced(error: BaseException) -> bool:
    return isinstance(error, APIError) and error.err_code in WRONG_LAST_SEQUENCE


def event(path: Path, **fields: object) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"t": time.time(), **fields}) + "\n")


# Exercise 9.2's hosts store every message as it comes (9.3 adds what a repeat needs).
APPEND_ONLY_STORE = """
async def store(js, owner, message_id, text):
    entry = {"kind": "message", "epoch": owner.epoch, "id": message_id, "text": text}
    seq = await append(js, owner, entry)
    owner.apply(seq, entry)
    return seq
"""


class Host:
    """One host's channels, each served one request at a time."""

    def __init__(self, number: int, js: JetStreamContext, code: dict[str, Any], events: Path):
        self.number, self.js, self.code, self.events = number, js, code, events
        self.owners: dict[str, Owner] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    async def activate(self, channel: str) -> Owner:
        owner = Owner(subject_of(channel), self.number)
        for seq, entry in await read_log(self.js, owner.subject):
            owner.apply(seq, entry)
        entry = {"kind": "epoch", "epoch": owner.epoch + 1, "host": self.number}
        seq = await self.code["append"](self.js, owner, entry)
        owner.acked = seq
        owner.apply(seq, entry)
        event(self.events, event="epoch", channel=channel, epoch=owner.epoch, seq=seq)
        return owner

    async def send(self, channel: str, message_id: str, text: str) -> dict[str, Any]:
        async with self.locks.setdefault(channel, asyncio.Lock()):
            try:
                if channel not in self.owners:
                    self.owners[channel] = await self.activate(channel)
                owner = self.owners[channel]
                seq = await self.code["store"](self.js, owner, message_id, text)
                owner.acked = max(owner.acked, seq)
            except Exception as error:
                self.owners.pop(channel, None)  # whatever happened, rebuild from the log
                if is_fenced(error):
                    event(self.events, event="fenced", channel=channel)
                    return {"error": "moved"}
                event(self.events, event="error", channel=channel, error=repr(error))
                return {"error": repr(error)}
            event(self.events, event="ack", channel=channel, id=message_id, seq=seq,
                  epoch=owner.epoch)  # fmt: skip
            return {"seq": seq, "epoch": owner.epoch, "host": self.number}

    async def serve(self, message: Msg) -> None:
        request = json.loads(message.data)
        answer = await self.send(request["channel"], str(request["id"]), str(request["text"]))
        await message.respond(json.dumps(answer).encode())


def load_cells(path: Path) -> dict[str, Any]:
    """Run the chapter's cells (their imports first) and return what they define."""
    namespace: dict[str, Any] = {"__name__": "chapter09"}
    prelude = "import asyncio, json, time, uuid\nfrom accord_app.lab.owner import Owner\n"
    exec(compile(prelude + path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


async def run_host(number: int, servers: list[str], code: Path, events: Path) -> None:
    connection = await connect(servers)
    host = Host(number, connection.jetstream(timeout=REQUEST_TIMEOUT_S), load_cells(code), events)
    tasks: set[asyncio.Task[None]] = set()

    async def on_request(message: Msg) -> None:
        task = asyncio.create_task(host.serve(message))  # channels are served concurrently
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await connection.subscribe(f"host.{number}.send", cb=on_request)
    await connection.flush()
    event(events, event="ready", host=number, pid=os.getpid())
    await asyncio.Event().wait()


def cell_of(function: Callable[..., Any]) -> str:
    """The whole notebook cell that defined `function` (IPython keeps each cell's source in
    linecache under the file name its code carries), so helpers defined beside it come too."""
    filename = function.__code__.co_filename
    lines = linecache.getlines(filename)
    if not lines:
        raise ValueError(f"the source of {function.__name__} is not available")
    return "".join(lines)


class OwnerHost:
    """The notebook's handle on one host process: start, send, pause, resume, kill."""

    def __init__(self, number: int, servers: list[str], folder: Path, *cells: str) -> None:
        self.number, self.servers, self.folder = number, servers, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.code = folder / f"host-{number}-cells.py"
        self.code.write_text("\n\n".join(cells), encoding="utf-8")
        self.events_path = folder / f"host-{number}.jsonl"
        self.events_path.write_text("", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> "OwnerHost":
        log = (self.folder / f"host-{self.number}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "accord_app.lab.owner", "--host", str(self.number),
             "--servers", ",".join(self.servers), "--code", str(self.code),
             "--events", str(self.events_path)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while not any(e["event"] == "ready" for e in self.events()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.folder / f"host-{self.number}.log").read_text(errors="replace")
                raise RuntimeError(f"host {self.number} did not start:\n{text[-3000:]}")
            time.sleep(0.05)
        return self

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        lines = self.events_path.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [e for e in found if kind is None or e["event"] == kind]

    def _signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, number)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9: the host is gone mid-turn, no goodbye."""
        if self.process is not None:
            self._signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


async def send(
    nc: Client, host: int, channel: str, message_id: str, text: str, timeout_s: float = 2.0
) -> dict[str, Any]:
    """Ask `host` to store a message; {"seq", "epoch", "host"} or {"error": ...}."""
    body = json.dumps({"channel": channel, "id": message_id, "text": text}).encode()
    try:
        reply = await nc.request(f"host.{host}.send", body, timeout=timeout_s)
    except NoRespondersError:
        return {"error": "no host"}
    except NatsTimeout:
        return {"error": "timeout"}
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", type=int, required=True)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--code", type=Path, required=True)
    parser.add_argument("--events", type=Path, required=True)
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_host(arguments.host, arguments.servers.split(","), arguments.code,
                     arguments.events)
        )  # fmt: skip


if __name__ == "__main__":
    main()
