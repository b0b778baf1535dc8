"""Which web pages may open a WebSocket to Accord: its own, and those it was told to trust.

A browser lets any page open a WebSocket to any address (the same-origin policy does not cover
them), sending its own origin in the `Origin` header. Without a check, a page on any site that
an attendee visits could join their Accord on localhost, read the channels and post as them:
cross-site WebSocket hijacking. So the handshake is refused (403) unless the page came from
Accord itself (the origin's host and port are the request's Host), or from an origin listed in
ACCORD_ALLOWED_ORIGINS. Clients that are not browsers send no Origin and are let in: they could
send any Origin they like anyway, so only authentication (not Accord's job here) could stop
them.
"""

from urllib.parse import urlsplit


def normalise_origin(origin: str) -> str | None:
    """`scheme://host[:port]`, lower-case, or None for an origin that is not one ("null",
    a path, another scheme)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a WebSocket handshake with this Origin (None: not sent) may go on."""
    if origin is None:
        return True
    normal = normalise_origin(origin)
    if normal is None:
        return False
    if normal in allowed:
        return True
    scheme = normal.split("://", 1)[0]
    return host is not None and normalise_origin(f"{scheme}://{host.strip()}") == normal
