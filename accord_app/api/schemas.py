"""The API's schemas: the records it hands out (plain dataclasses, which FastAPI serialises as
they are, and the catalog returns) and what clients send (pydantic models, so every endpoint
applies the same validation)."""

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from accord_app.api.names import check_name

# Servers, channels and messages are named by UUIDs, written in lower case with hyphens.
Id = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


@dataclass(frozen=True)
class Server:
    """A community, like a Discord "server": it owns channels."""

    id: Id
    name: str


@dataclass(frozen=True)
class Channel:
    """A room inside a server. Its messages live in an actor, not in the catalog."""

    id: Id
    name: str
    server_id: Id


@dataclass(frozen=True)
class ErrorBody:
    """Every error answer: a sentence for people and a stable code for programs."""

    message: str
    code: str


@dataclass(frozen=True)
class Message:
    """One chat message. `seq` numbers a channel's messages 1, 2, 3, ... without gaps."""

    id: Id
    seq: int
    timestamp: int  # milliseconds since the epoch
    username: str
    message: str


@dataclass(frozen=True)
class ChannelActivity:
    """What a sidebar with unread badges needs of a channel: its message count and latest
    message. When the channel's actor could not be reached, `error` says why and the rest is
    None: one unreachable channel does not fail the whole list."""

    channel_id: Id
    messages: int | None
    latest: Message | None
    error: ErrorBody | None = None


@dataclass(frozen=True)
class AnnouncementIn:
    """A server-wide announcement: the same message in every channel of the server."""

    message: str


@dataclass(frozen=True)
class Delivery:
    """An announcement in one channel: the message it became, or why it did not arrive."""

    channel_id: Id
    message: Message | None
    error: ErrorBody | None = None


@dataclass(frozen=True)
class Announcement:
    id: str
    delivered: int
    failed: int
    channels: list[Delivery]


NAME_MIN, NAME_MAX = 3, 100


def clean_name(value: str) -> str:
    """A server or channel name: the rule of accord_app/api/names.py, 3 to 100 characters."""
    return check_name(value, NAME_MIN, NAME_MAX)


Name = Annotated[
    StrictStr,
    AfterValidator(clean_name),
    Field(
        description="Trimmed of surrounding spaces and NFC-normalised; 3 to 100 visible"
        " characters of one script, with no invisible or layout characters.",
        json_schema_extra={"minLength": NAME_MIN, "maxLength": NAME_MAX},
        examples=["Python Lisbon"],
    ),
]


class NameIn(BaseModel):
    """The body of POST /api/servers and POST /api/servers/{server_id}/channels."""

    model_config = ConfigDict(extra="ignore")

    name: Name
