"""Probes of the Accord HTTP contract, shared by the chapters' self-checks and the tests.

Each probe sends real requests through an httpx client and records what it saw in a Report,
so the same code grades an attendee's endpoints in a notebook and the reference app in CI.
"""

import sqlite3
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
        if first_name in names and second_name in names:
            hint = f"got the names {names[-5:]!r}: select_servers(conn) lists oldest first"
        else:
            hint = f"got the names {names[-5:]!r}: list what select_servers(conn) returns"
        report.expect(
            first_name in names
            and second_name in names
            and names.index(first_name) < names.index(second_name),
            "GET /api/servers lists them, oldest first",
            hint=hint,
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


def probe_shared_counter(
    urls: Sequence[str], db_path: Path, report: Report, hold_seconds: float = 0.5
) -> None:
    """Ten visits one after another, then ten at the same moment, over the instances at `urls`
    that share the counter in `db_path`: each visit must count exactly once."""

    def visit(url: str) -> int | None:
        try:
            response = httpx.post(f"{url}/visit", timeout=10, trust_env=False)
        except httpx.HTTPError:
            return None
        visits = response.json().get("visits") if response.status_code == 200 else None
        return visits if isinstance(visits, int) else None

    one_by_one = [visit(url) for url in list(urls) * 5]
    if len(set(one_by_one)) == 1 and one_by_one[0] is not None:
        hint = "every visit saw the same count: was the UPDATE committed? (conn.commit())"
    else:
        hint = "read and write the count in the database, not in a variable"
    report.equal(
        one_by_one, list(range(1, 11)), "ten visits, one after another, count 1 to 10", hint=hint
    )
    # Ten at once. A second connection holds the write lock meanwhile, so every visit has
    # started before any can write: a count read first and written later shows every time.
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(visit, url) for url in list(urls) * 5]
        time.sleep(hold_seconds)
        holder.execute("ROLLBACK")
        holder.close()
        at_once = [future.result() for future in futures]
    numbers = sorted(number for number in at_once if number is not None)
    if len(numbers) < 10:
        hint = (
            f"{10 - len(numbers)} of 10 visits failed: a transaction that reads before it writes"
            " cannot wait for the write lock (database is locked). Take it first with BEGIN"
            " IMMEDIATE, or read and write in one statement: UPDATE ... RETURNING"
        )
    elif len(set(numbers)) < 10:
        hint = (
            f"got {numbers}: two visits read the same count before either wrote it (a lost"
            " update). Read and write in one statement: UPDATE counter SET value = value + 1"
            " RETURNING value"
        )
    else:
        hint = ""
    report.equal(numbers, list(range(11, 21)), "ten visits at once count 11 to 20", hint=hint)
    with sqlite3.connect(db_path) as conn:
        stored = conn.execute("SELECT value FROM counter").fetchone()[0]
    conn.close()
    report.equal(stored, 20, "the database holds 20 afterwards", hint="did you commit?")
