"""Demo accounts for a development instance, so `make run` can be tried at once.

Their passwords are fixed and printed by `make run`; they are for a laptop, not for a server
anyone else can reach. So they are created only on the embedded database, or when asked
(`SIPAS_DEMO=1`, `sipas seed --demo-accounts`), and never when ENVIRONMENT=production (see
app.cli.demo_wanted).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.agency import Agency
from app.models.identity import Role, User
from app.security import hash_password
from app.services import audit


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    password: str
    role: Role
    display_name: str
    agency_code: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount("admin", "demo-admin-2026", Role.admin, "Quản trị Sở Nội vụ"),
    DemoAccount("analyst", "demo-analyst-2026", Role.analyst, "Chuyên viên phân tích"),
    DemoAccount(
        "sonduong", "demo-manager-2026", Role.agency_manager, "UBND huyện Sơn Dương", "TQ.SONDUONG"
    ),
    DemoAccount("buudien", "demo-surveyor-2026", Role.surveyor, "Điều tra viên Bưu điện"),
    DemoAccount("mttq", "demo-supervisor-2026", Role.supervisor, "Giám sát MTTQ tỉnh"),
)


async def ensure_demo_accounts(session: AsyncSession) -> list[DemoAccount]:
    """Create the demo accounts that are missing; returns those that exist afterwards."""
    present: list[DemoAccount] = []
    for account in DEMO_ACCOUNTS:
        existing = await session.scalar(
            sa.select(col(User.id)).where(col(User.username) == account.username)
        )
        if existing is not None:
            present.append(account)
            continue
        agency_id = None
        if account.agency_code is not None:
            agency_id = await session.scalar(
                sa.select(col(Agency.id)).where(col(Agency.code) == account.agency_code)
            )
            if agency_id is None:
                continue  # the demo map is not loaded; skip the scoped account
        user = User(
            username=account.username,
            display_name=account.display_name,
            role=account.role,
            agency_id=agency_id,
            password_hash=hash_password(account.password),
        )
        await audit.record_change(
            session,
            None,
            user,
            "user.create",
            object_type="user",
            summary={"after": {"username": user.username, "role": user.role, "demo": True}},
        )
        present.append(account)
    return present
