"""`/inspect`: a live page of the actors of this process, or of the whole cluster.

The page (static/inspect.html, plain ES modules like the chat's frontend) opens one stream of
Server-Sent Events, `/inspect/api/stream`. While it is open, the worker that serves it looks at
the actors twice a second and sends what it saw (`view`: every actor's tile, every worker) and
what happened meanwhile (`happenings`: the runtime's events, module `timeline`):

- a lone process looks at its own runtime;
- a cluster's worker also asks every other worker, through the router, like the activity
  answer does (accord_app/chat/activity.py): `/inspect/api/workers/<n>/look`, which the router
  sends to worker n alone. A worker that does not answer is shown as down ("host down").

Nothing runs while no page is open: the cost of watching is paid while someone watches.

The page shows channel names and who is connected, so it answers loopback clients only
(behind the cluster's router, the address the router saw), a worker's own calls, or a request
carrying `Authorization: Bearer <ACCORD_ADMIN_TOKEN>`; anyone else gets a JSON 403.
"""

import asyncio
import hmac
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse

from accord_app.chat.sharding import shard_key
from accord_app.observe.survey import Census, ChannelNames, Happening, Tile, tile_json, tiles
from accord_app.observe.timeline import Timeline
from accord_app.settings import Settings
from accord_app.web.errors import ApiError
from accord_app.web.frontend import HEADERS, MEDIA_TYPES, STATIC_DIR
from accord_app.web.middleware import client_address, is_internal

# How often an open page gets a new look at the actors.
TICK_SECONDS = 0.5
# How long a look waits for another worker: a dead or cut-off host costs this, once per look.
WORKER_DEADLINE_SECONDS = 1.5

# The chat's headers, but the page may be framed by a notebook served from this machine
# (JupyterLab's IFrame of /inspect); the chat itself never may.
PAGE_HEADERS = {
    **HEADERS,
    "content-security-policy": HEADERS["content-security-policy"].replace(
        "frame-ancestors 'none'",
        "frame-ancestors 'self' http://localhost:* http://127.0.0.1:* http://[::1]:*",
    ),
}


