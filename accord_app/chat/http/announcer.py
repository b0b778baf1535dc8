"""Who may speak as the server: announcements are signed 📣 and reach every channel at once,
so they need a privilege, a bearer token the operator chooses (ACCORD_ADMIN_TOKEN).

The model: whoever holds the token is the server's administrator; nobody else announces.
Without a token set, nobody does (the endpoints answer 403 and say how to turn them on): a
kit started with its defaults has no speaker that a curious script could borrow. The one
exception is a cluster's worker calling another through the router for an announcement it
has already admitted: such a call carries the router's secret (accord_app/web/middleware.py).

A token is one shared secret, not an account: a deployment with several administrators, or
the server's owner as its announcer, would check a signed-in user here instead.
"""

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accord_app.web.errors import ApiError
from accord_app.web.middleware import is_internal

# auto_error=False: a missing header gets our own JSON refusal, not FastAPI's {"detail": ...}.
# The scheme also puts an "Authorize" button for the token in the /docs page.
bearer = HTTPBearer(auto_error=False, description="The server's ACCORD_ADMIN_TOKEN.")


def announcer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A dependency: returns if the request may announce, raises the refusal otherwise."""
    if is_internal(request.scope):
        return
    token: str | None = request.app.state.settings.admin_token
    if token is None:
        raise ApiError(
            403,
            "announcements_disabled",
            "Announcements are off on this server: start it with ACCORD_ADMIN_TOKEN set to a"
            " secret of your choice, and send it as 'Authorization: Bearer <token>'.",
        )
    given = "" if credentials is None else credentials.credentials
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(
            401,
            "admin_token_required",
            "Announcements need the server's admin token: send 'Authorization: Bearer <token>'"
            " with the value of its ACCORD_ADMIN_TOKEN.",
        )
