"""The operator commands, run as a deployment script would: a subprocess, real commits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.models.identity import Client, User
from tests.helpers.cli import sipas


async def test_create_admin_reads_the_password_from_stdin(
    database_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    username = f"ops-{uuid.uuid4().hex[:8]}"
    password = "mật khẩu triển khai 2026"
    done = await run_cli(
        database_url,
        "create-admin",
        "--username",
        username,
        "--password-stdin",
        stdin=password + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    user = await session.scalar(sa.select(User).where(col(User.username) == username))
    assert user is not None
    assert user.role == "admin"
    assert user.password_hash.startswith("$argon2id$")
    token = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert token.status_code == 200, token.text

    again = await run_cli(
        database_url,
        "create-admin",
        "--username",
        username,
        "--password-stdin",
        stdin=password + "\n",
    )
    assert again.returncode == 1
    assert "already in use" in again.stderr


async def test_create_admin_refuses_without_stdin_flag_or_with_a_weak_password(
    database_url: str,
) -> None:
    no_flag = await run_cli(database_url, "create-admin", "--username", "x-admin")
    assert no_flag.returncode == 2
    weak = await run_cli(
        database_url,
        "create-admin",
        "--username",
        "weak-admin",
        "--password-stdin",
        stdin="short\n",
    )
    assert weak.returncode == 1
    assert "password" in weak.stderr
    assert "Traceback" not in weak.stderr


async def test_create_client_prints_the_secret_once(
    database_url: str, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    name = f"Cổng một cửa {uuid.uuid4().hex[:6]}"
    done = await run_cli(
        database_url,
        "create-client",
        "--name",
        name,
        "--scopes",
        "dossiers:write,progress:read",
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    stored = await session.scalar(
        sa.select(Client).where(col(Client.client_id) == printed["client_id"])
    )
    assert stored is not None
    assert stored.name == name
    assert sorted(stored.scopes) == ["dossiers:write", "progress:read"]
    assert printed["client_secret"] not in stored.secret_hash
    token = await client.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": printed["client_id"],
            "client_secret": printed["client_secret"],
        },
    )
    assert token.status_code == 200, token.text

    unknown = await run_cli(
        database_url,
        "create-client",
        "--name",
        "X",
        "--scopes",
        "reports:read",
        "--agency",
        "NO.SUCH.CODE",
    )
    assert unknown.returncode == 1
    assert "NO.SUCH.CODE" in unknown.stderr
    staff_scope = await run_cli(
        database_url, "create-client", "--name", "X", "--scopes", "users:admin"
    )
    assert staff_scope.returncode == 1
    assert "users:admin" in staff_scope.stderr


async def run_cli(
    database_url: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the blocking subprocess off the event loop."""
    return await asyncio.to_thread(sipas, database_url, *args, stdin=stdin)
