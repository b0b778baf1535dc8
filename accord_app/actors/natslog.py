"""The replicated log on NATS JetStream: one stream, one subject per actor.

    log = NatsLog(["nats://127.0.0.1:4222", ...])
    await log.connect()          # creates the stream ACCORD (3 replicas) if it is missing
    runtime = Runtime(data_dir, replication=log, replica_name="host-2")

Every entry is a message on `accord.log.<namespace>.<actor id>`, stored by a majority of the
stream's replicas, each fsyncing before it answers (the servers run with
`sync_interval: always`, see accord_app/cluster/nats.py). An append carries
`Nats-Expected-Last-Subject-Sequence`: the stream refuses it (error 10071, or 10164 while the
other append is in flight) unless the subject's last message is the one the writer applied
last, which is what fences an old owner. It also
carries `Nats-Msg-Id`, one per append: an append retried after a lost answer (a leader change,
a server too busy to answer in time) is recognised as ours, not taken for a newer owner's.
"""

import asyncio
import base64
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.object_store import ObjectStore

from accord_app.actors.errors import LogUnavailable
from accord_app.actors.replication import (
    DEFAULT_RETENTION_SECONDS,
    Entry,
    Snapshot,
    WrongLastSequence,
    decode_entry,
    encode_entry,
)

T = TypeVar("T")
STREAM = "ACCORD"
# Actors' snapshots, in JetStream's object store (a stream of chunks, replicated the same way).
SNAPSHOTS = "ACCORD_SNAPSHOTS"
# A snapshot bounds the replay: taken after this many batches or bytes of them.
SNAPSHOT_EVERY_BATCHES = 1000
SNAPSHOT_EVERY_BYTES = 4 * 1024 * 1024
SUBJECT_PREFIX = "accord.log."
# Each actor's due alarm, the last message per subject only: what a sweep reads to fire the
# alarms of actors whose host died (a stream of its own, replicated the same way).
ALARMS = "ACCORD_ALARMS"
ALARM_PREFIX = "accord.alarms."
# JetStream's error codes for a stale expected sequence: 10071 when the entry it did not
# expect is stored, 10164 while it is still being replicated (two appends at once: a host
# taking an actor back while another still serves it).
WRONG_LAST_SEQUENCE = {10071, 10164}
RACING = 10164  # the refusal that comes while the other append is still in flight
# A retried append whose first try the stream still holds, unconfirmed (no majority yet).
DUPLICATE_IN_PROCESS = 10158
DEFAULT_TIMEOUT_SECONDS = 3.0
# One attempt's wait for the stream's answer; attempts repeat until the append's deadline.
ATTEMPT_SECONDS = 0.5
READ_BATCH = 256
# What a request meets while the stream has no leader (an election, no majority).
_NO_ANSWER = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,  # 503: JetStream has no leader for now
)


