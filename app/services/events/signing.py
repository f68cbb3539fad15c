"""Standard Webhooks signatures (https://www.standardwebhooks.com, symmetric scheme v1).

A secret is `whsec_` followed by the base64 of 32 random bytes; the key is those bytes. The
signed content is `{webhook-id}.{webhook-timestamp}.{body}` (the exact bytes sent), signed with
HMAC-SHA256 and sent base64-encoded as `v1,<signature>`. While a rotated-out secret is still
valid, each delivery is signed with both, space-separated, so a receiver that holds either one
verifies it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(signature(s, msg_id, timestamp, body) for s in keys)
