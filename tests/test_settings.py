"""Settings that say what they do: the data folder's default is where `--help` says it is; the
WebSocket path is the one ACCORD_WS names."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from accord_app.app import http_limits, uvicorn_options
from accord_app.settings import DATA_DIR_HELP, PROJECT_DIR, Settings, WebSocketPath
from accord_app.web.fast_websocket import FastWebSocket


def test_the_data_folder_is_data_in_the_folder_the_app_starts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # as an installed package, far from the project folder
    assert Settings().data_dir == tmp_path / "data"
    assert Settings.from_env({}).data_dir == tmp_path / "data"
    assert Settings.from_env({"ACCORD_DATA_DIR": "elsewhere"}).data_dir == Path("elsewhere")


@pytest.mark.parametrize("module", ["accord_app", "accord_app.cluster"])
def test_help_says_where_the_data_goes(module: str, tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    shown = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, env=environment,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert " ".join(DATA_DIR_HELP.split()) in " ".join(shown.split())


def test_the_catalog_is_sqlite_in_the_data_folder_unless_a_postgresql_url_is_given() -> None:
    settings = Settings.from_env({"ACCORD_DATA_DIR": "d"})
    assert settings.catalog_url is None
    assert settings.catalog_location == Path("d") / "catalog.sqlite3"
    assert Settings.from_env({"ACCORD_DATA_DIR": "d", "ACCORD_CATALOG_URL": ""}).catalog_url is None
    for url in ["postgresql://u:p@127.0.0.1:5432/accord", "postgres://127.0.0.1/accord"]:
        settings = Settings.from_env({"ACCORD_CATALOG_URL": url})
        assert settings.catalog_url == settings.catalog_location == url


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("mysql://root:secret@db/accord", "'mysql://...'"),
        ("sqlite:///data/catalog.sqlite3", "'sqlite://...'"),
        ("data/catalog.sqlite3", "'data/catalog.sqlite3'"),
    ],
)
def test_a_catalog_url_that_is_not_postgresql_is_refused(value: str, shown: str) -> None:
    with pytest.raises(ValueError, match="ACCORD_CATALOG_URL must be a PostgreSQL URL") as error:
        Settings.from_env({"ACCORD_CATALOG_URL": value})
    assert shown in str(error.value)
    assert "secret" not in str(error.value)  # the rest of a URL may hold a password


def test_the_websocket_path_is_fast_unless_asgi_is_asked_for() -> None:
    assert Settings.from_env({}).websocket is WebSocketPath.FAST
    assert Settings.from_env({"ACCORD_WS": "asgi"}).websocket is WebSocketPath.ASGI
    assert uvicorn_options(Settings.from_env({}))["ws"] is FastWebSocket
    # uvicorn's own protocol, refusing a malformed upgrade in JSON
    asgi = uvicorn_options(Settings.from_env({"ACCORD_WS": "asgi"}))["ws"]
    assert issubclass(asgi, WebSocketsSansIOProtocol) and asgi is not FastWebSocket
    with pytest.raises(ValueError, match="ACCORD_WS must be one of fast, asgi, not 'quick'"):
        Settings.from_env({"ACCORD_WS": "quick"})


def test_metrics_are_on_unless_accord_metrics_is_0() -> None:
    assert Settings.from_env({}).metrics
    assert Settings.from_env({"ACCORD_METRICS": "1"}).metrics
    assert not Settings.from_env({"ACCORD_METRICS": "0"}).metrics
    with pytest.raises(
        ValueError, match="ACCORD_METRICS must be 1 \\(on\\) or 0 \\(off\\), not 'no'"
    ):
        Settings.from_env({"ACCORD_METRICS": "no"})


def test_host_names_and_request_budgets_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ACCORD_ALLOWED_HOSTS": " Chat.Example.org., accord.local ,",
            "ACCORD_CLIENT_REQUEST_RATE": "5",
            "ACCORD_CLIENT_REQUEST_BURST": "50",
            "ACCORD_CLIENT_HTTP_CONNECTIONS": "7",
        }
    )
    assert settings.allowed_hosts == {"chat.example.org", "accord.local"}
    assert (settings.request_limits.per_second, settings.request_limits.burst) == (5, 50)
    assert http_limits(settings).connections_per_address == 7
    assert http_limits(Settings.from_env({})).connections_per_address == 64
    with pytest.raises(ValueError, match="ACCORD_CLIENT_HTTP_CONNECTIONS must be at least 1"):
        Settings.from_env({"ACCORD_CLIENT_HTTP_CONNECTIONS": "0"})
    for bad in [{"ACCORD_CLIENT_REQUEST_RATE": "0"}, {"ACCORD_CLIENT_REQUEST_BURST": "0"}]:
        with pytest.raises(ValueError, match="ACCORD_CLIENT_REQUEST_RATE must be above 0"):
            Settings.from_env(bad)


def test_the_admin_token_is_read_and_never_shown() -> None:
    settings = Settings.from_env({"ACCORD_ADMIN_TOKEN": "s3cret"})
    assert settings.admin_token == "s3cret"
    assert "s3cret" not in repr(settings)
    assert Settings.from_env({"ACCORD_ADMIN_TOKEN": ""}).admin_token is None
