"""One worker of the cluster: the app on its own loopback port, told by the cluster who it is.

`python -m accord_app.cluster.worker`, with the ACCORD_* variables the cluster sets
(ACCORD_WORKER, ACCORD_WORKERS, ACCORD_ROUTER_URL, ...). Not meant to be started by hand.
"""

import os
import threading
import time

import uvicorn

from accord_app.actors.files import raise_open_files_limit
from accord_app.app import create_app, uvicorn_options
from accord_app.settings import Settings

PARENT_CHECK_SECONDS = 1.0


def stop_when_orphaned(server: uvicorn.Server, parent: int) -> None:
    """A worker whose cluster process died (kill -9) stops too, instead of holding its port
    and its actors' files forever. The cluster starts workers in their own session, so a
    Ctrl-C in the terminal reaches only the cluster, which stops them in order."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    server.should_exit = True


def main() -> None:
    raise_open_files_limit()
    settings = Settings.from_env()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,  # a line per request would cost more than the request, under load
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    threading.Thread(
        target=stop_when_orphaned, args=(server, os.getppid()), name="parent-watch", daemon=True
    ).start()
    print(f"worker {settings.worker} on {settings.host}:{settings.port}, pid {os.getpid()}")
    server.run()


if __name__ == "__main__":
    main()
