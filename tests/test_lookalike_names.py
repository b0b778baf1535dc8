"""Names that would show as another one (accord_app/api/names.py): glyph selectors and joiners
with nothing to select or join, the announcer's look-alikes, and the skeletons that tell which
names render alike."""

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from accord_app.api.names import check_name, looks_like, skeleton

if TYPE_CHECKING:
    from conftest import LiveServer

SHOW_AS_ANOTHER = {
    "ada\ufe0f": "U+FE0F",  # an emoji's variation selector after a letter
    "ada\ufe00": "U+FE00",
    "ada\U000e0100": "U+E0100",
    "a\u034fda": "U+034F",  # the combining grapheme joiner
    "ada\u180b": "U+180B",  # a Mongolian free variation selector after Latin
    "a\u200dda": "U+200D",  # a joiner between Latin letters
    "a\u200cda": "U+200C",
    "\U0001f4e3\ufe0f": "look like",  # the announcer, 📣, in its emoji form
}
# Where those characters do select or join something, the name stays as typed.
HONEST = [
    "\u2764\ufe0f Ada",  # ❤️: the heart's emoji form
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # 🏳️‍🌈
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # 👩🏽‍💻, a skin tone then a joiner
    "\u0915\u094d\u200d\u0937",  # Devanagari: a half-form joined
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: a non-joiner between words
    "\u182e\u1823\u1829\u180b\u182d\u1823\u182f",  # Mongolian with a variation selector
]


@pytest.mark.parametrize(("name", "why"), sorted(SHOW_AS_ANOTHER.items()))
def test_a_name_that_would_show_as_another_is_refused(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_name(name, 1, 100)


@pytest.mark.parametrize("name", HONEST)
def test_selectors_and_joiners_that_do_their_job_are_kept(name: str) -> None:
    assert check_name(name, 1, 100) == name


@pytest.mark.parametrize(
    ("name", "present"),
    [
        ("\u0430\u0501\u0430", "ada"),  # all Cyrillic
        ("\u0251d\u0251", "ada"),  # Latin alphas
        ("al\u0131ce", "alice"),  # a dotless i
        ("\u0410DA", "ADA"),
        ("b0b", "bOb"),
        ("wi11", "will"),
        ("rnary", "mary"),
        ("ad\u0430\u200b", "ada\u200b"),  # ignorables aside
    ],
)
def test_look_alikes_share_a_skeleton(name: str, present: str) -> None:
    assert skeleton(name) == skeleton(present)
    assert looks_like(name, ["bob", present]) == present


def test_different_names_do_not() -> None:
    assert looks_like("ada", ["ada", "adam", "Ada", "ad\u00e1"]) is None  # itself is not one


def test_the_announcers_look_alike_is_refused_as_a_username_and_a_server_name(
    live_server: "LiveServer",
) -> None:
    http = live_server.http
    response = http.post("/api/servers", json={"name": "\U0001f4e3\ufe0f"})
    assert response.status_code == 400 and "look like" in response.json()["message"]
    response = http.post("/api/servers", json={"name": "ada\ufe0f"})
    assert response.status_code == 400 and "U+FE0F" in response.json()["message"]
    server_id = http.post("/api/servers", json={"name": "Workshop"}).json()["id"]
    channel_id = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"}).json()[
        "id"
    ]
    path = f"/api/servers/{server_id}/channels/{channel_id}/connect"
    announcer_alike = quote("\U0001f4e3\ufe0f")
    url = f"{live_server.server.ws_url}{path}?username={announcer_alike}"
    with pytest.raises(InvalidStatus) as refused, connect(url, proxy=None):
        pass
    assert refused.value.response.status_code == 400
    assert b"invalid_username" in refused.value.response.body


def test_a_server_name_that_looks_like_anothers_is_refused(live_server: "LiveServer") -> None:
    http = live_server.http
    assert http.post("/api/servers", json={"name": "ada lab"}).status_code == 201
    refused = http.post("/api/servers", json={"name": "\u0251d\u0251 lab"})  # Latin alphas
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "name_looks_like" and "'ada lab'" in refused.json()["message"]
    assert http.post("/api/servers", json={"name": "ada lab"}).status_code == 201  # itself
    names = [server["name"] for server in http.get("/api/servers").json()]
    assert names == ["ada lab", "ada lab"]
