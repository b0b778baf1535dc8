"""/openapi.json describes exactly the API, in its own error shape; /docs works offline."""

import dataclasses
import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

import accord_app
from accord_app import Settings
from accord_app.lab.loadtest import ADMIN_HEADERS, LAB_ADMIN_TOKEN

pytestmark = pytest.mark.anyio

SERVER_CHANNELS = "/api/servers/{server_id}/channels"
CHANNEL_PREFIX = SERVER_CHANNELS + "/{channel_id}/"
SERVER_ACTIVITY = "/api/servers/{server_id}/activity"
SERVER_ANNOUNCEMENTS = "/api/servers/{server_id}/announcements"
# (method, path) -> the response codes the operation documents.
OPERATIONS = {
    ("get", "/api"): {"200"},
    ("get", "/api/servers"): {"200"},
    ("post", "/api/servers"): {"201", "400", "409"},
    ("get", SERVER_CHANNELS): {"200", "400", "404"},
    ("post", SERVER_CHANNELS): {"201", "400", "404"},
    ("get", SERVER_ACTIVITY): {"200", "400", "404"},
    ("post", SERVER_ANNOUNCEMENTS): {"200", "400", "401", "403", "404", "422"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ERROR_BODY_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The conftest's settings, with the lab's admin token: every operation can succeed."""
    return dataclasses.replace(settings, admin_token=LAB_ADMIN_TOKEN)


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def json_content_schema(response: dict[str, Any]) -> dict[str, Any]:
    assert set(response["content"]) == {"application/json"}, response
    result: dict[str, Any] = response["content"]["application/json"]["schema"]
    return result


def all_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


async def test_schema_is_openapi_3_for_accord(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Accord"
    # One version string, pyproject.toml's: the package and its API report the installed one.
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    version = pyproject["project"]["version"]
    assert schema["info"]["version"] == version
    assert accord_app.__version__ == version


def operations_in(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in schema["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def test_schema_lists_exactly_the_server_level_operations(schema: dict[str, Any]) -> None:
    operations = operations_in(schema)
    assert set(OPERATIONS) <= operations
    catalog_paths = {path for _, path in OPERATIONS}
    assert {op for op in operations if op[1] in catalog_paths} == set(OPERATIONS)
    # Anything else is the chat chapter's, below one channel (tested with the actors); no docs
    # page, no stray route leaks into the schema.
    for method, path in operations - set(OPERATIONS):
        assert path.startswith(CHANNEL_PREFIX), (method, path)
    for path, item in schema["paths"].items():
        assert set(item) <= HTTP_METHODS | {"parameters"}, (path, item.keys())


async def test_every_documented_error_uses_error_body(schema: dict[str, Any]) -> None:
    for method, path in sorted(operations_in(schema)):
        for status, response in schema["paths"][path][method]["responses"].items():
            if status.startswith(("4", "5")):
                assert json_content_schema(response) == {"$ref": ERROR_BODY_REF}, (
                    method,
                    path,
                    status,
                )


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
async def test_each_operation_documents_its_responses(
    schema: dict[str, Any], method: str, path: str
) -> None:
    operation = schema["paths"][path][method]
    responses = operation["responses"]
    assert set(responses) == OPERATIONS[method, path]
    for status, response in responses.items():
        assert response["description"].strip(), (status, response)
        content = json_content_schema(response)
        if status.startswith("4"):
            assert content == {"$ref": ERROR_BODY_REF}
    assert operation["summary"].strip()


async def test_success_responses_name_their_records(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    ref = "#/components/schemas/{}".format

    def success(method: str, path: str, status: str) -> dict[str, Any]:
        return json_content_schema(paths[path][method]["responses"][status])

    assert success("get", "/api", "200")["type"] == "object"
    servers = success("get", "/api/servers", "200")
    assert servers["type"] == "array"
    assert servers["items"] == {"$ref": ref("Server")}
    assert success("post", "/api/servers", "201") == {"$ref": ref("Server")}
    channels = success("get", SERVER_CHANNELS, "200")
    assert channels["type"] == "array"
    assert channels["items"] == {"$ref": ref("Channel")}
    assert success("post", SERVER_CHANNELS, "201") == {"$ref": ref("Channel")}
    activity = success("get", SERVER_ACTIVITY, "200")
    assert activity["type"] == "array"
    assert activity["items"] == {"$ref": ref("ChannelActivity")}


async def test_component_schemas_describe_the_bodies(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    assert {"Server", "Channel", "NameIn", "ErrorBody"} <= set(components)
    expected_fields = {
        "Server": {"id", "name"},
        "Channel": {"id", "name", "server_id"},
        "ErrorBody": {"message", "code"},
        "NameIn": {"name"},
    }
    for title, fields in expected_fields.items():
        component = components[title]
        assert component["type"] == "object"
        assert set(component["properties"]) == fields, title
        assert set(component["required"]) == fields, title
        for field in fields:
            assert component["properties"][field]["type"] == "string", (title, field)
    name = components["NameIn"]["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (3, 100)


@pytest.mark.parametrize("method", ["get", "post"])
async def test_server_id_is_a_required_uuid_path_parameter(
    schema: dict[str, Any], method: str
) -> None:
    parameters = schema["paths"][SERVER_CHANNELS][method]["parameters"]
    assert len(parameters) == 1
    (parameter,) = parameters
    assert parameter["name"] == "server_id"
    assert parameter["in"] == "path"
    assert parameter["required"] is True
    assert parameter["schema"]["format"] == "uuid"


@pytest.mark.parametrize("path", ["/api/servers", SERVER_CHANNELS])
async def test_posts_take_a_required_json_name(schema: dict[str, Any], path: str) -> None:
    body = schema["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert json_content_schema(body) == {"$ref": "#/components/schemas/NameIn"}


async def test_no_validation_422_and_no_validation_error_schema_anywhere(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    """Malformed requests are 400s; the one 422 is an announcement's reused Idempotency-Key."""
    text = (await client.get("/openapi.json")).text
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in text
    with_422 = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                assert "Idempotency-Key" in answer["description"], (method, path)
                with_422.add(path)
    assert with_422 == {SERVER_ANNOUNCEMENTS, CHANNEL_PREFIX + "announcements"}


async def test_every_ref_resolves(schema: dict[str, Any]) -> None:
    refs = all_refs(schema)
    assert ERROR_BODY_REF in refs
    prefix = "#/components/schemas/"
    for ref in refs:
        assert ref.startswith(prefix), ref
        assert ref.removeprefix(prefix) in schema["components"]["schemas"], ref


async def test_documented_success_codes_are_what_the_api_answers(
    live_server: Any, schema: dict[str, Any]
) -> None:
    # A real server: the activity of a server with a channel asks the channel's actor, and the
    # actor runtime starts with the app's lifespan, which the in-process client does not run.
    client = live_server.http
    server = client.post("/api/servers", json={"name": "documented"}).json()
    for (method, path), codes in OPERATIONS.items():
        url = path.replace("{server_id}", server["id"])
        body = None if method != "post" else {"name": "general", "message": "hello"}
        response = client.request(method.upper(), url, json=body, headers=ADMIN_HEADERS)
        (success,) = [code for code in codes if code.startswith("2")]
        assert str(response.status_code) == success, (method, path, response.text)


async def test_schema_is_stable_between_calls(client: httpx.AsyncClient) -> None:
    first = (await client.get("/openapi.json")).json()
    second = (await client.get("/openapi.json")).json()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


# --- /docs ----------------------------------------------------------------------------------


class LinkCollector(HTMLParser):
    """Every src= and href= in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in {"src", "href"} and value]


async def test_docs_page_uses_only_local_urls(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    collector = LinkCollector()
    collector.feed(html)
    assert collector.links, "the page links no assets"
    for link in collector.links:
        assert link.startswith("/docs/assets/"), link
    assert "url: '/openapi.json'" in html
    # No absolute or protocol-relative URL anywhere in the page, scripts included.
    assert not re.search(r"https?:|//[a-z0-9]", html, re.IGNORECASE), html
    assert "<title>Accord" in html


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon.png", "image/png"),
    ],
)
async def test_docs_assets_are_served(
    client: httpx.AsyncClient, asset: str, content_type: str
) -> None:
    html = (await client.get("/docs")).text
    assert f"/docs/assets/{asset}" in html
    response = await client.get(f"/docs/assets/{asset}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in {
        content_type,
        "application/javascript" if content_type == "text/javascript" else content_type,
    }
    assert len(response.content) > 500


async def test_every_asset_the_docs_page_links_is_served(client: httpx.AsyncClient) -> None:
    collector = LinkCollector()
    collector.feed((await client.get("/docs")).text)
    for link in collector.links:
        response = await client.get(link)
        assert response.status_code == 200, link


async def test_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", response.text)


async def test_missing_asset_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/assets/no-such-file.js")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_ids_are_uuid_strings_and_connect_declares_its_query(
    schema: dict[str, Any],
) -> None:
    """A client generator reads the schema: ids are UUIDs, and the WebSocket's parameters are
    on the GET that documents it (the schema has no WebSockets)."""
    for path, item in schema["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"].endswith("_id"):
                    assert parameter["schema"].get("format") == "uuid", (path, parameter)
    for name, component in schema["components"]["schemas"].items():
        for field, spec in component.get("properties", {}).items():
            if (field == "id" or field.endswith("_id")) and name != "Announcement":
                assert spec.get("format") == "uuid", (name, field, spec)
    connect = schema["paths"][CHANNEL_PREFIX + "connect"]["get"]
    query = {p["name"]: p for p in connect["parameters"] if p["in"] == "query"}
    assert set(query) == {"username", "after_seq"}
