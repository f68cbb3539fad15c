"""Two database roles: an owner that migrates, and the app role the service connects as.

Security decision: the history guards are triggers (append-only audit events, immutable
reports), and a trigger only guards against a role that cannot drop or disable it. So the
tables belong to the owner role (`DATABASE_OWNER_URL`, which `sipas migrate` uses), and the
service connects as an app role (`DATABASE_URL`) that owns nothing and may only:

- read and write rows: SELECT, INSERT, UPDATE, DELETE on the tables; never TRUNCATE,
  REFERENCES or TRIGGER;
- only read and append the history tables (no UPDATE or DELETE at all), and only read
  `alembic_version`;
- use the sequences and call the functions;
- and nothing else: no CREATE on the schema, no superuser, CREATEDB, CREATEROLE, REPLICATION or
  BYPASSRLS, no membership in the owner role. `ALTER TABLE ... DISABLE TRIGGER`, `DROP`,
  `CREATE TABLE` and `TRUNCATE` are therefore out of its power.

`sipas migrate` creates the app role when it is missing (the owner needs CREATEROLE for that;
otherwise a DBA creates it first) and grants it the above on every table, now and, through
default privileges, on the tables later migrations add. Everything here is idempotent: an
existing role is never altered, only checked, and refused when it holds a power listed above.
The embedded server uses the same split: its superuser migrates, `sipas_app` serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.config import Settings

EMBEDDED_APP_ROLE = "sipas_app"
EMBEDDED_DATABASE = "sipas"
# Rows are added, never changed or removed (their triggers refuse it for every role too).
APPEND_ONLY_TABLES = ("audit_events", "reports", "submission_versions")
READ_ONLY_TABLES = ("alembic_version",)


class RoleSetupError(Exception):
    """A role setup that would leave the app more power than it needs, or cannot be done."""


def _embedded_url(data_dir: Path) -> str:
    from app.embedded import embedded_server_url

    return embedded_server_url(data_dir, EMBEDDED_DATABASE)


def owner_database_url(settings: Settings) -> str:
    """Where migrations run: DATABASE_OWNER_URL, else DATABASE_URL, else the embedded
    server's superuser."""
    if settings.database_owner_url:
        return settings.database_owner_url
    if settings.database_url:
        return settings.database_url
    if settings.environment == "production":
        raise RuntimeError("DATABASE_URL must be set when ENVIRONMENT=production")
    return _embedded_url(settings.data_dir)


def app_database_url(settings: Settings) -> str:
    """What the service connects with: DATABASE_URL, else the embedded server as `sipas_app`."""
    if settings.database_url:
        return settings.database_url
    if settings.environment == "production":
        raise RuntimeError("DATABASE_URL must be set when ENVIRONMENT=production")
    return with_user(_embedded_url(settings.data_dir), EMBEDDED_APP_ROLE)


def with_user(url: str, user: str, password: str | None = None) -> str:
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class RoleSetup:
    role: str
    created: bool


async def _quoted(conn: AsyncConnection, name: str) -> str:
    return str(await conn.scalar(sa.text("SELECT quote_ident(:n)"), {"n": name}))


async def _run_utility(conn: AsyncConnection, statement: str) -> None:
    """Run a statement that takes no parameters (CREATE ROLE ... PASSWORD '...') over the
    simple protocol, so nothing in a literal is read as a placeholder."""
    raw = await conn.get_raw_connection()
    await raw.driver_connection.execute(statement)  # type: ignore[union-attr]


