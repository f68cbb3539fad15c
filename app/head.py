"""HEAD for every GET: the same status and headers as the GET of the URL, with no body.

FastAPI routes answer only the methods they declare, so a fetcher that checks a report's ETag
with HEAD got 405. RFC 9110 (9.3.2) asks HEAD to answer exactly as GET without content: the
request runs as a GET and the body is dropped on the way out, so the ETag, Content-Length,
Content-Type and caching headers are those of the GET (and a 304 stays a 304)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, without_body)