def allowed(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    # Another worker's call: only believed behind the router, whose secret vouches for it.
    if settings.worker is not None and is_internal(request.scope):
        return True
    token = settings.admin_token
    given = request.headers.get("authorization", "")
    if token is not None and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:  # "unknown": no address at all
        return False


def admin_only(request: Request) -> None:
    if not allowed(request):
        raise ApiError(
            403,
            "forbidden",
            "The inspector shows channel ids and who is connected: it answers this machine"
            " only, or a request with the header Authorization: Bearer <ACCORD_ADMIN_TOKEN>.",
        )


router = APIRouter(prefix="/inspect", dependencies=[Depends(admin_only)], include_in_schema=False)


def channel_names(request: Request) -> ChannelNames:
    """One name table per app, made on first use."""
    state = request.app.state
    names: ChannelNames | None = getattr(state, "channel_names", None)
    if names is None:
        names = state.channel_names = ChannelNames(state.channels, state.settings.sharding)
    return names


def census(request: Request) -> Census:
    """One census per app, made on first use."""
    state = request.app.state
    found: Census | None = getattr(state, "census", None)
    if found is None:
        found = state.census = Census(state.channels)
    return found


def timeline(request: Request) -> Timeline:
    """One timeline per app, made on first use."""
    state = request.app.state
    found: Timeline | None = getattr(state, "timeline", None)
    if found is None:
        found = state.timeline = Timeline(
            state.runtime, channel_names(request), state.settings.worker
        )
    return found


@dataclass
class Look:
    """One process's actors, and its timeline's lines since the reader's last look."""

    tiles: list[Tile]
    happenings: list[Happening]
    log: str  # the timeline's id and its last line, for the next look
    seen: int


async def my_look(request: Request, log: str | None, seen: int) -> Look:
    names = channel_names(request)
    lines = timeline(request)
    lines.renew()
    infos = census(request).actors()
    if not names.knows_all([info.id for info in infos]):
        await run_in_threadpool(names.refresh, request.app.state.catalog)
    found = tiles(infos, names, request.app.state.settings.placement)
    return Look(found, lines.since(log, seen), lines.id, lines.last)


async def worker_look(request: Request, number: int, log: str | None, seen: int) -> Look:
    """Worker `number`'s look, asked through the router; ApiError(502) if it does not answer."""
    client: httpx.AsyncClient = request.app.state.router
    path = f"/inspect/api/workers/{number}/look"
    try:
        async with asyncio.timeout(WORKER_DEADLINE_SECONDS):
            response = await client.get(path, params={"log": log or "", "seen": seen})
    except (TimeoutError, httpx.HTTPError) as error:
        reason = f"no answer in {WORKER_DEADLINE_SECONDS:g} s ({type(error).__name__})"
        raise ApiError(502, "worker_unavailable", reason) from None
    if response.status_code != 200:
        try:
            reason = str(response.json()["message"])
        except (ValueError, KeyError, TypeError):
            reason = f"answered {response.status_code}"
        raise ApiError(502, "worker_unavailable", reason)
    body = response.json()
    return Look(
        [Tile(**tile) for tile in body["actors"]],
        [Happening(**line) for line in body["happenings"]],
        body["log"],
        body["seen"],
    )


class Watch:
    """One open page's looks: each look is the view, and what happened since the last one."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.settings: Settings = request.app.state.settings
        self.tiles: dict[str, Tile] = {}
        self.turns: dict[str, tuple[int, float]] = {}  # actor -> (its turns, when seen)
        self.logs: dict[int | None, tuple[str, int]] = {}  # worker -> (its log, last line seen)
        self.down: dict[int, str] = {}  # worker -> why it is counted as down

    async def look(self) -> tuple[dict[str, Any], list[Happening]]:
        placement = self.settings.placement
        now = time.time()
        happenings: list[Happening] = []
        found: list[Tile] = []
        workers = []
        numbers: list[int | None] = (
            [None] if placement is None else list(range(1, len(placement.addresses) + 1))
        )
        answers = await asyncio.gather(
            *(self.ask(number) for number in numbers), return_exceptions=True
        )
        for number, answer in zip(numbers, answers, strict=True):
            address = "this process" if number is None else self.settings.workers[number - 1]
            if isinstance(answer, ApiError) and number is not None:
                workers.append(summary(number, address, [], answer.message))
                if number not in self.down:
                    happenings.append(Happening("host down", now, number, detail=answer.message))
                self.down[number] = answer.message
                continue
            if isinstance(answer, BaseException):
                raise answer
            workers.append(summary(number, address, answer.tiles, None))
            if number is not None and self.down.pop(number, None) is not None:
                happenings.append(Happening("host up", now, number))
            self.logs[number] = (answer.log, answer.seen)
            happenings += answer.happenings
            found += answer.tiles
        view = {
            "at": now,
            "scope": "process" if placement is None else "cluster",
            "sharding": self.settings.sharding.value,
            "me": self.settings.worker,
            "workers": workers,
            "actors": [self.with_rate(tile, now) for tile in found],
        }
        return view, sorted(happenings, key=lambda happening: happening.at)

    async def ask(self, number: int | None) -> Look:
        log, seen = self.logs.get(number, (None, 0))
        if number is None or number == self.settings.worker:
            return await my_look(self.request, log, seen)
        return await worker_look(self.request, number, log, seen)

    def with_rate(self, tile: Tile, now: float) -> dict[str, Any]:
        """The tile, with its turns per second since the last look (None on the first)."""
        before = self.turns.get(tile.id)
        self.turns[tile.id] = (tile.turns, now)
        rate = None
        if before is not None and tile.turns >= before[0] and now > before[1]:
            rate = (tile.turns - before[0]) / (now - before[1])
        return {**tile_json(tile), "turns_per_second": rate}


def summary(
    number: int | None, address: str, found: list[Tile], down: str | None
) -> dict[str, Any]:
    return {
        "number": number,
        "address": address,
        "up": down is None,
        "why_down": down,
        "actors": len(found),
        "awake": sum(tile.awake for tile in found),
        "members": sum(tile.members for tile in found),
        "mailbox": sum(tile.mailbox for tile in found),
    }


@router.get("")
def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "inspect.html", media_type=MEDIA_TYPES[".html"], headers=PAGE_HEADERS
    )


@router.get("/api/view")
async def view(request: Request) -> dict[str, Any]:
    """One look, as JSON: what the stream sends, for scripts and notebooks."""
    seen, _ = await Watch(request).look()
    return seen


@router.get("/api/stream")
async def stream(request: Request) -> StreamingResponse:
    """Server-Sent Events: `view` at each look, `happenings` when something changed."""
    watch = Watch(request)

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        while True:
            seen, happenings = await watch.look()
            yield f"event: view\ndata: {json.dumps(seen)}\n\n"
            if happenings:
                lines = [happening.to_json() for happening in happenings]
                yield f"event: happenings\ndata: {json.dumps(lines)}\n\n"
            await asyncio.sleep(TICK_SECONDS)

    # The stream ends when the page goes: Starlette cancels it when the client disconnects.
    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@router.get("/api/workers/{number}/look")
async def worker_endpoint(
    request: Request, number: int, log: str = "", seen: int = 0
) -> dict[str, Any]:
    """This worker's actors and timeline, for the worker that gathers the cluster's view."""
    settings: Settings = request.app.state.settings
    if settings.worker != number:
        raise ApiError(
            404,
            "not_found",
            f"This is worker {settings.worker}, not {number}: the router sends"
            f" /inspect/api/workers/{number}/ to worker {number} only.",
        )
    found = await my_look(request, log or None, seen)
    return {
        "worker": number,
        "actors": [tile_json(tile) for tile in found.tiles],
        "happenings": [line.to_json() for line in found.happenings],
        "log": found.log,
        "seen": found.seen,
    }


@router.get("/api/where")
async def where(request: Request, channel_id: str) -> dict[str, Any]:
    """Where a request for this channel goes: its actor's key, and the worker that wins it."""
    names = channel_names(request)
    found = names.channels.get(channel_id)
    if found is None:
        # A channel made since the last read: read again, now.
        await run_in_threadpool(lambda: names.refresh(request.app.state.catalog, now=True))
        found = names.channels.get(channel_id)
    if found is None:
        raise ApiError(404, "channel_not_found", f"There is no channel {channel_id!r}.")
    server_id, name = found
    settings: Settings = request.app.state.settings
    key = shard_key(settings.sharding, server_id, channel_id)
    placement = settings.placement
    owner = None if placement is None else placement.owner(key)
    return {
        "channel": name,
        "key": key,
        "actor": names.namespace.id_from_name(key).hex,
        "worker": owner,
        "address": "this process"
        if placement is None or owner is None
        else placement.addresses[owner - 1],
    }


def install_inspector(app: FastAPI) -> None:
    app.include_router(router)
