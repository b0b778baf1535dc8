"""The HTTP contract of /api: every endpoint, every error, and no request that yields a 500.

Most tests take the `http` fixture, so the same body runs twice: in-process through
httpx.ASGITransport, and over a real socket against uvicorn on 127.0.0.1. Those marked
`both_catalogs` run on a SQLite and on a PostgreSQL catalog.
"""

import json
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from starlette.types import ASGIApp, Receive, Scope, Send

from accord_app import Settings, create_app
from accord_app.catalog.pgserver import MAINTENANCE_DATABASE, PostgresServer
from accord_app.lab.server import BackgroundServer
from accord_app.web.middleware import MAX_BODY_BYTES

if TYPE_CHECKING:
    from conftest import LiveServer

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
UNKNOWN_ID = "6f1c7a52-3f0e-4b43-9a3c-0d0d0d0d0d0d"
HTTP_TIMEOUT = 10.0
both_catalogs = pytest.mark.parametrize("settings", ["sqlite", "postgresql"], indirect=True)


class SwitchableApp:
    """An ASGI app that hands each request to the app the current test installed.

    One uvicorn per module serves every test's fresh app: starting and stopping a server per
    test costs a quarter of a second, and the `uvicorn` half of this file has over 100 tests.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None, "no app installed for this test"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def shared_uvicorn() -> Iterator[tuple[BackgroundServer, SwitchableApp]]:
    switch = SwitchableApp()
    with BackgroundServer(switch) as server:
        yield server, switch


@pytest.fixture(params=["asgi", "uvicorn"])
async def http(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An async client on the app: in-process, or over loopback to a real uvicorn."""
    if request.param == "asgi":
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=HTTP_TIMEOUT
        ) as client:
            yield client
        return
    server, switch = request.getfixturevalue("shared_uvicorn")
    switch.app = app
    try:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=HTTP_TIMEOUT, trust_env=False
        ) as client:
            yield client
    finally:
        switch.app = None


def assert_sentence(message: object) -> None:
    assert isinstance(message, str)
    assert len(message) >= 10, message
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert "\n" not in message, message


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The response is the API's error shape with this status and code; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "code"}, body
    assert body["code"] == code, body
    assert_sentence(body["message"])
    return str(body["message"])


def assert_uuid(value: object) -> None:
    assert isinstance(value, str)
    assert str(uuid.UUID(value)) == value  # canonical lower-case, hyphenated form


