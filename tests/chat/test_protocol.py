"""The channel protocol without any socket: what each frame means, and what is refused."""

import json

import pytest

from accord_app.chat.protocol import (
    MAX_MESSAGE_CHARS,
    ProtocolError,
    Resume,
    SendMessage,
    Typing,
    clean_username,
    encode,
    parse_frame,
)
from accord_app.chat.ratelimit import TokenBucket
from accord_app.chat.sharding import Sharding, shard_key


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("hello", SendMessage("hello")),
        ("  spaced out  ", SendMessage("spaced out")),
        ("{not json at all", SendMessage("{not json at all")),
        ('{"no": "type"}', SendMessage('{"no": "type"}')),
        ("two\nlines", SendMessage("two\nlines")),
        ('{"type": "message", "message": "hi", "nonce": "n-1"}', SendMessage("hi", "n-1")),
        ('{"type": "message", "message": "hi"}', SendMessage("hi")),
        ('{"type": "resume", "after_seq": 0}', Resume(0)),
        ('{"type": "resume", "after_seq": 41}', Resume(41)),
        ('{"type": "typing"}', Typing()),
        ("x" * MAX_MESSAGE_CHARS, SendMessage("x" * MAX_MESSAGE_CHARS)),
    ],
)
def test_frames_are_understood(frame: str, expected: object) -> None:
    assert parse_frame(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("", "empty_message"),
        ("   \n ", "empty_message"),
        ("x" * (MAX_MESSAGE_CHARS + 1), "message_too_long"),
        ("bell\x07", "invalid_message"),
        ('{"type": "message", "message": "\\ud800"}', "invalid_message"),
        ('{"type": "message", "message": 5}', "invalid_frame"),
        ('{"type": "message", "message": "hi", "nonce": ""}', "invalid_nonce"),
        ('{"type": "message", "message": "hi", "nonce": 7}', "invalid_nonce"),
        ('{"type": "resume", "after_seq": -1}', "invalid_after_seq"),
        ('{"type": "resume", "after_seq": true}', "invalid_after_seq"),
        ('{"type": "resume", "after_seq": "3"}', "invalid_after_seq"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": null}', "unknown_type"),
    ],
)
def test_bad_frames_are_refused_with_a_code_and_a_sentence(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(frame)
    assert caught.value.code == code
    error = caught.value.frame()
    assert error["type"] == "error" and error["code"] == code
    assert error["message"].endswith(".") and len(error["message"]) > 10


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "tab\there", None])
def test_bad_usernames_are_refused(name: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        clean_username(name)
    assert caught.value.code == "invalid_username"


def test_usernames_are_trimmed() -> None:
    assert clean_username("  Ada  ") == "Ada"
    assert clean_username("x" * 32) == "x" * 32


def test_encode_is_compact_json_that_keeps_unicode() -> None:
    text = encode({"type": "message", "message": "olá 👋"})
    assert json.loads(text) == {"type": "message", "message": "olá 👋"}
    assert "olá 👋" in text and ", " not in text


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, updated=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.take(100.5) is True
    assert bucket.take(100.5) is False
    assert bucket.take(110.0) and bucket.tokens == pytest.approx(2)  # refilled to the burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0.5)])
def test_token_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_shard_keys_come_from_the_path_parts() -> None:
    assert shard_key(Sharding.CHANNEL, "s1", "c1") == "channel:c1"
    assert shard_key(Sharding.CHANNEL, "s1", "c2") != shard_key(Sharding.CHANNEL, "s1", "c1")
    assert shard_key(Sharding.SERVER, "s1", "c1") == shard_key(Sharding.SERVER, "s1", "c2")
    assert shard_key(Sharding.SERVER, "s1", "c1") != shard_key(Sharding.SERVER, "s2", "c1")
    assert shard_key(Sharding.GLOBAL, "s1", "c1") == shard_key(Sharding.GLOBAL, "s2", "c9")
    assert Sharding("server") is Sharding.SERVER


def test_a_server_wide_path_names_an_actor_only_when_its_key_needs_no_channel() -> None:
    assert shard_key(Sharding.SERVER, "s1") == "server:s1"
    assert shard_key(Sharding.GLOBAL, "s1") == "global"
    with pytest.raises(ValueError, match="names no single actor"):
        shard_key(Sharding.CHANNEL, "s1")


def test_a_refused_message_keeps_its_nonce_so_the_client_knows_which_failed() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame('{"type": "message", "message": "   ", "nonce": "n-7"}')
    assert caught.value.frame() == {
        "type": "error",
        "code": "empty_message",
        "message": "A message needs some text.",
        "nonce": "n-7",
    }
    with pytest.raises(ProtocolError) as plain:
        parse_frame("")
    assert "nonce" not in plain.value.frame()


def test_a_resume_beyond_sqlite_integers_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame('{"type": "resume", "after_seq": 9223372036854775808}')
    assert caught.value.code == "invalid_after_seq"
    assert parse_frame('{"type": "resume", "after_seq": 9223372036854775807}') == Resume(2**63 - 1)


def test_a_plain_string_sharding_mode_is_the_same_mode() -> None:
    assert shard_key("server", "s1", "c1") == shard_key(Sharding.SERVER, "s1", "c1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown sharding mode"):
        shard_key("everything", "s1", "c1")  # type: ignore[arg-type]
