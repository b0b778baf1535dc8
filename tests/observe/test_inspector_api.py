"""The inspector's JSON answers on a real server: one look, where a channel goes, and the API's
errors for what it cannot answer."""

from typing import TYPE_CHECKING

from accord_app.actors import ids
from accord_app.chat.sharding import Sharding, shard_key

if TYPE_CHECKING:
    from conftest import LiveServer


def test_a_look_names_each_actor_after_its_channel(live_server: "LiveServer") -> None:
    http = live_server.http
    server_id = http.post("/api/servers", json={"name": "Lisbon"}).json()["id"]
    channel_id = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"}).json()[
        "id"
    ]
    assert http.get(f"/api/servers/{server_id}/channels/{channel_id}/messages").status_code == 200
    actor = ids.id_from_name("channels", shard_key(Sharding.CHANNEL, server_id, channel_id)).hex
    view = http.get("/inspect/api/view").json()
    assert view["scope"] == "process"
    [tile] = view["actors"]
    assert (tile["id"], tile["name"], tile["awake"]) == (actor, "#general · Lisbon", True)
    assert [worker["actors"] for worker in view["workers"]] == [1]

    where = http.get("/inspect/api/where", params={"channel_id": channel_id}).json()
    assert where == {
        "channel": "#general · Lisbon",
        "key": f"channel:{channel_id}",
        "actor": actor,
        "worker": None,
        "address": "this process",
    }


def test_what_the_inspector_cannot_answer_is_a_json_error(live_server: "LiveServer") -> None:
    http = live_server.http
    missing = http.get("/inspect/api/where", params={"channel_id": "no-such-channel"})
    assert (missing.status_code, missing.json()["code"]) == (404, "channel_not_found")
    not_a_worker = http.get("/inspect/api/workers/2/look")
    assert (not_a_worker.status_code, not_a_worker.json()["code"]) == (404, "not_found")
    no_channel = http.get("/inspect/api/where")
    assert no_channel.status_code == 400 and "code" in no_channel.json()
