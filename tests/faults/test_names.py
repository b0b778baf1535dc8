"""Names that lie are refused, by one rule for HTTP and WebSocket alike (item 6)."""

import json
import re
import unicodedata
from typing import Any
from urllib.parse import quote

import pytest
from fault_tools import refused
from websockets.sync.client import connect

from accord_app.api.names import check_name

LYING = {
    "\u0430da": "one script",  # a Cyrillic a beside Latin letters
    "ada\u200b": "invisible formatting",  # a zero-width space
    "\u200b\u200b\u200b": "invisible formatting",
    "\u202eada": "invisible formatting",  # right-to-left override
    "abc\u202egnp.exe": "invisible formatting",
    "\ufffd\ufffd\ufffd": re.escape("U+FFFD"),  # what undecodable bytes become
    "\u3164\u3164\u3164": "blank",  # Hangul filler
    "\u2800\u2800\u2800": "blank",  # braille blank
    "a" + "\u0301" * 99: "marks",
    "ab\u2028cd": "line separator",
    "ab\ufdd0cd": "unassigned",  # a noncharacter
}
HONEST = {
    "José": "José",
    "Jose\u0301": "José",  # the same name, typed as e + accent: normalised (NFC)
    "日本語テスト": "日本語テスト",  # Han with kana
    "김철수": "김철수",
    "Мария": "Мария",
    "👩\u200d👩\u200d👧 family": "👩\u200d👩\u200d👧 family",  # joiners between emoji
    "  Ada  ": "Ada",
}


@pytest.mark.parametrize(("name", "why"), sorted(LYING.items()))
def test_lying_names_are_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_name(name, 1, 100)


@pytest.mark.parametrize(("name", "kept"), sorted(HONEST.items()))
def test_honest_names_are_kept_normalised(name: str, kept: str) -> None:
    assert check_name(name, 1, 100) == kept
    assert unicodedata.is_normalized("NFC", check_name(name, 1, 100))


@pytest.mark.parametrize("name", sorted(LYING))
def test_the_api_refuses_them_as_server_and_channel_names(start: Any, name: str) -> None:
    running = start()
    padded = name if len(name) >= 3 else name * 3
    response = running.http.post("/api/servers", json={"name": padded})
    assert response.status_code == 400 and response.json()["code"] == "invalid_body"
    server_id = running.http.post("/api/servers", json={"name": "Honest"}).json()["id"]
    response = running.http.post(f"/api/servers/{server_id}/channels", json={"name": padded})
    assert response.status_code == 400 and response.json()["code"] == "invalid_body"
    assert [s["name"] for s in running.http.get("/api/servers").json()] == ["Honest"]


@pytest.mark.parametrize("name", [*sorted(LYING), "%ff%fe"])
def test_the_websocket_refuses_them_as_usernames(start: Any, name: str) -> None:
    running = start()
    path = running.channel()
    # "%ff%fe" goes as it is: the bytes FF FE are not UTF-8 and decode to U+FFFD.
    query = name if name == "%ff%fe" else quote(name)
    status, body = refused(running.ws_url(path, query))
    assert status == 400 and body["code"] == "invalid_username"


def test_one_name_typed_two_ways_is_one_member(start: Any) -> None:
    running = start()
    path = running.channel()
    with (
        connect(running.ws_url(path, quote("José"))) as first,
        connect(running.ws_url(path, quote("Jose\u0301"))) as second,
    ):
        json.loads(first.recv(timeout=5))
        presence = json.loads(second.recv(timeout=5))
        assert presence == {"type": "presence", "members": ["José"]}
