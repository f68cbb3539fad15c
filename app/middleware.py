"""ASGI middleware: request id and context, body-size limit, access log, last-resort 500."""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.config import Network
from app.context import RequestContext, set_request_context
from app.errors import PROBLEM_JSON, negotiate_language, problem_body
from app.proxies import client_address

logger = logging.getLogger("sipas.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_REASON_CHARS = 500


class BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _reason(raw: bytes | None) -> str | None:
    """X-Action-Reason may carry UTF-8 bytes or percent-encoded UTF-8 (headers are Latin-1)."""
    if not raw:
        return None
    text = unquote(raw.decode("utf-8", errors="replace"))
    text = unicodedata.normalize("NFC", text).strip()
    return text[:MAX_REASON_CHARS] or None


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, trusted_proxies: Sequence[Network] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted_proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        client = scope.get("client")
        forwarded = [
            value.decode("latin-1")
            for key, value in scope.get("headers", [])
            if key == b"x-forwarded-for"
        ]
        set_request_context(
            RequestContext(
                request_id=request_id,
                client_ip=client_address(
                    client[0] if client else None, forwarded, self.trusted_proxies
                ),
                reason=_reason(_header(scope, b"x-action-reason")),
            )
        )

        started = time.perf_counter()
        status: dict[str, int] = {"code": 0}
        overflow = False

        async def send_with_id(message: Message) -> None:
            if overflow and status["code"] == 0:
                return  # the app's answer to a truncated body is replaced by the 413 below
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        async def problem(code: int, name: str, detail: str) -> None:
            accept = _header(scope, b"accept-language")
            language = negotiate_language(accept.decode("latin-1") if accept else None)
            body = problem_body(
                code,
                name,
                detail,
                request_id=request_id,
                instance=scope.get("path"),
                language=language,
            )
            payload = json.dumps(body, ensure_ascii=False).encode()
            status["code"] = code
            await send(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(payload)).encode()),
                        (b"x-request-id", request_id.encode()),
                        (b"content-language", language.encode()),
                        (b"vary", b"Accept-Language"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})

        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        too_large = f"The request body is larger than the limit of {limit} bytes."
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, "payload_too_large", too_large)
            self._log(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The framework may catch this while parsing; the flag makes the 413 win.
                    overflow = True
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            pass
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            if status["code"] == 0:
                await problem(
                    500,
                    "internal_error",
                    "An unexpected error occurred. Quote the request id when you report it.",
                )
        if overflow and status["code"] == 0:
            await problem(413, "payload_too_large", too_large)
        self._log(scope, status["code"], started)

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        extra: dict[str, Any] = {
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        metrics.observe(str(scope.get("method")), metrics.route_of(scope), status, seconds)
        logger.info("request", extra=extra)
