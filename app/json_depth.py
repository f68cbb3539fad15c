"""Refuse JSON bodies nested deeper than MAX_JSON_DEPTH, before anything parses them.

Python's JSON parser recurses once per level: a body of 100,000 `[` exhausted the recursion
limit while the framework parsed it (before authentication, before any model), and the request
ended as a 500. This ASGI middleware reads the body first (the outer middleware has bounded its
size) and scans its structure without parsing it: strings are cut out with one regular
expression, every byte but brackets dropped, and the running depth summed in C. A body deeper
than the limit is answered 422 `json_too_deep`, naming the limit; any other body goes on, the
same bytes, to the application.

Only bodies the framework would parse as JSON are scanned: a JSON content type, or none.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, FieldError, problem_body

# A JSON string: quotes around anything but quotes and backslashes, or escapes.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (malformed text: an estimate
    that never falls short of what a parser would reach before failing)."""
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            return b"json" in bytes(value).lower()
    return True  # without a content type the framework reads the body as JSON


class JsonDepthMiddleware:
    def __init__(self, app: ASGIApp, *, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if nesting_depth(body) > self.max_depth:
            await self._refuse(scope, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        limit = self.max_depth
        payload = problem_body(
            422,
            "json_too_deep",
            f"The JSON body nests arrays and objects deeper than the limit of {limit} levels.",
            request_id=scope.get("state", {}).get("request_id"),
            instance=scope.get("path"),
            errors=[FieldError("/body", f"nested deeper than {limit} levels", "too_deep")],
            extra={"max_depth": limit},
        )
        data = json.dumps(payload, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the messages already read, then the connection's own."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
