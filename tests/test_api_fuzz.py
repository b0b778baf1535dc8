"""Property tests: whatever a client sends, the API answers below 500, in its own shape.

Hypothesis makes up bodies (JSON values, raw bytes), path segments and methods; each answer is
checked against the contract: an error is JSON {"message": <sentence>, "code": <str>}, and a
success has exactly the documented fields.
"""

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from accord_app import Settings, create_app
from accord_app.web.middleware import RequestLimits

pytestmark = pytest.mark.anyio

FUZZ = settings(max_examples=200, deadline=None, database=None)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
JSON_TYPE = {"content-type": "application/json"}

# Text that includes what trips naive code: lone surrogates, NUL, controls, RTL, emoji.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
ODD_TEXT = st.text(ANY_CHAR, max_size=120) | st.sampled_from(
    ["\ud800", "a\x00b", "\u202eabc", "👩‍👩‍👧", "שלום", "'); DROP TABLE servers; --", " " * 5]
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=12,
)
# Bodies with a "name" key are the ones that get past the first checks: weight them up.
BODIES = (
    JSON_VALUES
    | st.fixed_dictionaries({"name": JSON_VALUES})
    | st.builds(lambda name: {"name": name}, ODD_TEXT)
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.accord+json",
        "",
    ]
)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """One app for the whole module: examples pile up data, which the checks tolerate."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    # Hundreds of requests a second from one address: the request budget would refuse most.
    unlimited = RequestLimits(per_second=1e9, burst=10**9)
    return create_app(Settings(data_dir=data_dir, request_limits=unlimited))


@pytest.fixture(scope="module")
def home_id(fuzz_app: FastAPI) -> str:
    """A server that exists, so channel requests get past the 404."""
    server_id: str = fuzz_app.state.catalog.create_server("fuzz home").id
    return server_id


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://test", timeout=10.0)


def encode_json(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \\udxxx escapes: valid JSON text, invalid Unicode.
    return json.dumps(value).encode()


def quote_segment(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def check_error(response: httpx.Response) -> None:
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"message", "code"}, body
    assert isinstance(body["code"], str), body
    assert body["code"], body
    message = body["message"]
    assert isinstance(message, str), body
    assert message[:1].isupper(), body
    assert message.endswith("."), body


def check_answer(response: httpx.Response, expected_success: int | None) -> Any:
    """Below 500, an error in the API's shape, or the expected success; returns the body."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        check_error(response)
        return None
    assert response.status_code == expected_success, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    return response.json()


def check_server(server: Any) -> None:
    assert isinstance(server, dict)
    assert set(server) == {"id", "name"}
    assert is_uuid(server["id"])
    assert isinstance(server["name"], str)
    assert 3 <= len(server["name"]) <= 100


def check_channel(channel: Any, server_id: str) -> None:
    assert isinstance(channel, dict)
    assert set(channel) == {"id", "name", "server_id"}
    assert is_uuid(channel["id"])
    assert channel["server_id"] == server_id
    assert isinstance(channel["name"], str)
    assert 3 <= len(channel["name"]) <= 100


def name_if_valid(body: Any) -> str | None:
    """The stored name the API should give back for this body, or None if it must refuse."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return None
    return body["name"].strip()


@FUZZ
@given(body=BODIES)
async def test_any_json_body_to_create_server(fuzz_app: FastAPI, body: Any) -> None:
    async with client_for(fuzz_app) as client:
        response = await client.post("/api/servers", content=encode_json(body), headers=JSON_TYPE)
    server = check_answer(response, 201)
    if server is not None:
        check_server(server)
        assert server["name"] == name_if_valid(body)
    elif response.status_code != 400:
        pytest.fail(f"expected 201 or 400, got {response.status_code}: {response.text}")


@FUZZ
@given(body=BODIES)
async def test_any_json_body_to_create_channel(fuzz_app: FastAPI, home_id: str, body: Any) -> None:
    async with client_for(fuzz_app) as client:
        response = await client.post(
            f"/api/servers/{home_id}/channels", content=encode_json(body), headers=JSON_TYPE
        )
    channel = check_answer(response, 201)
    if channel is not None:
        check_channel(channel, home_id)
        assert channel["name"] == name_if_valid(body)
    else:
        assert response.status_code == 400, response.text


@FUZZ
@given(
    method=METHODS,
    target=st.sampled_from(["servers", "channels", "root"]),
    content=st.binary(max_size=300)
    | st.builds(lambda value: encode_json(value)[:-1], JSON_VALUES)
    | st.builds(lambda value: value.encode("utf-8", "surrogatepass"), ODD_TEXT),
    content_type=CONTENT_TYPES,
)
async def test_any_raw_body_with_any_method(
    fuzz_app: FastAPI, home_id: str, method: str, target: str, content: bytes, content_type: Any
) -> None:
    url = {
        "servers": "/api/servers",
        "channels": f"/api/servers/{home_id}/channels",
        "root": "/api",
    }[target]
    headers = {} if content_type is None else {"content-type": content_type}
    async with client_for(fuzz_app) as client:
        response = await client.request(method, url, content=content, headers=headers)
    allowed = {"root": {"GET"}, "servers": {"GET", "POST"}, "channels": {"GET", "POST"}}[target]
    if method not in allowed:
        assert response.status_code == 405, response.text
    success = 201 if method == "POST" else 200
    result = check_answer(response, success)
    if result is None:
        return
    if target == "root":
        assert result == {"api": True}
    elif method == "GET":
        assert isinstance(result, list)
        for item in result:
            check_channel(item, home_id) if target == "channels" else check_server(item)
    else:
        check_channel(result, home_id) if target == "channels" else check_server(result)


@FUZZ
@given(method=METHODS, segment=ODD_TEXT)
async def test_any_server_id_segment(
    fuzz_app: FastAPI, home_id: str, method: str, segment: str
) -> None:
    url = f"/api/servers/{quote_segment(segment)}/channels"
    async with client_for(fuzz_app) as client:
        response = await client.request(
            method, url, content=encode_json({"name": "general"}), headers=JSON_TYPE
        )
    result = check_answer(response, 201 if method == "POST" else 200)
    if result is None:
        return
    # Only a spelling of a real server's UUID gets through.
    assert uuid.UUID(segment.strip()) == uuid.UUID(home_id)
    if method == "POST":
        check_channel(result, home_id)
    else:
        assert isinstance(result, list)


@FUZZ
@given(
    method=METHODS,
    segments=st.lists(ODD_TEXT, min_size=1, max_size=5),
    prefix=st.sampled_from(["", "/api", "/api/servers"]),
    query=st.none() | ODD_TEXT,
)
async def test_any_path(
    fuzz_app: FastAPI, method: str, segments: list[str], prefix: str, query: str | None
) -> None:
    path = prefix + "/" + "/".join(quote_segment(segment) for segment in segments)
    # Absolute, so a path that starts with "//" is not read as a host name.
    url = f"http://test{path}" if query is None else f"http://test{path}?{quote_segment(query)}"
    async with client_for(fuzz_app) as client:
        response = await client.request(method, url)
    assert response.status_code < 500, response.text
    if not path.startswith("/api"):
        # The docs and the frontend's files: pages, not API answers, but errors keep the shape.
        if response.status_code >= 400:
            check_error(response)
        return
    if response.status_code == 307:
        # Starlette's trailing-slash redirect: /api/servers/ -> /api/servers.
        assert path.endswith("/")
        assert httpx.URL(response.headers["location"]).path == path.rstrip("/")
        return
    check_answer(response, 201 if method == "POST" else 200)