async def create_server(http: httpx.AsyncClient, name: str = "Python Lisbon") -> dict[str, str]:
    response = await http.post("/api/servers", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def create_channel(http: httpx.AsyncClient, server_id: str, name: str) -> dict[str, str]:
    response = await http.post(f"/api/servers/{server_id}/channels", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


# --- GET /api -------------------------------------------------------------------------------


async def test_api_root_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/api")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"api": True}


# --- servers --------------------------------------------------------------------------------


@both_catalogs
async def test_servers_start_empty(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/servers")
    assert response.status_code == 200
    assert response.json() == []


@both_catalogs
async def test_create_server_answers_201_with_the_created_server(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/servers", json={"name": "  Python Lisbon  "})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    server = response.json()
    assert set(server) == {"id", "name"}
    assert server["name"] == "Python Lisbon"
    assert_uuid(server["id"])
    listed = (await http.get("/api/servers")).json()
    assert listed == [server]


@both_catalogs
async def test_servers_are_listed_oldest_first(http: httpx.AsyncClient) -> None:
    names = ["zulu", "alpha", "mike", "bravo", "alpha"]
    created = [await create_server(http, name) for name in names]
    assert len({server["id"] for server in created}) == len(names)
    response = await http.get("/api/servers")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("abc", "abc"),
        ("x" * 100, "x" * 100),
        ("  abc  ", "abc"),
        (" " * 50 + "y" * 100 + " " * 50, "y" * 100),
        ("\t abc \n", "abc"),
        ("🎉🎉🎉", "🎉🎉🎉"),
        ("שלום עולם", "שלום עולם"),
        ("مرحبا بالعالم", "مرحبا بالعالم"),
        ("\U0001f469\u200d\U0001f4bb dev", "\U0001f469\u200d\U0001f4bb dev"),  # 👩‍💻: joined
    ],
)
async def test_server_names_are_trimmed_and_kept(
    http: httpx.AsyncClient, sent: str, stored: str
) -> None:
    server = await create_server(http, sent)
    assert server["name"] == stored
    assert (await http.get("/api/servers")).json() == [server]


@pytest.mark.parametrize(
    "name",
    [
        *["", "ab", "  ab  ", "   ", "x" * 101, "a\x00bc", "ab\ncd", "abc\x07", "\x7fabc"],
        "a\tb\tc",
        "a\u200db\u200dc",  # joiners between Latin letters join nothing: "abc" on screen
    ],
)
async def test_server_names_out_of_bounds_are_400(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/api/servers", json={"name": name})
    message = assert_error(response, 400, "invalid_body")
    assert "name" in message
    assert (await http.get("/api/servers")).json() == []


async def test_extra_fields_in_the_body_are_ignored(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/servers", json={"name": "abc", "id": UNKNOWN_ID, "x": [1]})
    assert response.status_code == 201
    assert response.json()["id"] != UNKNOWN_ID
    assert response.json()["name"] == "abc"


# Bodies a POST endpoint must refuse with 400, and the code it must give.
BAD_BODIES = [
    pytest.param(None, None, "invalid_body", id="no-body"),
    pytest.param(b"", JSON, "invalid_body", id="empty-json"),
    pytest.param(b"{bad", JSON, "invalid_json", id="broken-json"),
    pytest.param(b'{"name": "abc"', JSON, "invalid_json", id="truncated-json"),
    pytest.param(b"[1]", JSON, "invalid_body", id="array"),
    pytest.param(b'"abc"', JSON, "invalid_body", id="string"),
    pytest.param(b"null", JSON, "invalid_body", id="null"),
    pytest.param(b"42", JSON, "invalid_body", id="number"),
    pytest.param(b"{}", JSON, "invalid_body", id="missing-name"),
    pytest.param(b'{"Name": "abc"}', JSON, "invalid_body", id="wrong-case-key"),
    pytest.param(b'{"name": 5}', JSON, "invalid_body", id="name-int"),
    pytest.param(b'{"name": null}', JSON, "invalid_body", id="name-null"),
    pytest.param(b'{"name": ["abc"]}', JSON, "invalid_body", id="name-list"),
    pytest.param(b'{"name": {"a": "abc"}}', JSON, "invalid_body", id="name-object"),
    pytest.param(b'{"name": true}', JSON, "invalid_body", id="name-bool"),
    pytest.param(b'{"name": NaN}', JSON, "invalid_body", id="name-nan"),
    pytest.param(b'{"name": "\\ud800abc"}', JSON, "invalid_body", id="lone-surrogate-escape"),
    pytest.param(b'{"name": "\\udfffabc"}', JSON, "invalid_body", id="lone-low-surrogate"),
    pytest.param(b'{"name": "a\\u0000bc"}', JSON, "invalid_body", id="nul-escape"),
    pytest.param(
        b'{"name": "abcd"}', {"content-type": "text/plain"}, "invalid_body", id="text-plain"
    ),
    pytest.param(b'{"name": "abcd"}', None, "invalid_body", id="no-content-type"),
    pytest.param(
        b"name=abcd",
        {"content-type": "application/x-www-form-urlencoded"},
        "invalid_body",
        id="form",
    ),
]


@pytest.mark.parametrize(("content", "headers", "code"), BAD_BODIES)
async def test_bad_server_bodies_are_400(
    http: httpx.AsyncClient, content: bytes | None, headers: dict[str, str] | None, code: str
) -> None:
    response = await http.post("/api/servers", content=content, headers=headers)
    assert_error(response, 400, code)
    assert (await http.get("/api/servers")).json() == []


@pytest.mark.parametrize(("content", "headers", "code"), BAD_BODIES)
async def test_bad_channel_bodies_are_400(
    client: httpx.AsyncClient, content: bytes | None, headers: dict[str, str] | None, code: str
) -> None:
    server = await create_server(client)
    url = f"/api/servers/{server['id']}/channels"
    response = await client.post(url, content=content, headers=headers)
    assert_error(response, 400, code)
    assert (await client.get(url)).json() == []


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param(b'{"name": "\xffabc"}', "invalid_json", id="invalid-utf8"),
        pytest.param(b"\xfe\xff\x00{", "invalid_json", id="bom-garbage"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "invalid_json", id="nested-too-deep"),
        pytest.param(b'{"name": ' + b"1" * 5000 + b"}", "invalid_json", id="int-too-long"),
        # Python decodes this leniently into a lone surrogate, which the name rules refuse.
        pytest.param(b'{"name": "\xed\xa0\x80abc"}', "invalid_body", id="utf8-surrogate"),
    ],
)
async def test_bodies_the_json_parser_chokes_on_are_400(
    client: httpx.AsyncClient, content: bytes, code: str
) -> None:
    response = await client.post("/api/servers", content=content, headers=JSON)
    assert_error(response, 400, code)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.accord+json"]
)
async def test_json_content_type_variants_are_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/api/servers", content=b'{"name": "abcd"}', headers={"content-type": content_type}
    )
    assert response.status_code == 201
    assert response.json()["name"] == "abcd"


