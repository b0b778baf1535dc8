"""What clients send. Validation lives here so every endpoint applies the same rules."""

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

NAME_MIN, NAME_MAX = 3, 100
# Format characters (zero-width space, ...), separators and combining marks show nothing alone.
_INVISIBLE = {"Cf", "Zs", "Zl", "Zp", "Mn", "Me"}


def clean_name(value: str, low: int = NAME_MIN, high: int = NAME_MAX) -> str:
    """Trim a display name and check it: low..high characters, printable, valid Unicode.

    Lone surrogates ("\\ud800") are valid in JSON text but cannot be stored as UTF-8, and control
    characters would break every list they are shown in, so both are refused up front.
    """
    name = value.strip()
    if any(0xD800 <= ord(char) <= 0xDFFF for char in name):
        raise ValueError("must be valid Unicode text (it contains a lone surrogate)")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise ValueError("must not contain control characters such as newlines or tabs")
    if name and all(unicodedata.category(char) in _INVISIBLE for char in name):
        raise ValueError("must contain visible characters")
    if not low <= len(name) <= high:
        raise ValueError(
            f"must be {low} to {high} characters long once trimmed (it has {len(name)})"
        )
    return name


Name = Annotated[
    StrictStr,
    AfterValidator(clean_name),
    Field(
        description="Trimmed of surrounding spaces; 3 to 100 characters must remain.",
        json_schema_extra={"minLength": NAME_MIN, "maxLength": NAME_MAX},
        examples=["Python Lisbon"],
    ),
]


class NameIn(BaseModel):
    """The body of POST /api/servers and POST /api/servers/{server_id}/channels."""

    model_config = ConfigDict(extra="ignore")

    name: Name
