"""ACCORD_REPLICATION and its companions: read from the environment, checked with a sentence."""

import pytest

from accord_app.settings import Settings


def test_replication_is_off_unless_named() -> None:
    settings = Settings.from_env({})
    assert settings.replication is None
    assert settings.bookmark_retention_days == 30


def test_replication_takes_nats_urls() -> None:
    urls = "nats://127.0.0.1:4222,nats://127.0.0.1:4223"
    settings = Settings.from_env(
        {
            "ACCORD_REPLICATION": urls,
            "ACCORD_REPLICATION_TIMEOUT": "1.5",
            "ACCORD_BOOKMARK_RETENTION_DAYS": "7",
        }
    )
    assert (settings.replication, settings.replication_timeout) == (urls, 1.5)
    assert settings.bookmark_retention_days == 7


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ACCORD_REPLICATION", "http://127.0.0.1:4222", "must be NATS URLs"),
        ("ACCORD_REPLICATION", "nats://a:1,,", "must be NATS URLs"),
        ("ACCORD_REPLICATION_TIMEOUT", "0", "must be above 0"),
        ("ACCORD_BOOKMARK_RETENTION_DAYS", "-1", "must be above 0"),
        ("ACCORD_REPLICATION_TIMEOUT", "soon", "must be a number"),
    ],
)
def test_bad_replication_settings_are_refused_with_a_sentence(
    name: str, value: str, message: str
) -> None:
    environ = {"ACCORD_REPLICATION": "nats://127.0.0.1:4222", name: value}
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)
