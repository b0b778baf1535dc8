"""A cap on request bodies, so a client cannot make the server buffer gigabytes."""

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord_app.errors import error_response

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Pure ASGI middleware: refuse bodies over `max_bytes` with a 413 error body.

    A declared Content-Length is checked before anything is read. A chunked body is counted as
    it arrives; the HTTPException raised from inside the endpoint's read goes through FastAPI's
    exception handlers like any other, so the client gets the usual JSON answer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"The request body is larger than {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "payload_too_large", self.message)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, detail=self.message)
            return message

        await self.app(scope, counting_receive, send)
