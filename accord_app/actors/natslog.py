"""The replicated log on NATS JetStream: one stream, one subject per actor.

    log = NatsLog(["nats://127.0.0.1:4222", ...])
    await log.connect()          # creates the stream ACCORD (3 replicas) if it is missing
    runtime = Runtime(data_dir, replication=log, replica_name="host-2")

Every entry is a message on `accord.log.<namespace>.<actor id>`, stored by a majority of the
stream's replicas, each fsyncing before it answers (the servers run with
`sync_interval: always`, see accord_app/cluster/nats.py). An append carries
`Nats-Expected-Last-Subject-Sequence`: the stream refuses it (error 10071) unless the subject's
last message is the one the writer applied last, which is what fences an old owner. It also
carries `Nats-Msg-Id`: an append retried after a lost answer (a leader change) is recognised
as a duplicate and answered with its first sequence, rather than refused as stale.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
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
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a stale expected sequence
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

    async def read(self, key: str, after: int) -> list[Entry]:
        """Every entry of `key` after sequence `after`, in order."""
        last = await self.last(key)
        if last is None or last.seq <= after:
            return []
        return await self._retrying(lambda: self._read(key, after, last.seq))

    async def _read(self, key: str, after: int, last: int) -> list[Entry]:
        """Entries after `after` up to `last`, through a consumer of their own."""
        found: list[Entry] = []
        consumer = await self.js.pull_subscribe(
            self.subject(key),
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=api.AckPolicy.NONE,
                mem_storage=True,
                num_replicas=1,
                inactive_threshold=30.0,
            ),
        )
        try:
            while not found or found[-1].seq < last:
                for message in await consumer.fetch(READ_BATCH, timeout=self.timeout):
                    metadata = message.metadata
                    stamp = metadata.timestamp.timestamp() if metadata.timestamp else 0.0
                    found.append(
                        decode_entry(
                            metadata.sequence.stream, stamp, message.headers or {}, message.data
                        )
                    )
        finally:
            await consumer.unsubscribe()
        return [entry for entry in found if entry.seq <= last]

    async def append(self, key: str, entry: Entry, expected_last: int) -> tuple[int, float]:
        data, headers = encode_entry(entry)
        headers[api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE] = str(expected_last)
        headers[api.Header.MSG_ID] = (
            f"{key}:{expected_last}:{entry.kind}:{entry.epoch}:{entry.batch}:{entry.host}"
        )
        try:
            ack = await self._retrying(
                lambda: self.js.publish(
                    self.subject(key), data, timeout=ATTEMPT_SECONDS, headers=headers
                )
            )
        except nats.js.errors.APIError as error:
            if error.err_code == WRONG_LAST_SEQUENCE:
                raise WrongLastSequence(str(error)) from None
            raise
        return ack.seq, time.time()

    async def load_snapshot(self, key: str) -> Snapshot | None:
        store = self._snapshots
        assert store is not None, "connect() first"
        try:
            found = await self._retrying(lambda: store.get(key))
        except nats.js.errors.ObjectNotFoundError:
            return None
        description = found.info.description or "{}"
        return Snapshot(int(json.loads(description)["seq"]), found.data or b"")

    async def save_snapshot(self, key: str, snapshot: Snapshot) -> None:
        store = self._snapshots
        assert store is not None, "connect() first"
        meta = api.ObjectMeta(name=key, description=json.dumps({"seq": snapshot.seq}))
        await self._retrying(lambda: store.put(key, snapshot.data, meta=meta))

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
        for appends: each expects a sequence and carries a message id."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await call()
            except (*_NO_ANSWER, nats.js.errors.APIError) as error:
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


def _entry(message: api.RawStreamMsg) -> Entry:
    stamp = message.time.timestamp() if message.time else 0.0
    return decode_entry(message.seq or 0, stamp, dict(message.headers or {}), message.data or b"")