class NatsLog:
    """`replication.ReplicaLog` on a JetStream stream of `replicas` replicas at `servers`."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        replicas: int = 3,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        snapshot_every: tuple[int, int] = (SNAPSHOT_EVERY_BATCHES, SNAPSHOT_EVERY_BYTES),
    ) -> None:
        self.servers = list(servers)
        self.snapshot_every = snapshot_every
        self.replicas = replicas
        self.timeout = timeout
        self.retention_seconds = retention_seconds
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._snapshots: ObjectStore | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> "NatsLog":
        """From ACCORD_REPLICATION (checked by Settings): nats:// URLs separated by commas,
        one per server; 3 replicas, or one per server if there are fewer."""
        servers = [part.strip() for part in url.split(",") if part.strip()]
        return cls(
            servers,
            replicas=min(3, len(servers)),
            timeout=timeout,
            retention_seconds=retention_seconds,
        )

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect to the servers and make sure the stream exists (waiting for the cluster to
        elect its leaders, up to `timeout`)."""
        self._client = await nats.connect(
            servers=self.servers,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
            name="accord",
        )
        self._js = self._client.jetstream(timeout=ATTEMPT_SECONDS * 2)
        config = api.StreamConfig(
            name=STREAM,
            subjects=[SUBJECT_PREFIX + ">"],
            num_replicas=self.replicas,
            storage=api.StorageType.FILE,
            allow_direct=True,
        )
        js = self._js

        alarms = api.StreamConfig(
            name=ALARMS,
            subjects=[ALARM_PREFIX + ">"],
            num_replicas=self.replicas,
            storage=api.StorageType.FILE,
            max_msgs_per_subject=1,
            allow_direct=True,
        )

        async def create() -> None:
            for stream in (config, alarms):
                with contextlib.suppress(nats.js.errors.BadRequestError):
                    await js.add_stream(stream)  # refused if it exists: kept as it is
            try:
                self._snapshots = await js.create_object_store(
                    SNAPSHOTS,
                    api.ObjectStoreConfig(replicas=self.replicas, storage=api.StorageType.FILE),
                )
            except nats.js.errors.BadRequestError:  # it exists with settings of its own
                self._snapshots = await js.object_store(SNAPSHOTS)

        await self._retrying(create, timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.drain()
            self._client = None

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise LogUnavailable("the replicated log is not connected: call connect() first")
        return self._js

    @staticmethod
    def subject(key: str) -> str:
        return SUBJECT_PREFIX + key

    # -- replication.ReplicaLog ----------------------------------------------------------------

    async def last(self, key: str) -> Entry | None:
        try:
            message = await self._retrying(lambda: self.js.get_last_msg(STREAM, self.subject(key)))
        except nats.js.errors.NotFoundError:
            return None
        return _entry(message)

    async def next_entry(self, key: str, seq: int) -> Entry | None:
        """One request to the stream's leader (a follower's copy could lag behind a bookmark
        just handed out)."""
        subject = self.subject(key)
        try:
            message = await self._retrying(
                lambda: self.js.get_msg(STREAM, max(seq, 1), subject=subject, next=True)
            )
        except nats.js.errors.NotFoundError:
            return None
        return _entry(message)

    async def read(self, key: str, after: int, upto: int | None = None) -> list[Entry]:
        if upto is None:
            last = await self.last(key)
            upto = 0 if last is None else last.seq
        if upto <= after:
            return []
        end = upto
        return await self._retrying(lambda: self._read(key, after, end))

    async def _read(self, key: str, after: int, last: int) -> list[Entry]:
        """Entries after `after` up to `last` (an entry of `key`), by batched direct gets:
        one request answers up to READ_BATCH entries, with no consumer to create (which
        costs a round of the cluster's own consensus, ~5 ms, more than a short read). Any
        replica may answer, one that lags with fewer entries: the next request asks again
        from where it stopped, until `last` is in."""
        found: list[Entry] = []
        deadline = time.monotonic() + self.timeout
        while not found or found[-1].seq < last:
            start = (found[-1].seq if found else after) + 1
            batch = [
                _direct_entry(message)
                for message in await self._direct_batch(STREAM, self.subject(key), start)
            ]
            found.extend(entry for entry in batch if entry.seq <= last)
            if not batch:
                if time.monotonic() > deadline:
                    raise nats.errors.TimeoutError
                await asyncio.sleep(0.005)  # a replica still catching up
        return found

    async def _direct_batch(self, stream: str, subject: str, start: int) -> list[Msg]:
        """Up to READ_BATCH messages of `subject` in `stream` from sequence `start` on, in one
        request (to whichever replica answers first)."""
        client = self._client
        if client is None:
            raise LogUnavailable("the replicated log is not connected: call connect() first")
        inbox = client.new_inbox()
        messages: list[Msg] = []
        ended = asyncio.get_running_loop().create_future()

        async def take(message: Msg) -> None:
            if message.headers and message.headers.get("Status") and not ended.done():
                ended.set_result(None)  # 204: the end of the batch; 404: nothing there
            elif not ended.done():
                messages.append(message)

        subscription = await client.subscribe(inbox, cb=take)
        try:
            request = {"seq": start, "next_by_subj": subject, "batch": READ_BATCH}
            await client.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            await asyncio.wait_for(ended, ATTEMPT_SECONDS)
        except TimeoutError:
            raise nats.errors.TimeoutError from None  # no answer: _retrying asks again
        finally:
            await subscription.unsubscribe()
        return messages

    async def append(self, key: str, entry: Entry, expected_last: int) -> tuple[int, float]:
        """Each attempt expects `expected_last` and carries this append's own message id.

        An attempt with no answer in time may still be stored (the server was slow, not
        down): its retry then expects a sequence that is no longer the last. Deduplication
        by message id alone does not save it: a lone NATS server (no cluster) checks the
        expected sequence before the id, and refuses the retry as stale (10071), which the
        only owner would take for a newer owner's epoch and fence itself. So a refusal after
        an unanswered attempt is checked against the log: if the entry after
        `expected_last` is this append's, the append is done. (Not taken: retrying without
        the expected sequence, or taking any refusal after a lost answer for a success;
        either would let a fenced owner append.)
        """
        data, headers = encode_entry(entry)
        message_id = f"{key}:{expected_last}:{entry.kind}:{entry.batch}:{uuid.uuid4().hex}"
        headers[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last)
        headers[api.Header.MSG_ID] = message_id
        unanswered = False  # an attempt went without an answer: it may be stored

        async def attempt() -> int:
            nonlocal unanswered
            try:
                ack = await self.js.publish(
                    self.subject(key), data, timeout=ATTEMPT_SECONDS, headers=headers
                )
            except _NO_ANSWER:
                unanswered = True
                raise
            except nats.js.errors.APIError as error:
                if error.err_code not in WRONG_LAST_SEQUENCE:
                    raise
                stored = (
                    await self._stored_as(key, expected_last, message_id) if unanswered else None
                )
                if stored is not None:
                    return stored
                if unanswered and error.err_code == RACING:
                    raise _Unsettled from None  # perhaps ours, not stored yet: ask again
                raise WrongLastSequence(str(error)) from None
            return ack.seq

        return await self._retrying(attempt), time.time()

    async def _stored_as(self, key: str, expected_last: int, message_id: str) -> int | None:
        """The sequence of `key`'s entry after `expected_last` if it is the message
        `message_id` (None: another's, or none)."""
        try:
            message = await self.js.get_msg(
                STREAM, expected_last + 1, subject=self.subject(key), next=True
            )
        except nats.js.errors.NotFoundError:
            return None
        if (message.headers or {}).get(api.Header.MSG_ID) != message_id:
            return None
        return message.seq

    # Snapshots: each in the object store under `key/<its sequence>`, and beside them an
    # index, `key/snapshots`: an object with no data whose description lists them (one
    # small read to choose the snapshot a rebuild starts from).

    def _store(self) -> ObjectStore:
        if self._snapshots is None:
            raise LogUnavailable("the replicated log is not connected: call connect() first")
        return self._snapshots

    async def _index(self, key: str) -> list[tuple[int, float]]:
        """(sequence, when it was kept) of each of `key`'s snapshots, in order."""
        store = self._store()
        try:
            info = await self._retrying(lambda: store.get_info(_index_name(key)))
        except nats.js.errors.ObjectNotFoundError:
            return []
        return [(int(seq), float(at)) for seq, at in json.loads(info.description or "[]")]

    async def snapshots(self, key: str) -> list[int]:
        return [seq for seq, _ in await self._index(key)]

    async def load_snapshot(self, key: str, seq: int) -> Snapshot | None:
        """The object's description, then its chunks by batched direct gets (as `_read`, no
        consumer to create; the object store keeps them on `$O.<bucket>.C.<nuid>` of stream
        `OBJ_<bucket>`), checked against the object's SHA-256. From a replica that has not
        all of them yet: the object store's own read, from the stream's leader."""
        store = self._store()
        name = _snapshot_name(key, seq)
        try:
            info = await self._retrying(lambda: store.get_info(name))
        except nats.js.errors.ObjectNotFoundError:
            return None
        chunks = f"$O.{SNAPSHOTS}.C.{info.nuid}"
        data = b"".join(
            message.data
            for message in await self._retrying(
                lambda: self._direct_batch(f"OBJ_{SNAPSHOTS}", chunks, 1)
            )
        )
        digest = "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        if info.digest != digest:  # a replica behind, or more chunks than one batch
            try:
                data = (await self._retrying(lambda: store.get(name))).data or b""
            except nats.js.errors.ObjectNotFoundError:
                return None
        return Snapshot(seq, data)

    async def save_snapshot(self, key: str, snapshot: Snapshot) -> None:
        """Keep `snapshot`, then list it in the index. Snapshots from before the retention
        window go, but for the newest of them: bookmarks just inside the window start from
        it. (One owner at a time writes an actor's index; a listing lost to a race with the
        next owner only makes some rebuild read further back.)"""
        store = self._store()
        name = _snapshot_name(key, snapshot.seq)
        await self._retrying(lambda: store.put(name, snapshot.data))
        kept = dict(await self._index(key))
        kept[snapshot.seq] = time.time()
        index = sorted(kept.items())
        oldest = time.time() - self.retention_seconds
        expired = [seq for seq, at in index if at < oldest][:-1]
        index = [(seq, at) for seq, at in index if seq not in expired]
        meta = api.ObjectMeta(name=_index_name(key), description=json.dumps(index))
        await self._retrying(lambda: store.put(_index_name(key), b"", meta=meta))
        for seq in expired:
            with contextlib.suppress(nats.js.errors.ObjectNotFoundError):
                await self._retrying(partial(store.delete, _snapshot_name(key, seq)))

    async def set_alarm(self, key: str, at: float | None) -> None:
        data = json.dumps({"at": at}).encode()
        await self._retrying(
            lambda: self.js.publish(ALARM_PREFIX + key, data, timeout=ATTEMPT_SECONDS)
        )

    async def alarms(self, namespace: str) -> dict[str, float]:
        subjects = f"{ALARM_PREFIX}{namespace}.>"
        return await self._retrying(lambda: self._alarms(subjects))

    async def _alarms(self, subjects: str) -> dict[str, float]:
        info = await self.js.stream_info(ALARMS, subjects_filter=subjects)
        count = len(info.state.subjects or {})
        found: dict[str, float] = {}
        if count == 0:
            return found
        consumer = await self.js.pull_subscribe(
            subjects,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=api.AckPolicy.NONE,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=30.0,
            ),
            stream=ALARMS,
        )
        try:
            seen = 0
            while seen < count:
                for message in await consumer.fetch(READ_BATCH, timeout=self.timeout):
                    seen += 1
                    at = json.loads(message.data)["at"]
                    if at is not None:
                        found[message.subject.removeprefix(ALARM_PREFIX)] = float(at)
        finally:
            await consumer.unsubscribe()
        return found

    async def watch(
        self, key: str, on_entry: Callable[[Entry], None]
    ) -> Callable[[], Awaitable[None]]:
        """A plain subscription: every append to the subject is published on it too."""

        async def seen(message: Msg) -> None:
            headers = message.headers or {}
            if headers.get("Accord-Kind") == "epoch":  # the body is only needed for epochs
                on_entry(decode_entry(0, time.time(), headers, message.data))

        if self._client is None:
            raise LogUnavailable("the replicated log is not connected: call connect() first")
        subscription = await self._client.subscribe(self.subject(key), cb=seen)
        return subscription.unsubscribe

    async def _retrying(self, call: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """`call()` again while the stream has no leader, up to `timeout` (the log's). Safe
        for appends: see append."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await call()
            except (*_NO_ANSWER, _Unsettled, nats.js.errors.APIError) as error:
                if isinstance(error, nats.js.errors.APIError) and not (
                    type(error) in _NO_ANSWER or error.err_code == DUPLICATE_IN_PROCESS
                ):
                    raise
                if time.monotonic() > deadline:
                    raise LogUnavailable(
                        f"no majority of the replicated log's servers ({', '.join(self.servers)})"
                        f" answered within {timeout:g} s: nothing was acknowledged"
                    ) from None
                await asyncio.sleep(0.05)


class _Unsettled(Exception):
    """An append refused while another is in flight, after an attempt of its own went
    unanswered: whose the other one is, the stream has not settled yet."""


def _snapshot_name(key: str, seq: int) -> str:
    return f"{key}/{seq:020d}"


def _index_name(key: str) -> str:
    return f"{key}/snapshots"


def _direct_entry(message: Msg) -> Entry:
    """An entry from a direct get's answer: the stream's sequence and time are headers."""
    headers = message.headers or {}
    stamp = datetime.fromisoformat(_micro(headers["Nats-Time-Stamp"])).timestamp()
    return decode_entry(int(headers["Nats-Sequence"]), stamp, headers, message.data)


def _micro(stamp: str) -> str:
    """RFC 3339 with up to nanoseconds ("...T10:00:00.123456789Z"), as fromisoformat reads
    it: microseconds at most, an explicit offset."""
    stamp = stamp.replace("Z", "+00:00")
    if "." not in stamp:
        return stamp
    head, rest = stamp.split(".", 1)
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    return f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"


def _entry(message: api.RawStreamMsg) -> Entry:
    stamp = message.time.timestamp() if message.time else 0.0
    return decode_entry(message.seq or 0, stamp, dict(message.headers or {}), message.data or b"")
