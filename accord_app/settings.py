"""Where the app listens, keeps its data and shards its channels: flags over ACCORD_* variables."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from accord_app.catalog.dialects import POSTGRESQL_SCHEMES
from accord_app.chat.cost import CostKind, MessageCost
from accord_app.chat.ratelimit import ChatLimits
from accord_app.chat.sharding import Sharding
from accord_app.cluster.placement import Placement
from accord_app.web.middleware import RequestLimits
from accord_app.web.origins import normalise_origin

# The project folder, for the lab's tools (the package sits in it when installed editable).
PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR_NAME = "data"  # git-ignored in the project folder
DATA_DIR_HELP = f"default: ./{DATA_DIR_NAME} in the folder it starts in, or ACCORD_DATA_DIR"


def default_data_dir() -> Path:
    """data/ in the folder the app starts in (the project folder under `make run`). Not beside
    the package: installed from a wheel, that would be inside site-packages."""
    return Path.cwd() / DATA_DIR_NAME


def parse_port(text: str, name: str) -> int:
    """A TCP port from text; 0 means "any free port"."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{name} must be a port number from 0 to 65535, not {text!r}")
    return int(text)


class WebSocketPath(StrEnum):
    """How uvicorn serves the chat's WebSockets (ACCORD_WS)."""

    FAST = "fast"  # accord_app/web/fast_websocket.py: one write per socket per loop turn
    ASGI = "asgi"  # uvicorn's own protocol, each frame an ASGI message: what chapter 05 builds


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8787
    data_dir: Path = field(default_factory=default_data_dir)
    sharding: Sharding = Sharding.CHANNEL
    idle_timeout: float = 10.0  # seconds before an idle actor hibernates
    chat_limits: ChatLimits = field(default_factory=ChatLimits)
    # Web pages of other origins that may open WebSockets here (its own pages always may).
    allowed_origins: frozenset[str] = frozenset()
    # Names the server answers to in the Host header, besides loopback names, IP addresses and
    # its own --host (any other is refused: a DNS-rebound page names its own domain).
    allowed_hosts: frozenset[str] = frozenset()
    message_cost: MessageCost = field(default_factory=MessageCost)
    # HTTP requests and connections per client address, counted by this process alone (in a
    # cluster, by each worker: see the README's security model).
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    websocket: WebSocketPath = WebSocketPath.FAST
    # Set by the cluster (accord_app/cluster) for each of its workers; None: a lone process.
    worker: int | None = None  # this worker's number, 1..K
    workers: tuple[str, ...] = ()  # every worker's host:port, in the proxy's order
    router_url: str | None = None  # the proxy, for calls to actors on other workers
    # What the proxy adds to each request it forwards; X-Forwarded-For is believed only then.
    router_secret: str | None = field(default=None, repr=False)
    # The administrator's bearer token: announcements need it (chat/http/announcer.py; None:
    # nobody may announce), it opens the inspector (observe/inspector.py) to clients off this
    # machine (None: loopback clients only), and a channel's point-in-time restore
    # (chat/http/admin.py; None: that endpoint does not exist).
    admin_token: str | None = field(default=None, repr=False)
    # None: the catalog is SQLite, catalog.sqlite3 in data_dir; a postgresql:// URL: that
    # PostgreSQL database, which several hosts can share.
    catalog_url: str | None = None
    # None: each actor's SQLite file alone (the default). nats:// URLs, separated by commas:
    # every write batch also goes to that NATS JetStream cluster's replicated log, and is
    # acknowledged once a majority has it (chapter 09; accord_app/actors/replica.py).
    replication: str | None = None
    replication_timeout: float = 3.0  # seconds an append may wait for a majority
    bookmark_retention_days: float = 30.0  # how far back bookmarks reach, as on Cloudflare
    # GET /metrics, and the counting behind it (ACCORD_METRICS=0 turns both off).
    metrics: bool = True

    def __post_init__(self) -> None:
        if self.catalog_url is not None and not self.catalog_url.startswith(POSTGRESQL_SCHEMES):
            # Only the scheme is shown: the rest of a URL may hold a password.
            scheme, sep, _ = self.catalog_url.partition("://")
            shown = f"{scheme}://..." if sep else self.catalog_url[:60]
            raise ValueError(
                "ACCORD_CATALOG_URL must be a PostgreSQL URL such as"
                f" postgresql://user:password@127.0.0.1:5432/accord, not {shown!r}; leave it"
                " unset for the SQLite catalog in the data folder"
            )
        if self.replication is not None:
            urls = [url.strip() for url in self.replication.split(",")]
            if not all(url.startswith(("nats://", "tls://")) and len(url) > 7 for url in urls):
                raise ValueError(
                    "ACCORD_REPLICATION must be NATS URLs separated by commas, such as"
                    f" nats://127.0.0.1:4222,nats://127.0.0.1:4223, not {self.replication!r};"
                    " leave it unset for local storage alone"
                )
        if self.replication_timeout <= 0 or self.bookmark_retention_days <= 0:
            raise ValueError(
                "ACCORD_REPLICATION_TIMEOUT and ACCORD_BOOKMARK_RETENTION_DAYS must be above 0"
            )
        if self.worker is not None:
            Placement(self.workers, self.worker)  # raises if the worker is not in the list
            if self.router_url is None:
                raise ValueError("a cluster worker needs the router's URL (ACCORD_ROUTER_URL)")

    @property
    def placement(self) -> Placement | None:
        return None if self.worker is None else Placement(self.workers, self.worker)

    @property
    def router_host(self) -> str | None:
        """The router's IP address: where a worker's requests come from, behind the cluster."""
        return None if self.router_url is None else urlsplit(self.router_url).hostname

    @property
    def catalog_path(self) -> Path:
        """Where the SQLite catalog lives (unused when catalog_url is set)."""
        return self.data_dir / "catalog.sqlite3"

    @property
    def catalog_location(self) -> Path | str:
        """What to open the Catalog on: the PostgreSQL URL if there is one, else the file."""
        return self.catalog_url or self.catalog_path

    @property
    def actors_dir(self) -> Path:
        return self.data_dir / "actors"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Read the ACCORD_* variables; unset ones keep their defaults."""
        defaults = cls()

        def number(name: str, default: float) -> float:
            text = environ.get(name)
            if text is None:
                return default
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {text!r}") from None

        def switch(name: str, default: bool) -> bool:
            text = environ.get(name)
            if text is None:
                return default
            if text not in {"0", "1"}:
                raise ValueError(f"{name} must be 1 (on) or 0 (off), not {text!r}")
            return text == "1"

        sharding = environ.get("ACCORD_SHARDING", defaults.sharding.value)
        if sharding not in {mode.value for mode in Sharding}:
            choices = ", ".join(mode.value for mode in Sharding)
            raise ValueError(f"ACCORD_SHARDING must be one of {choices}, not {sharding!r}")
        port = parse_port(environ.get("ACCORD_PORT", str(defaults.port)), "ACCORD_PORT")
        data_dir = environ.get("ACCORD_DATA_DIR")
        limits = defaults.chat_limits
        requests = defaults.request_limits
        worker = environ.get("ACCORD_WORKER")
        if worker is not None and not (worker.isascii() and worker.isdigit()):
            raise ValueError(f"ACCORD_WORKER must be a worker number (1, 2, ...), not {worker!r}")
        workers = environ.get("ACCORD_WORKERS", "")
        work_ms = number("ACCORD_WORK_MS", 0.0)
        if not work_ms >= 0:
            raise ValueError(f"ACCORD_WORK_MS must be 0 or more milliseconds, not {work_ms!r}")
        origins = set()
        for text in environ.get("ACCORD_ALLOWED_ORIGINS", "").split(","):
            if not text.strip():
                continue
            origin = normalise_origin(text)
            if origin is None:
                raise ValueError(
                    f"ACCORD_ALLOWED_ORIGINS lists {text.strip()!r}, which is not an origin"
                    " such as https://chat.example.org or http://localhost:5173"
                )
            origins.add(origin)
        websocket = environ.get("ACCORD_WS", defaults.websocket.value)
        if websocket not in {path.value for path in WebSocketPath}:
            choices = ", ".join(path.value for path in WebSocketPath)
            raise ValueError(f"ACCORD_WS must be one of {choices}, not {websocket!r}")
        work_kind = environ.get("ACCORD_WORK_KIND", CostKind.TURN.value)
        if work_kind not in {kind.value for kind in CostKind}:
            choices = ", ".join(kind.value for kind in CostKind)
            raise ValueError(f"ACCORD_WORK_KIND must be one of {choices}, not {work_kind!r}")
        return cls(
            host=environ.get("ACCORD_HOST", defaults.host),
            port=port,
            data_dir=Path(data_dir) if data_dir else defaults.data_dir,
            sharding=Sharding(sharding),
            idle_timeout=number("ACCORD_IDLE_TIMEOUT", defaults.idle_timeout),
            chat_limits=ChatLimits(
                messages_per_second=number("ACCORD_RATE_LIMIT", limits.messages_per_second),
                burst=int(number("ACCORD_RATE_BURST", limits.burst)),
                client_messages_per_second=number(
                    "ACCORD_CLIENT_RATE_LIMIT", limits.client_messages_per_second
                ),
                client_burst=int(number("ACCORD_CLIENT_RATE_BURST", limits.client_burst)),
                client_connections=int(
                    number("ACCORD_CLIENT_CONNECTIONS", limits.client_connections)
                ),
                client_connects_per_second=number(
                    "ACCORD_CLIENT_CONNECT_RATE", limits.client_connects_per_second
                ),
                client_connect_burst=int(
                    number("ACCORD_CLIENT_CONNECT_BURST", limits.client_connect_burst)
                ),
            ),
            allowed_origins=frozenset(origins),
            allowed_hosts=frozenset(
                name.strip().lower().rstrip(".")
                for name in environ.get("ACCORD_ALLOWED_HOSTS", "").split(",")
                if name.strip()
            ),
            message_cost=MessageCost(work_ms, CostKind(work_kind)),
            request_limits=RequestLimits(
                per_second=number("ACCORD_CLIENT_REQUEST_RATE", requests.per_second),
                burst=int(number("ACCORD_CLIENT_REQUEST_BURST", requests.burst)),
                connections=int(number("ACCORD_CLIENT_HTTP_CONNECTIONS", requests.connections)),
            ),
            websocket=WebSocketPath(websocket),
            worker=None if worker is None else int(worker),
            workers=tuple(address for address in workers.split(",") if address),
            router_url=environ.get("ACCORD_ROUTER_URL") or None,
            router_secret=environ.get("ACCORD_ROUTER_SECRET") or None,
            admin_token=environ.get("ACCORD_ADMIN_TOKEN") or None,
            catalog_url=environ.get("ACCORD_CATALOG_URL") or None,
            replication=environ.get("ACCORD_REPLICATION") or None,
            replication_timeout=number("ACCORD_REPLICATION_TIMEOUT", defaults.replication_timeout),
            bookmark_retention_days=number(
                "ACCORD_BOOKMARK_RETENTION_DAYS", defaults.bookmark_retention_days
            ),
            metrics=switch("ACCORD_METRICS", defaults.metrics),
        )
