"""Credentials: password hashing, client secrets, and the JWTs the API issues and accepts.

Security decisions:
- Passwords are hashed with Argon2id (pwdlib's defaults). Unknown usernames are checked against a
  dummy hash so a failed login costs the same time whether or not the user exists.
- Client secrets are 256-bit random strings, so a fast SHA-256 digest is enough to store them;
  they are compared in constant time.
- Tokens are HS256 JWTs. Decoding pins the algorithm list (no `none`, no algorithm confusion)
  and requires exp, iat, iss, aud, sub and jti. Each token carries the credential's
  `token_version`; bumping it (deactivation, password change, secret rotation) revokes every
  token issued before.
- A signature is not a licence for any lifetime: a token whose `iat` lies in the future (beyond
  the configured clock skew) or whose `exp - iat` is longer than the lifetime this service
  issues for its kind is refused, so a leaked signing key or a token minted elsewhere cannot
  outlive the configured policy.
- Staff tokens from the password and refresh grants name their sign-in session (`sid`);
  ending the session (logout, refresh token reuse) refuses them at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from jose import JWTError, jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


@lru_cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user) spend the same time and answer False."""
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False
    try:
        return _hasher().verify(password, password_hash)
    except Exception:  # a malformed stored hash must not become a 500 or a success
        return False


def new_client_id() -> str:
    return "cli_" + secrets.token_urlsafe(12)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


_DUMMY_SECRET_HASH = hash_secret("not-a-real-client-secret")


def verify_secret(secret: str, secret_hash: str | None) -> bool:
    expected = secret_hash or _DUMMY_SECRET_HASH
    ok = hmac.compare_digest(hash_secret(secret), expected)
    return ok and secret_hash is not None


@dataclass(frozen=True, slots=True)
class TokenClaims:
    kind: str  # "user" or "client"
    subject_id: uuid.UUID
    version: int
    jti: str
    scopes: frozenset[str]
    issued_at: datetime
    expires_at: datetime
    session_id: uuid.UUID | None = None


class InvalidToken(Exception):
    pass


def issue_token(
    *,
    kind: str,
    subject_id: uuid.UUID,
    version: int,
    scopes: list[str],
    secret: str,
    issuer: str,
    audience: str,
    lifetime: timedelta,
    now: datetime | None = None,
    session_id: uuid.UUID | None = None,
) -> tuple[str, int]:
    """Sign a token; returns it and its lifetime in seconds."""
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": f"{kind}:{subject_id}",
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
        "ver": version,
        "scope": " ".join(sorted(scopes)),
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM), int(lifetime.total_seconds())


def decode_token(
    token: str,
    *,
    secret: str,
    issuer: str,
    audience: str,
    max_lifetimes: Mapping[str, timedelta],
    clock_skew: timedelta,
    now: datetime | None = None,
) -> TokenClaims:
    """The claims of a token this service signed, within the lifetime `max_lifetimes` allows
    its kind ("user" or "client") and issued no later than `clock_skew` from now."""
    skew = int(clock_skew.total_seconds())
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unexpected algorithm")
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"leeway": skew, **{f"require_{c}": True for c in _REQUIRED_CLAIMS}},
        )
    except JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    try:
        kind, _, raw_id = str(claims["sub"]).partition(":")
        if kind not in ("user", "client"):
            raise ValueError(kind)
        version = claims.get("ver")
        if not isinstance(version, int):
            raise ValueError("ver")
        sid = claims.get("sid")
        parsed = TokenClaims(
            kind=kind,
            subject_id=uuid.UUID(raw_id),
            version=version,
            jti=str(claims["jti"]),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            session_id=uuid.UUID(str(sid)) if sid is not None else None,
        )
    except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken("malformed claims") from exc
    if parsed.issued_at > (now or datetime.now(UTC)) + clock_skew:
        raise InvalidToken("issued in the future")
    if parsed.expires_at - parsed.issued_at > max_lifetimes[parsed.kind]:
        raise InvalidToken("lifetime longer than this service issues")
    return parsed


_INVITATION_CONTEXT = b"sipas-invitation-v1:"


def sign_invitation(invitation_id: uuid.UUID, secret: str) -> str:
    """An opaque, unguessable token naming one invitation: its id and an HMAC of it.

    Nothing about the token is stored, so a retried dossier event can be answered with the same
    token again; rotating SECRET_KEY invalidates every outstanding invitation.
    """
    tag = hmac.new(secret.encode(), _INVITATION_CONTEXT + invitation_id.bytes, "sha256").digest()
    raw = invitation_id.bytes + tag[:16]
    return "inv_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_invitation(token: str, secret: str) -> uuid.UUID | None:
    """The invitation id a token names, or None when the token is not one this service signed."""
    if not token.startswith("inv_") or len(token) > 64:
        return None
    body = token[4:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        return None
    if len(raw) != 32:
        return None
    invitation_id = uuid.UUID(bytes=raw[:16])
    expected = sign_invitation(invitation_id, secret)
    return invitation_id if hmac.compare_digest(expected, token) else None