# --- channels -------------------------------------------------------------------------------


@both_catalogs
async def test_channels_are_created_and_listed_oldest_first(http: httpx.AsyncClient) -> None:
    server = await create_server(http)
    url = f"/api/servers/{server['id']}/channels"
    assert (await http.get(url)).json() == []
    created = []
    for name in ["random", "  general  ", "announcements"]:
        response = await http.post(url, json={"name": name})
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        channel = response.json()
        assert set(channel) == {"id", "name", "server_id"}
        assert_uuid(channel["id"])
        assert channel["server_id"] == server["id"]
        assert channel["name"] == name.strip()
        created.append(channel)
    response = await http.get(url)
    assert response.status_code == 200
    assert response.json() == created


@both_catalogs
async def test_channels_belong_to_their_server(http: httpx.AsyncClient) -> None:
    first, second = await create_server(http, "first"), await create_server(http, "second")
    a = await create_channel(http, first["id"], "alpha")
    b = await create_channel(http, second["id"], "bravo")
    assert (await http.get(f"/api/servers/{first['id']}/channels")).json() == [a]
    assert (await http.get(f"/api/servers/{second['id']}/channels")).json() == [b]
    # Channels do not show up as servers.
    assert (await http.get("/api/servers")).json() == [first, second]


@pytest.mark.parametrize(
    ("name", "ok"),
    [("abc", True), ("x" * 100, True), ("ab", False), ("x" * 101, False), ("  ab ", False)],
)
async def test_channel_name_bounds(client: httpx.AsyncClient, name: str, ok: bool) -> None:
    server = await create_server(client)
    response = await client.post(f"/api/servers/{server['id']}/channels", json={"name": name})
    if ok:
        assert response.status_code == 201
        assert response.json()["name"] == unicodedata.normalize("NFC", name.strip())
    else:
        assert_error(response, 400, "invalid_body")


async def test_other_uuid_spellings_are_refused_naming_the_one_to_use(
    client: httpx.AsyncClient,
) -> None:
    """One spelling per id: the cluster's proxy routes a channel by its ids' text."""
    server = await create_server(client)
    canonical = f"/api/servers/{server['id']}/channels"
    for spelling in [server["id"].upper(), server["id"].replace("-", ""), f"{{{server['id']}}}"]:
        response = await client.post(f"/api/servers/{spelling}/channels", json={"name": "x"})
        assert_error(response, 400, "invalid_server_id")
        assert server["id"] in response.json()["message"]
    assert (await client.get(canonical)).json() == []


