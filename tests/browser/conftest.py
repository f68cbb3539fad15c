"""Browser tests: headless Chromium from the Debian package, driven by Playwright, against the
real app served by uvicorn (`sipas serve`) on a database of its own with the demo province.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without Chromium (or
Playwright) the tests are skipped, unless SIPAS_REQUIRE_BROWSER=1 (as .ci/run sets it), which
turns a missing browser into a failure so CI cannot skip them silently.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import col

from app.db import ensure_database
from tests.conftest import TEST_SECRET, base_test_url, in_thread, reset_schema

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parents[2] / "bench" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 740}


def _missing(reason: str) -> NoReturn:
    if os.environ.get("SIPAS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (SIPAS_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _missing("no chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed")
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    base: str
    reports: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str) -> Any:
        response = httpx.get(self.base + path, timeout=30)
        assert response.status_code == 200, (path, response.text[:500])
        return response.json()


async def _publish_demo(url: str) -> None:
    """Publish every published-or-closed demo campaign that has no report yet, through the
    campaigns service (the demo loader may already have done it)."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from app.models.campaign import Campaign
    from app.models.report import Report
    from app.services import campaigns

    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            ids = (
                await session.scalars(
                    sa.select(col(Campaign.id)).where(
                        col(Campaign.state).in_(("closed", "published")),
                        ~sa.exists().where(col(Report.campaign_id) == col(Campaign.id)),
                    )
                )
            ).all()
            for campaign_id in ids:
                await campaigns.publish(session, None, campaign_id, "Kiểm thử trình duyệt")
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def served(chromium_path: str) -> Iterator[Served]:
    """`sipas serve` on a free port and a database of its own, seeded with the demo province
    (the demo publishes SIPAS 2019 with its report)."""
    test_url = base_test_url()
    url = make_url(test_url).set(database=f"{make_url(test_url).database}_browser")
    rendered = url.render_as_string(hide_password=False)
    in_thread(lambda: asyncio.run(ensure_database(rendered)))
    in_thread(lambda: asyncio.run(reset_schema(rendered)))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": rendered,
        "ENVIRONMENT": "development",
        "SECRET_KEY": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
        "PUBLIC_REQUESTS_PER_MINUTE": "100000",
        # An external database: the demo loads only when asked (hole 8).
        "SIPAS_DEMO": "1",
    }
    sipas = Path(sys.executable).with_name("sipas")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603 - our own command
        [str(sipas), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                pytest.fail(f"sipas serve stopped: {err[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("sipas serve did not become ready in 300 s")
            time.sleep(0.5)
        in_thread(lambda: asyncio.run(_publish_demo(rendered)))
        served = Served(base)
        served.reports = served.get("/public/v1/reports")["items"]
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
