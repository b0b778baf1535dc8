"""Probes of the Accord HTTP contract, shared by the chapters' self-checks and the tests.

Each probe sends real requests through an httpx client and records what it saw in a Report,
so the same code grades an attendee's endpoints in a notebook and the reference app in CI.
"""

import uuid

import httpx

from accord_app.lab.checks import Report


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _error_shape(
    report: Report, response: httpx.Response, status: int, what: str, hint: str = ""
) -> None:
    """Expect an error answer: this status and a JSON body {"message": str, "code": str}."""
    if not report.equal(response.status_code, status, f"{what} answers {status}", hint=hint):
        return  # the shape of a wrong answer proves nothing
    try:
        body = response.json()
    except ValueError:
        report.fail(f"{what} answers JSON", hint=f"the body was {response.text[:80]!r}")
        return
    report.expect(
        isinstance(body, dict)
        and isinstance(body.get("message"), str)
        and isinstance(body.get("code"), str),
        f"{what} explains itself with {{'message': ..., 'code': ...}}",
        hint=f"the body was {body!r}; raise ApiError(status, code, message)",
    )


def probe_api_root(client: httpx.Client, report: Report) -> None:
    response = client.get("/api")
    report.equal(response.status_code, 200, "GET /api answers 200")
    if response.status_code == 200:
        report.equal(response.json(), {"api": True}, "GET /api returns {'api': True}")


def probe_servers(client: httpx.Client, report: Report) -> list[str]:
    """Create two servers and list them; returns their ids (for the channel probe)."""
    first_name, second_name = f"Lisbon {uuid.uuid4().hex[:6]}", f"Porto {uuid.uuid4().hex[:6]}"
    created = client.post("/api/servers", json={"name": f"  {first_name}  "})
    report.equal(
        created.status_code,
        201,
        "POST /api/servers answers 201 Created",
        hint="pass status_code=201 to the route decorator",
    )
    ids = []
    if created.status_code == 201:
        body = created.json()
        report.equal(
            body.get("name"),
            first_name,
            "the name comes back trimmed",
            hint="NameIn trims it: return the validated body.name",
        )
        report.expect(
            _is_uuid(body.get("id")),
            "the new server has a UUID id",
            hint=f"got id {body.get('id')!r}",
        )
        ids.append(str(body.get("id")))
    second = client.post("/api/servers", json={"name": second_name})
    if second.status_code == 201:
        ids.append(str(second.json().get("id")))

    listed = client.get("/api/servers")
    report.equal(listed.status_code, 200, "GET /api/servers answers 200")
    if listed.status_code == 200:
        names = [server.get("name") for server in listed.json()]
        report.expect(
            first_name in names
            and second_name in names
            and names.index(first_name) < names.index(second_name),
            "GET /api/servers lists them, oldest first",
            hint=f"got the names {names[-5:]!r}; ORDER BY rowid",
        )

    _error_shape(
        report,
        client.post("/api/servers", json={"name": " x "}),
        400,
        "a name too short once trimmed",
    )
    _error_shape(
        report,
        client.post("/api/servers", json={"name": "x" * 101}),
        400,
        "a name of 101 characters",
    )
    _error_shape(
        report, client.post("/api/servers", json={"name": 42}), 400, "a name that is a number"
    )
    _error_shape(
        report,
        client.post(
            "/api/servers", content=b"{not json", headers={"content-type": "application/json"}
        ),
        400,
        "a body that is not JSON",
    )
    return ids


def probe_channels(client: httpx.Client, report: Report, server_id: str) -> None:
    """Create channels in an existing server, list them, and try the error cases."""
    created = client.post(f"/api/servers/{server_id}/channels", json={"name": " general "})
    report.equal(
        created.status_code,
        201,
        "POST .../channels answers 201 Created",
        hint="pass status_code=201 to the route decorator",
    )
    if created.status_code == 201:
        body = created.json()
        report.equal(
            {key: body.get(key) for key in ("name", "server_id")},
            {"name": "general", "server_id": server_id},
            "the channel comes back with its trimmed name and its server's id",
        )
        report.expect(_is_uuid(body.get("id")), "the new channel has a UUID id")
    client.post(f"/api/servers/{server_id}/channels", json={"name": "random"})
    listed = client.get(f"/api/servers/{server_id}/channels")
    report.equal(listed.status_code, 200, "GET .../channels answers 200")
    if listed.status_code == 200:
        names = [channel.get("name") for channel in listed.json()]
        report.equal(
            names,
            ["general", "random"],
            "the server's channels are listed, oldest first",
            hint="only this server's channels, ORDER BY rowid",
        )

    unknown = str(uuid.uuid4())
    not_found = "the catalog returned None: raise ApiError(404, 'server_not_found', ...)"
    _error_shape(
        report,
        client.get(f"/api/servers/{unknown}/channels"),
        404,
        "listing the channels of an unknown server",
        not_found,
    )
    _error_shape(
        report,
        client.post(f"/api/servers/{unknown}/channels", json={"name": "general"}),
        404,
        "creating a channel in an unknown server",
        not_found,
    )
    _error_shape(
        report,
        client.get("/api/servers/not-a-uuid/channels"),
        400,
        "a server id that is not a UUID",
        "annotate the parameter as server_id: uuid.UUID",
    )
    _error_shape(
        report,
        client.post(f"/api/servers/{server_id}/channels", json={"name": ""}),
        400,
        "an empty channel name",
    )
