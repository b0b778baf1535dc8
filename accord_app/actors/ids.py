"""Actor ids: 64 lowercase hex digits, the same in every process that hosts the namespace.

An id is the actor's address and its storage file's name, so it is validated before it can
reach a path or a query. The last 4 digits are a tag derived from the namespace name, which
lets `id_from_string` refuse an id minted by another namespace, as Durable Objects do. With 16
bits a foreign id slips through once in 65 536 tries; Cloudflare's ids carry a longer,
signed namespace part, which we do not need inside one trusted deployment.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass

from accord_app.actors.errors import InvalidActorId

ID_LENGTH = 64
TAG_LENGTH = 4
_ID_PATTERN = re.compile(r"[0-9a-f]{64}")


def namespace_tag(namespace: str) -> str:
    return hashlib.sha256(f"accord-namespace:{namespace}".encode()).hexdigest()[:TAG_LENGTH]


@dataclass(frozen=True, slots=True)
class ActorId:
    """An actor's identity: its namespace and its 64-digit hex string."""

    namespace: str
    hex: str

    def __str__(self) -> str:
        return self.hex


def id_from_name(namespace: str, name: str) -> ActorId:
    """The same name always gives the same id (sha256: no registry, no process-local state)."""
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()
    return ActorId(namespace, digest[: ID_LENGTH - TAG_LENGTH] + namespace_tag(namespace))


def new_unique_id(namespace: str) -> ActorId:
    """A random id (from the OS's CSPRNG, so every process can mint them without coordination)."""
    return ActorId(
        namespace, secrets.token_hex(ID_LENGTH // 2)[:-TAG_LENGTH] + namespace_tag(namespace)
    )


def id_from_string(namespace: str, text: str) -> ActorId:
    """Parse an id from outside (a URL, a message); raise InvalidActorId if it is not one."""
    if not isinstance(text, str) or not _ID_PATTERN.fullmatch(text):
        shown = repr(text)[:80]
        raise InvalidActorId(
            f"{shown} is not an actor id: expected {ID_LENGTH} lowercase hex digits"
        )
    if text[-TAG_LENGTH:] != namespace_tag(namespace):
        raise InvalidActorId(
            f"actor id {text[:12]}… belongs to another namespace than {namespace!r}"
        )
    return ActorId(namespace, text)
