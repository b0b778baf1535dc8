"""Actor ids: deterministic, random, validated before they reach a path."""

import re
from pathlib import Path

import pytest

from accord_app.actors import InvalidActorId, InvalidName, Runtime
from accord_app.actors.actor import Actor
from accord_app.actors.ids import id_from_name, id_from_string, new_unique_id

HEX64 = re.compile(r"[0-9a-f]{64}")


def test_id_from_name_is_deterministic_and_namespaced() -> None:
    first = id_from_name("rooms", "general")
    assert first == id_from_name("rooms", "general")
    assert HEX64.fullmatch(first.hex)
    assert first.hex != id_from_name("rooms", "random").hex
    assert first.hex != id_from_name("limits", "general").hex


def test_unique_ids_differ_and_parse_back() -> None:
    ids = {new_unique_id("rooms").hex for _ in range(100)}
    assert len(ids) == 100
    some = next(iter(ids))
    assert id_from_string("rooms", some).hex == some


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "A" * 64,
        "g" * 64,
        "../" * 21 + "a",
        "0" * 63 + "/",
        "0" * 65,
        id_from_name("rooms", "x").hex + "\n",
    ],
)
def test_invalid_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidActorId, match="64 lowercase hex digits"):
        id_from_string("rooms", text)


def test_id_of_another_namespace_is_refused(tmp_path: Path) -> None:
    foreign = id_from_name("limits", "x")
    with pytest.raises(InvalidActorId, match="another namespace"):
        id_from_string("rooms", foreign.hex)
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Actor)
    with pytest.raises(InvalidActorId, match="belongs to namespace 'limits'"):
        rooms.get(foreign)
    with pytest.raises(InvalidActorId):
        rooms.get("not-an-id")
    runtime.executor.shutdown()


@pytest.mark.parametrize("name", ["", "Rooms", "../etc", "a/b", "x" * 65, "-dash"])
def test_bad_namespace_names_are_refused(tmp_path: Path, name: str) -> None:
    runtime = Runtime(tmp_path)
    with pytest.raises(InvalidName):
        runtime.namespace(name, Actor)
    runtime.executor.shutdown()
