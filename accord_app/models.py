"""What clients send. Validation lives here so every endpoint applies the same rules."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from accord_app.names import check_name

NAME_MIN, NAME_MAX = 3, 100


def clean_name(value: str) -> str:
    """A server or channel name: the rule of accord_app/names.py, 3 to 100 characters."""
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
