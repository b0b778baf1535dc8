"""`python -m accord_app`: serve the finished app (flags override ACCORD_* variables)."""

import argparse
from dataclasses import replace
from pathlib import Path

import uvicorn

from accord_app.app import create_app
from accord_app.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m accord_app", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="default: %(default)s")
    parser.add_argument("--port", type=int, default=settings.port, help="default: %(default)s")
    parser.add_argument(
        "--data-dir", type=Path, default=settings.data_dir, help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    settings = replace(settings, host=args.host, port=args.port, data_dir=args.data_dir)
    print(f"Accord on http://{settings.host}:{settings.port}  (data in {settings.data_dir})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