# --- path and method errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "server_id",
    [
        "not-a-uuid",
        "123",
        "%20",
        "%00",
        "%F0%9F%8E%89",  # an emoji
        "%ED%A0%80",  # a UTF-8 encoded lone surrogate
        "%FF",  # not UTF-8 at all
        "6f1c7a52-3f0e-4b43-9a3c-0d0d0d0d0d0g",
        "6f1c7a52-3f0e-4b43-9a3c-0d0d0d0d0d0d0",
        "'%20OR%201=1%20--",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_server_id_that_is_not_a_uuid_is_400(
    http: httpx.AsyncClient, method: str, server_id: str
) -> None:
    body = {"name": "general"} if method == "POST" else None
    response = await http.request(method, f"/api/servers/{server_id}/channels", json=body)
    message = assert_error(response, 400, "invalid_server_id")
    assert "UUID" in message


async def test_bad_server_id_is_reported_before_a_bad_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/servers/nope/channels", json={"name": "a"})
    assert_error(response, 400, "invalid_server_id")


@both_catalogs
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_server_is_404(http: httpx.AsyncClient, method: str) -> None:
    await create_server(http)
    body = {"name": "general"} if method == "POST" else None
    response = await http.request(method, f"/api/servers/{UNKNOWN_ID}/channels", json=body)
    message = assert_error(response, 404, "server_not_found")
    assert UNKNOWN_ID in message


async def test_bad_body_for_an_unknown_server_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/api/servers/{UNKNOWN_ID}/channels", json={"name": 1})
    assert_error(response, 400, "invalid_body")


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/static/nope.js",
        "/API",
        "/api/nope",
        "/api/server",
        f"/api/servers/{UNKNOWN_ID}",
        f"/api/servers/{UNKNOWN_ID}/channels/extra",
        "/api/servers//channels",
        "/docs/assets/nope.js",
    ],
)
async def test_unknown_path_is_404(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    message = assert_error(response, 404, "not_found")
    assert path in message


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api", {"GET"}),
        ("DELETE", "/api", {"GET"}),
        ("DELETE", "/api/servers", {"GET", "POST"}),
        ("PUT", "/api/servers", {"GET", "POST"}),
        ("PATCH", f"/api/servers/{UNKNOWN_ID}/channels", {"GET", "POST"}),
        ("DELETE", f"/api/servers/{UNKNOWN_ID}/channels", {"GET", "POST"}),
    ],
)
async def test_wrong_method_is_405(
    http: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await http.request(method, path)
    message = assert_error(response, 405, "method_not_allowed")
    assert message.startswith(f"{method} ")
    allow = {part.strip() for part in response.headers["allow"].split(",")}
    assert allow
    assert allow <= allowed, response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/servers"), ("PUT", f"/api/servers/{UNKNOWN_ID}/channels")],
)
async def test_405_names_every_method_the_path_allows(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    # RFC 9110: a 405 answer's Allow header lists the methods the resource supports, and the
    # message tells people what to use instead. Both of these paths take GET and POST.
    response = await client.request(method, path)
    message = assert_error(response, 405, "method_not_allowed")
    allow = {part.strip() for part in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allow, response.headers["allow"]
    assert "GET" in message
    assert "POST" in message


# --- body size ------------------------------------------------------------------------------


def oversized_name_body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes whose name is too long."""
    head, tail = b'{"name": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_body_at_the_limit_is_read(http: httpx.AsyncClient) -> None:
    content = oversized_name_body(MAX_BODY_BYTES)
    assert len(content) == MAX_BODY_BYTES
    response = await http.post("/api/servers", content=content, headers=JSON)
    assert_error(response, 400, "invalid_body")


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    content = oversized_name_body(MAX_BODY_BYTES + 1)
    response = await http.post("/api/servers", content=content, headers=JSON)
    assert response.request.headers["content-length"] == str(MAX_BODY_BYTES + 1)
    assert_error(response, 413, "payload_too_large")
    assert (await http.get("/api/servers")).json() == []


@pytest.mark.parametrize("chunks", [9, 200])
async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient, chunks: int) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(chunks):
            yield b"x" * 8192
        yield b'"}'

    server = await create_server(http)
    url = f"/api/servers/{server['id']}/channels"
    response = await http.post(url, content=body(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "payload_too_large")
    assert (await http.get(url)).json() == []


def test_chunked_oversized_body_through_uvicorn(live_server: "LiveServer") -> None:
    def body() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):
            yield b"y" * 4096
        yield b'"}'

    response = live_server.http.post("/api/servers", content=body(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")
    # The connection-level refusal left the server healthy.
    assert live_server.http.get("/api/servers").json() == []
    assert live_server.http.post("/api/servers", json={"name": "after"}).status_code == 201


def test_wrong_content_type_through_uvicorn(live_server: "LiveServer") -> None:
    response = live_server.http.post(
        "/api/servers", content=b'{"name": "abcd"}', headers={"content-type": "text/plain"}
    )
    message = assert_error(response, 400, "invalid_body")
    assert "application/json" in message
    assert live_server.http.get("/api/servers").json() == []


# --- stored verbatim ------------------------------------------------------------------------

HOSTILE_NAMES = [
    "'); DROP TABLE servers; --",
    "Robert'); DROP TABLE channels;--",
    '" OR 1=1 --',
    "x' OR '1'='1",
    "?; SELECT * FROM schema_migrations; --",
    "%s %d {0} :name",
    "<script>alert(1)</script>",
]


@both_catalogs
@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_sql_like_names_are_stored_verbatim(http: httpx.AsyncClient, name: str) -> None:
    server = await create_server(http, name)
    assert server["name"] == name
    channel = await create_channel(http, server["id"], name)
    assert channel["name"] == name
    assert (await http.get("/api/servers")).json() == [server]
    assert (await http.get(f"/api/servers/{server['id']}/channels")).json() == [channel]


ODD_NAMES = [
    "\ud800",
    "ab\udc00c",
    "\ud800\ud800\ud800",
    "\x00\x00\x00",
    "abc\x00",
    "\x1b[31mred\x1b[0m",
    "\u202eevil\u202c",
    "\ufeffbom",
    "\uffff\ufffe\ufdd0",
    "\U0010ffff\U0010ffff\U0010ffff",
    "e\u0301" * 40,
    "👩‍👩‍👧‍👦👩‍👩‍👧‍👦",
    "🇵🇹🇵🇹",
    "\u2028\u2029abc",
    "\u00a0\u3000abc\u3000",
    "ﷺ" * 3,
    "a" * 10_000,
]


@both_catalogs
@pytest.mark.parametrize("name", ODD_NAMES)
async def test_odd_unicode_names_are_accepted_or_refused_never_500(
    http: httpx.AsyncClient, name: str
) -> None:
    # ensure_ascii turns lone surrogates into \\udxxx escapes: valid JSON, invalid Unicode.
    content = json.dumps({"name": name}).encode()
    response = await http.post("/api/servers", content=content, headers=JSON)
    if response.status_code == 201:
        assert response.json()["name"] == unicodedata.normalize("NFC", name.strip())
        assert (await http.get("/api/servers")).json() == [response.json()]
    else:
        assert_error(response, 400, "invalid_body")


async def test_a_catalog_out_of_reach_is_503_in_the_error_shape(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    database = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres.url_of(MAINTENANCE_DATABASE), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        settings = Settings(data_dir=tmp_path / "data", catalog_url=postgres.url_of(database))
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            server = await create_server(http)
            # The database goes away: connecting to it fails from now on.
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
            for response in [
                await http.get("/api/servers"),
                await http.post("/api/servers", json={"name": "Python Lisbon"}),
                await http.get(f"/api/servers/{server['id']}/channels"),
                await http.post(f"/api/servers/{server['id']}/channels", json={"name": "general"}),
            ]:
                assert_error(response, 503, "storage_unavailable")
                assert response.headers["retry-after"] == "5"
