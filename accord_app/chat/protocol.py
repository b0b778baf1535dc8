"""The channel's WebSocket protocol, as pure functions: frames in, frames out, no sockets.

Client to server:
- a plain text frame is a message: the whole frame is its text;
- a JSON object with a "type" is a command:
  {"type": "message", "message": str, "nonce": str}  a message that is stored once per nonce,
  {"type": "resume", "after_seq": int}               replay what came after that seq,
  {"type": "typing"}                                 tell the others, store nothing.

Server to client: {"type": "ack" | "message", "id", "seq", "timestamp", "username", "message"},
{"type": "presence", "members"} (to the joiner), {"type": "presence_diff", "joins", "leaves"}
(to every member, at most once per presence.PRESENCE_INTERVAL: the names that came and went
since, each listed where it is now), {"type": "typing", "username"},
{"type": "resumed", "after_seq", "last_seq", "more"} (with more=true, resume again from
last_seq: long absences are replayed in slices) and {"type": "error", "code", "message"}
(plus the "nonce" of the refused message, if it had one; the codes a failure of storage
gives, such as outcome_unknown, are in failures.py). A message sent again with its nonce is
acked with the seq it was stored under, after the members get it again if it is recent (they
dedupe by seq): so an unknown outcome converges on the retry.

Plain text stays a message so that the simplest client (the talk's frontend, `websocat`) works;
a user who types a JSON object with a "type" gets an error frame. Phoenix Channels wrap every
frame in an envelope instead, which is cleaner for machines and heavier for a workshop.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from accord_app.api.names import check_name

MAX_MESSAGE_CHARS = 2000
MAX_USERNAME_CHARS = 32
# Who server-wide announcements come from: a name no member may take.
ANNOUNCER = "📣"
MAX_NONCE_CHARS = 64
# The largest seq a client may name: SQLite's INTEGER is a signed 64-bit number.
MAX_SEQ = 2**63 - 1
# The largest frame the server reads: a full message with its JSON envelope, in UTF-8.
MAX_FRAME_BYTES = 16 * 1024


class ProtocolError(Exception):
    """A frame the channel refuses; sent back as an error frame, the socket stays open."""

    def __init__(self, code: str, message: str, nonce: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.nonce = nonce  # the refused message's nonce, so a client knows which one failed

    def frame(self) -> dict[str, str]:
        frame = {"type": "error", "code": self.code, "message": self.message}
        if self.nonce is not None:
            frame["nonce"] = self.nonce
        return frame


@dataclass(frozen=True)
class SendMessage:
    text: str
    nonce: str | None = None


@dataclass(frozen=True)
class Resume:
    after_seq: int


@dataclass(frozen=True)
class Typing:
    pass


ClientFrame = SendMessage | Resume | Typing


# Control characters (C0 and C1) other than newline, tab and carriage return, and lone
# surrogates (valid in JSON text, impossible in UTF-8). One regex scan: messages are checked on
# the hot path.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_text(text: str, what: str) -> None:
    bad = _FORBIDDEN.search(text)
    if bad is None:
        return
    if "\ud800" <= bad.group() <= "\udfff":
        raise ProtocolError(f"invalid_{what}", f"The {what} is not valid Unicode text.")
    raise ProtocolError(f"invalid_{what}", f"The {what} contains control characters.")


def clean_message(text: str) -> str:
    """Trim a message and check it: not empty, at most MAX_MESSAGE_CHARS characters."""
    text = text.strip()
    if not text:
        raise ProtocolError("empty_message", "A message needs some text.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ProtocolError(
            "message_too_long",
            f"A message has at most {MAX_MESSAGE_CHARS} characters; this one has {len(text)}.",
        )
    _check_text(text, "message")
    return text


def clean_username(raw: str | None) -> str:
    """A username: the rule of accord_app/api/names.py, 1 to MAX_USERNAME_CHARS characters, and
    not the name announcements are signed with."""
    try:
        name = check_name(raw or "", 1, MAX_USERNAME_CHARS)
    except ValueError as error:
        raise ProtocolError("invalid_username", f"The username {error}.") from None
    if name == ANNOUNCER:
        raise ProtocolError("invalid_username", f"The username {ANNOUNCER} is the server's own.")
    return name


def _json_command(text: str) -> dict[str, Any] | None:
    """The frame as a command object, or None when it is plain text."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # a message that happens to start with "{"
    return value if isinstance(value, dict) and "type" in value else None


def parse_frame(text: str) -> ClientFrame:
    """What a text frame asks for; raises ProtocolError for a command it cannot accept."""
    command = _json_command(text)
    if command is None:
        return SendMessage(clean_message(text))
    kind = command["type"]
    if kind == "message":
        message, nonce = command.get("message"), command.get("nonce")
        if not isinstance(message, str):
            raise ProtocolError("invalid_frame", 'A "message" frame needs a "message" string.')
        if nonce is not None and not (
            isinstance(nonce, str) and 1 <= len(nonce) <= MAX_NONCE_CHARS
        ):
            raise ProtocolError(
                "invalid_nonce",
                f'The "nonce" must be a string of 1 to {MAX_NONCE_CHARS} characters.',
            )
        if nonce is not None:
            _check_text(nonce, "nonce")
        try:
            return SendMessage(clean_message(message), nonce)
        except ProtocolError as error:
            error.nonce = nonce
            raise
    if kind == "resume":
        after_seq = command.get("after_seq")
        if (
            isinstance(after_seq, bool)
            or not isinstance(after_seq, int)
            or not 0 <= after_seq <= MAX_SEQ
        ):
            raise ProtocolError(
                "invalid_after_seq", '"after_seq" must be a whole number, 0 or more.'
            )
        return Resume(after_seq)
    if kind == "typing":
        return Typing()
    shown = json.dumps(kind)[:40]
    raise ProtocolError(
        "unknown_type", f"Unknown frame type {shown}; use message, resume or typing."
    )


def encode(frame: dict[str, Any]) -> str:
    # ensure_ascii=False keeps frames short for non-Latin text; the text was checked on the way in.
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
