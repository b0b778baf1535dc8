"""The inspector with many actors: what a look costs the server, and what drawing costs the page.

    .venv/bin/python benchmarks/inspector.py               # 1000 actors, about a minute
    .venv/bin/python benchmarks/inspector.py --actors 3000

It starts the app on loopback (idle timeout 2 s), makes `--actors` channels and wakes each
one's actor with a read, so that they all wake within a few seconds and hibernate together,
then opens /inspect in headless Chromium (/usr/bin/chromium) and reports:

- the server: the time of one look (GET /inspect/api/view, median of 10) and its size;
- the page: the time to draw a view (median and worst, from window.inspectorStats), the
  tiles drawn (at most 96: the rest are counted, and the filter finds them), and the
  timeline lines it took in when a thousand actors hibernated in the same second;
- the filter: from typing a channel's name to its tile alone on the page.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.lab.server import BackgroundServer
from accord_app.web.middleware import RequestLimits

CHROMIUM = Path("/usr/bin/chromium")
CHANNELS_PER_SERVER = 100


async def wake_all(url: str, paths: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
        gate = asyncio.Semaphore(32)

        async def read(path: str) -> None:
            async with gate:
                (await http.get(path)).raise_for_status()

        await asyncio.gather(*(read(path) for path in paths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actors", type=int, default=1000)
    actors = parser.parse_args().actors
    with tempfile.TemporaryDirectory(prefix="accord-inspector-") as folder:
        lifted = RequestLimits(per_second=100_000, burst=100_000)
        settings = Settings(data_dir=Path(folder), idle_timeout=2.0, request_limits=lifted)
        app = create_app(settings)
        with BackgroundServer(app, **uvicorn_options(settings)) as server:
            catalog = app.state.catalog
            paths = []
            for number in range(actors):
                if number % CHANNELS_PER_SERVER == 0:
                    server_id = catalog.create_server(f"Server {number // CHANNELS_PER_SERVER}").id
                channel = catalog.create_channel(server_id, f"ch-{number}")
                paths.append(f"/api/servers/{server_id}/channels/{channel.id}/messages")
            measure(server.url, actors, paths)


def measure(url: str, actors: int, paths: list[str]) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/inspect")
        # Each view's drawing time, sampled as views come (two a second).
        page.evaluate("""() => {
            const stats = window.inspectorStats;
            window.renders = [];
            let seen = stats.views;
            setInterval(() => {
                if (stats.views === seen) return;
                seen = stats.views;
                window.renders.push(stats.lastRenderMs);
            }, 50);
        }""")
        started = time.perf_counter()
        # In a thread of its own: Playwright's sync API runs an event loop in this one.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, wake_all(url, paths)).result()
        print(f"{actors} actors woken in {time.perf_counter() - started:.1f} s, the page open")
        look(url)
        # Each wake-up and each nap is a timeline line: 2 per actor at least.
        page.wait_for_function(
            f"() => window.inspectorStats.happenings >= {2 * actors}", timeout=60_000
        )
        stats = page.evaluate("() => window.inspectorStats")
        renders: list[float] = page.evaluate("() => window.renders")
        tiles = page.locator("#tiles .tile").count()
        print(
            f"page: {stats['views']} views drawn, {statistics.median(renders):.1f} ms each"
            f" (median), {stats['maxRenderMs']:.1f} ms at worst; {tiles} tiles drawn;"
            f" {stats['happenings']} timeline lines taken in"
            f" ({stats['happenings'] / (time.perf_counter() - started):.0f} a second)"
        )
        # Typing in the filter redraws at once, in the input event's handler.
        took = page.evaluate(
            """(wanted) => {
                const started = performance.now();
                const filter = document.getElementById("filter");
                filter.value = wanted;
                filter.dispatchEvent(new Event("input"));
                return performance.now() - started;
            }""",
            f"#ch-{actors - 1} ",
        )
        assert page.locator("#tiles .tile").count() == 1
        print(f"filter: one channel of {actors} found and drawn in {took:.1f} ms")
        browser.close()


def look(url: str) -> None:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        looks, size = [], 0
        for _ in range(10):
            started = time.perf_counter()
            response = http.get("/inspect/api/view")
            looks.append(time.perf_counter() - started)
            size = len(response.content)
        print(
            f"server: one look at {len(response.json()['actors'])} actors takes"
            f" {statistics.median(looks) * 1000:.0f} ms (median of 10), {size / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    sys.exit(main())
