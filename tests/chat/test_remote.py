"""RemoteActor against a real server on loopback: deadlines, typed errors, and retries only
where a repeat is safe."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from accord_app.chat.http.remote import CallRefused, CallTimedOut, HostUnreachable, RemoteActor
from accord_app.lab.server import BackgroundServer

pytestmark = pytest.mark.anyio


def flaky_app(calls: list[str]) -> FastAPI:
    """Answers 503 to the first two calls of each path, then 200; /slow never answers in
    time; /refuse is a 409 with the API's error body."""
    app = FastAPI()

    @app.api_route("/busy", methods=["GET", "POST"])
    async def busy(request: Request) -> JSONResponse:
        calls.append(request.headers.get("idempotency-key") or request.method)
        if len(calls) <= 2:
            return JSONResponse({"message": "busy", "code": "overloaded"}, status_code=503)
        return JSONResponse({"done": len(calls)})

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(1.5)
        return {"late": True}

    @app.get("/trickle")
    async def trickle() -> StreamingResponse:
        async def bytes_slowly() -> AsyncIterator[bytes]:
            for _ in range(20):  # a byte every 0.1 s: no single read ever waits long
                await asyncio.sleep(0.1)
                yield b" "

        return StreamingResponse(bytes_slowly(), media_type="application/json")

    @app.post("/refuse")
    async def refuse() -> JSONResponse:
        calls.append("refuse")
        return JSONResponse({"message": "no such thing", "code": "conflict"}, status_code=409)

    return app


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def server(calls: list[str]) -> Iterator[BackgroundServer]:
    with BackgroundServer(flaky_app(calls)) as running:
        yield running


async def remote_at(url: str) -> RemoteActor:
    return RemoteActor(httpx.AsyncClient(base_url=url, trust_env=False), "channel:c1", "worker 2")


async def test_an_idempotent_call_is_retried_until_it_is_answered(
    server: BackgroundServer, calls: list[str]
) -> None:
    remote = await remote_at(server.url)
    async with remote.router:
        answer = await remote.call(
            "POST", "/busy", deadline=time.monotonic() + 5, idempotency_key="k-1"
        )
    assert answer == {"done": 3} and calls == ["k-1"] * 3


async def test_a_get_is_retried_too(server: BackgroundServer, calls: list[str]) -> None:
    remote = await remote_at(server.url)
    async with remote.router:
        assert await remote.call("GET", "/busy", deadline=time.monotonic() + 5) == {"done": 3}


async def test_a_call_without_a_key_is_made_once_and_its_refusal_named(
    server: BackgroundServer, calls: list[str]
) -> None:
    remote = await remote_at(server.url)
    async with remote.router:
        with pytest.raises(CallRefused) as refused:
            await remote.call("POST", "/busy", deadline=time.monotonic() + 5)
        assert calls == ["POST"]
        assert refused.value.code == "overloaded" and refused.value.status == 503
        assert str(refused.value) == "The actor channel:c1 on worker 2: 503 overloaded: busy"
        with pytest.raises(CallRefused) as refused:  # a real answer: never repeated
            await remote.call("POST", "/refuse", deadline=time.monotonic() + 5, idempotency_key="x")
        assert calls == ["POST", "refuse"] and refused.value.code == "conflict"


async def test_a_slow_host_fails_by_the_deadline(server: BackgroundServer) -> None:
    remote = await remote_at(server.url)
    async with remote.router:
        started = time.monotonic()
        with pytest.raises(CallTimedOut) as late:
            await remote.call("GET", "/slow", deadline=started + 0.5)
        assert time.monotonic() - started < 1.5
    assert "channel:c1 on worker 2" in str(late.value)


async def test_a_reply_that_trickles_in_fails_by_the_deadline_too(server: BackgroundServer) -> None:
    remote = await remote_at(server.url)
    async with remote.router:
        started = time.monotonic()
        with pytest.raises(CallTimedOut):
            await remote.call("GET", "/trickle", deadline=started + 0.5)
        assert time.monotonic() - started < 1.5  # the reply alone takes 2 s


async def test_a_host_nobody_listens_on_is_unreachable_and_retried_only_until_the_deadline() -> (
    None
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    remote = await remote_at(f"http://127.0.0.1:{port}")
    async with remote.router:
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as unreachable:
            await remote.call("GET", "/anything", deadline=started + 0.3)
        assert time.monotonic() - started < 1.0
    assert unreachable.value.code == "host_unreachable"
    assert "worker 2" in str(unreachable.value)