async def ensure_app_role(
    conn: AsyncConnection, role: str, password: str | None = None
) -> RoleSetup:
    """Create the app's login role if it does not exist; check it if it does."""
    owner = str(await conn.scalar(sa.text("SELECT current_user")))
    if role == owner:
        raise RoleSetupError(
            f"the app role {role!r} is the role that owns the schema; give DATABASE_URL "
            "another user than DATABASE_OWNER_URL"
        )
    row = (
        await conn.execute(
            sa.text(
                """SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,
                          pg_has_role(oid, (SELECT oid FROM pg_roles WHERE rolname = current_user),
                                      'MEMBER') AS is_owner_member
                   FROM pg_roles WHERE rolname = :r"""
            ),
            {"r": role},
        )
    ).first()
    if row is not None:
        powers = [
            name
            for name, held in zip(
                ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"),
                row[:5],
                strict=True,
            )
            if held
        ]
        if row.is_owner_member:
            powers.append(f"member of {owner}")
        if powers:
            raise RoleSetupError(
                f"the app role {role!r} exists with powers it must not have: "
                + ", ".join(powers)
                + "; use a plain LOGIN role"
            )
        return RoleSetup(role, created=False)
    quoted = await _quoted(conn, role)
    statement = (
        f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    )
    if password:
        literal = await conn.scalar(sa.text("SELECT quote_literal(:p)"), {"p": password})
        statement += f" PASSWORD {literal}"
    can_create = await conn.scalar(
        sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    )
    if not can_create:
        raise RoleSetupError(
            f"the app role {role!r} does not exist and {owner!r} may not create roles; "
            f"create it as a plain LOGIN role (CREATE ROLE {quoted} LOGIN PASSWORD '...'), "
            "then run `sipas migrate` again"
        )
    await _run_utility(conn, statement)
    return RoleSetup(role, created=True)


async def grant_app_privileges(conn: AsyncConnection, role: str) -> None:
    """Give the app role exactly what the service needs on the schema, now and for the tables
    later migrations create (default privileges of the current user, the owner)."""
    r = await _quoted(conn, role)
    present = set(
        (
            await conn.scalars(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ).all()
    )
    owns_schema = await conn.scalar(
        sa.text(
            "SELECT pg_has_role(current_user, nspowner, 'USAGE') "
            "FROM pg_namespace WHERE nspname = 'public'"
        )
    )
    # PostgreSQL 15 and newer already refuse CREATE in `public` to PUBLIC; older ones did not.
    statements = ["REVOKE CREATE ON SCHEMA public FROM PUBLIC"] if owns_schema else []
    statements += [
        f"GRANT USAGE ON SCHEMA public TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {r}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {r}",
    ]
    statements += [
        f"REVOKE UPDATE, DELETE ON {table} FROM {r}"
        for table in APPEND_ONLY_TABLES
        if table in present
    ]
    statements += [
        f"REVOKE INSERT, UPDATE, DELETE ON {table} FROM {r}"
        for table in READ_ONLY_TABLES
        if table in present
    ]
    for statement in statements:
        await conn.execute(sa.text(statement))


async def prepare_app_role(owner_url: str, app_url: str) -> RoleSetup | None:
    """Create (if missing) and grant the app role that `app_url` names, connected as the owner.
    None when both URLs name the same user: one role, nothing to split."""
    app = make_url(app_url)
    if not app.username or app.username == make_url(owner_url).username:
        return None
    engine = create_async_engine(owner_url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            setup = await ensure_app_role(conn, app.username, app.password)
            await grant_app_privileges(conn, app.username)
        return setup
    finally:
        await engine.dispose()


async def connected_role_problems(conn: AsyncConnection) -> list[str]:
    """What the connected role could do to the history that the app must not be able to do."""
    row = (
        await conn.execute(
            sa.text(
                """SELECT r.rolsuper, r.rolbypassrls,
                          EXISTS (SELECT 1 FROM pg_tables t
                                  WHERE t.schemaname = 'public'
                                    AND pg_has_role(current_user, t.tableowner, 'USAGE'))
                   FROM pg_roles r WHERE r.rolname = current_user"""
            )
        )
    ).one()
    problems = []
    if row[0]:
        problems.append("is a superuser")
    if row[1]:
        problems.append("bypasses row security")
    if row[2]:
        problems.append("owns tables (it could disable their triggers or truncate them)")
    return problems
