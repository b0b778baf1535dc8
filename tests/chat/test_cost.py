"""The optional per-message cost: what each kind holds (the actor, the event loop, a core)."""

import asyncio
import time
from pathlib import Path

import pytest

from accord_app.chat.cost import CostKind, MessageCost
from accord_app.settings import Settings

pytestmark = pytest.mark.anyio


async def ticks_during(cost: MessageCost) -> int:
    """How often another coroutine ran while the cost was spent."""
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    await cost.spend()
    stop = True
    await task
    return ticks


async def test_a_turn_cost_waits_but_lets_the_event_loop_run() -> None:
    started = time.perf_counter()
    # At least once: the ticker's 1 ms timer is due before the cost's 30 ms one, however long
    # a loaded machine keeps this process waiting. A blocking cost lets it run zero times.
    assert await ticks_during(MessageCost(30, CostKind.TURN)) >= 1
    assert time.perf_counter() - started >= 0.03


async def test_a_blocking_cost_holds_the_event_loop_but_not_the_core() -> None:
    cpu, started = time.process_time(), time.perf_counter()
    assert await ticks_during(MessageCost(30, CostKind.BLOCKING)) == 0
    assert time.perf_counter() - started >= 0.03
    assert time.process_time() - cpu < 0.015


async def test_a_cpu_cost_holds_the_core() -> None:
    cpu = time.process_time()
    assert await ticks_during(MessageCost(30, "cpu")) <= 1  # type: ignore[arg-type]
    assert time.process_time() - cpu >= 0.029  # its CPU time, even when the core is shared


async def test_no_cost_by_default() -> None:
    cpu = time.thread_time()
    assert await ticks_during(MessageCost()) == 0  # no wait
    assert time.thread_time() - cpu < 0.005  # and no work
    assert str(MessageCost()) == "no extra cost"
    assert str(MessageCost(20, CostKind.BLOCKING)) == "20 ms blocking"


def test_the_cost_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"ACCORD_WORK_MS": "20", "ACCORD_WORK_KIND": "blocking"}
    assert Settings.from_env(env).message_cost == MessageCost(20, CostKind.BLOCKING)
    with pytest.raises(ValueError, match="ACCORD_WORK_KIND must be one of turn, blocking, cpu"):
        Settings.from_env({"ACCORD_WORK_KIND": "sleep"})
    with pytest.raises(ValueError, match="ACCORD_WORK_MS must be 0 or more"):
        Settings.from_env({"ACCORD_WORK_MS": "-1"})
    with pytest.raises(ValueError, match="0 ms or more"):
        MessageCost(float("nan"))


def test_a_cluster_worker_is_told_who_it_is() -> None:
    env = {
        "ACCORD_WORKER": "2",
        "ACCORD_WORKERS": "127.0.0.1:9001,127.0.0.1:9002",
        "ACCORD_ROUTER_URL": "http://127.0.0.1:8787",
    }
    settings = Settings.from_env(env)
    assert settings.placement is not None and settings.placement.me == 2
    assert Settings.from_env({}).placement is None
    with pytest.raises(ValueError, match="worker 3 is not one of the 2"):
        Settings.from_env({**env, "ACCORD_WORKER": "3"})
    with pytest.raises(ValueError, match="ACCORD_ROUTER_URL"):
        Settings.from_env({key: v for key, v in env.items() if key != "ACCORD_ROUTER_URL"})
    with pytest.raises(ValueError, match="ACCORD_WORKER must be a worker number"):
        Settings.from_env({**env, "ACCORD_WORKER": "two"})
