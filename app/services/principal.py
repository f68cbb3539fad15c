"""Who is calling: a staff user or a machine client, with the scopes it holds right now."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from app.errors import AppError, PermissionDenied
from app.models.identity import Role, Scope


@dataclass(frozen=True, slots=True)
class Principal:
    """A staff user, a machine client, or an invitation (a citizen's one-time right to send
    one form, the token being the credential: see services.invitations)."""

    kind: Literal["user", "client", "invitation"]
    id: uuid.UUID
    name: str
    scopes: frozenset[Scope]
    role: Role | None = None
    agency_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    client_public_id: str | None = None
    session_id: uuid.UUID | None = None  # a staff sign-in session (password grant), if any

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, *scopes: Scope) -> None:
        missing = [s.value for s in scopes if s not in self.scopes]
        if missing:
            raise missing_scope(missing)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin

    @property
    def agency_scoped(self) -> bool:
        """True when the caller may only see one agency's subtree."""
        return self.agency_id is not None and not self.is_admin


def missing_scope(missing: list[str]) -> AppError:
    error = PermissionDenied(f"This needs the scope {', '.join(missing)}.")
    return AppError(error.code, error.detail, error.status, extra={"missing_scopes": missing})
