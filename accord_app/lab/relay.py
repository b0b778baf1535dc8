"""A slow link, in user space: a TCP relay that holds every byte a fixed delay, each way.

This kernel has no netem (`tc qdisc ... netem` is an unknown qdisc) and no iptables, so a link
is slowed by putting this relay on the path: the proxy dials the relay, which dials the host.
Each direction of each connection is a queue of (time read, bytes): the bytes are written
`delay` seconds after they were read, so the relay adds latency without limiting throughput,
like netem's delay, and keeps the order. Closing is passed on after the same delay.

    with DelayRelay(("10.231.7.1", 0), ("10.231.7.12", 8000), delay=0.05) as relay:
        ...  # dial relay.address instead of 10.231.7.12:8000

With `trickle`, the replies (host to caller) are also written one byte at a time, that many
seconds apart: a reply that keeps coming, too slowly to finish. A timeout per read never fires
on it (a byte arrives well within it); only a deadline for the whole call does.

It runs its own event loop in a thread, so synchronous tests, a synchronous Cluster and a
notebook (chapter 08) can use it alike.
"""

import asyncio
import threading
import time

CHUNK_BYTES = 65536
START_TIMEOUT_SECONDS = 5.0


class DelayRelay:
    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        delay: float,
        trickle: float = 0.0,
    ) -> None:
        self.listen = listen
        self.target = target
        self.delay = delay
        self.trickle = trickle
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-relay")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """host:port where it listens (the port the OS chose, if 0 was asked)."""
        if self._server is None:
            raise RuntimeError("the relay is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> "DelayRelay":
        self._thread.start()
        serving = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._server = serving.result(START_TIMEOUT_SECONDS)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(START_TIMEOUT_SECONDS)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> "DelayRelay":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, *self.listen)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            target_in, target_out = await asyncio.open_connection(*self.target)
        except OSError:  # the host is unreachable: the caller sees its connection closed
            client_out.close()
            self._tasks.discard(task)
            return
        try:
            await self._copy_both_ways(client_in, client_out, target_in, target_out)
        except asyncio.CancelledError:
            # close() cancels the connections still open. Ending quietly here: asyncio
            # (3.11) logs a traceback for a cancelled connection handler otherwise.
            pass
        finally:
            target_out.close()
            client_out.close()
            self._tasks.discard(task)

    async def _copy_both_ways(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        target_in: asyncio.StreamReader,
        target_out: asyncio.StreamWriter,
    ) -> None:
        try:
            async with asyncio.TaskGroup() as both_ways:
                both_ways.create_task(_delayed_copy(client_in, target_out, self.delay))
                both_ways.create_task(
                    _delayed_copy(target_in, client_out, self.delay, self.trickle)
                )
        except* OSError:
            pass  # a reset on either side ends both directions


async def _delayed_copy(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float, trickle: float = 0.0
) -> None:
    """Copy until end of stream, each chunk written `delay` seconds after it was read (and, with
    `trickle`, byte by byte, `trickle` seconds apart)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read_all() -> None:
        while chunk := await source.read(CHUNK_BYTES):
            queue.put_nowait((time.monotonic(), chunk))
        queue.put_nowait((time.monotonic(), b""))

    async def write_when_due() -> None:
        while True:
            read_at, chunk = await queue.get()
            await asyncio.sleep(max(0.0, read_at + delay - time.monotonic()))
            if not chunk:  # end of stream, passed on as late as the bytes before it
                if sink.can_write_eof():
                    sink.write_eof()
                return
            if trickle:
                for index in range(len(chunk)):
                    sink.write(chunk[index : index + 1])
                    await sink.drain()
                    await asyncio.sleep(trickle)
            else:
                sink.write(chunk)
                await sink.drain()

    async with asyncio.TaskGroup() as reading_and_writing:
        reading_and_writing.create_task(read_all())
        reading_and_writing.create_task(write_when_due())
