"""`python -m accord_app`: serve the finished app. Flags win over ACCORD_* variables."""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import uvicorn

from accord_app.actors.datalock import DataDirInUse, DataDirLock
from accord_app.actors.files import raise_open_files_limit
from accord_app.app import create_app, uvicorn_options
from accord_app.catalog.dialects import describe
from accord_app.catalog.store import CatalogError
from accord_app.chat.sharding import Sharding
from accord_app.settings import DATA_DIR_HELP, Settings, parse_port


def port_flag(text: str) -> int:
    try:
        return parse_port(text, "--port")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m accord_app", description=__doc__)
    parser.add_argument("--host", help="default: 127.0.0.1, or ACCORD_HOST")
    parser.add_argument("--port", type=port_flag, help="default: 8787, or ACCORD_PORT")
    parser.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    parser.add_argument(
        "--sharding",
        choices=[mode.value for mode in Sharding],
        help="which actor hosts a channel; default: channel, or ACCORD_SHARDING",
    )
    args = parser.parse_args(argv)
    flags = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    if args.sharding is not None:
        flags["sharding"] = Sharding(args.sharding)
    given = {name: value for name, value in flags.items() if value is not None}
    # A variable that a flag overrides is not even read, so a stale bad value cannot get in the way.
    environ = {
        key: value
        for key, value in os.environ.items()
        if key.removeprefix("ACCORD_").lower() not in given
    }
    try:
        settings = replace(Settings.from_env(environ), **given)
    except ValueError as error:
        parser.error(str(error))
    raise_open_files_limit()  # before the runtime sizes itself by it
    url = f"http://{settings.host}:{settings.port}"
    lock = DataDirLock(settings.data_dir, f"python -m accord_app on {url}")
    try:
        lock.acquire()
        app = create_app(settings)
    except (DataDirInUse, CatalogError) as error:
        sys.exit(f"Accord did not start: {error}")
    catalog = f", catalog in {describe(settings.catalog_url)}" if settings.catalog_url else ""
    print(
        f"Accord on {url} (data in {settings.data_dir}{catalog},"
        f" one actor per {settings.sharding.value})"
    )
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))
    finally:
        lock.release()


if __name__ == "__main__":
    main()
