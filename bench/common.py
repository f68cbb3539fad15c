"""Shared helpers for the benchmarks and the CI robustness scripts.

Everything here talks to 127.0.0.1 only: the app under test runs under uvicorn on a free loopback
port, against a dedicated database on the embedded PostgreSQL server (never the development
database `sipas` nor the test database `sipas_test`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import psutil
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import _asyncpg_dsn, create_database, drop_database, ensure_database, session_scope
from app.embedded import embedded_server_url
from app.models.agency import Agency, AgencyKind
from app.models.campaign import Campaign, CampaignAgency, CampaignState, Stratum
from app.models.identity import Client, Role, Scope, User
from app.models.questionnaire import Questionnaire
from app.schema import upgrade
from app.security import hash_secret, issue_token, new_client_id, new_client_secret
from app.services import instrument, seed
from app.services.demo_campaigns import measured_agencies, said_once, synthetic_form
from app.services.questionnaires import ensure_builtins
from app.services.text import fold

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".data"
OUT_DIR = ROOT / "bench" / "out"
PYTHON = sys.executable
SECRET_KEY = "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
QUESTIONNAIRE = "sipas-2017"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_database(name: str, *, data_dir: Path = DATA_DIR, fresh: bool = True) -> str:
    """Start (or join) the embedded server, (re)create `name`, migrate it; returns its URL.

    Call outside a running event loop: Alembic runs its own."""
    url = embedded_server_url(data_dir, name)

    async def reset() -> None:
        if fresh:
            await drop_database(url)
        await ensure_database(url)

    asyncio.run(reset())
    upgrade(url)
    return url


def dsn(url: str) -> str:
    """A plain libpq/asyncpg DSN for a SQLAlchemy URL."""
    return _asyncpg_dsn(url)


def server_env(url: str, **overrides: str) -> dict[str, str]:
    """The environment of an app server under test."""
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "LOG_LEVEL": "WARNING",
        "ACCESS_TOKEN_MINUTES": "600",
        # the benchmark's machine tokens live as long (tokens beyond the lifetime are refused)
        "CLIENT_TOKEN_MINUTES": "600",
        # the benchmark drives thousands of requests a second from a few machine clients
        "CLIENT_REQUESTS_PER_MINUTE": "1000000000",
    }
    env.update(overrides)
    return env


@dataclass
class Fixture:
    """An open campaign on sipas-2017 over a few agencies, machine clients and an admin."""

    campaign_id: uuid.UUID
    agencies: list[Agency]
    strata: dict[uuid.UUID, uuid.UUID]  # agency id -> stratum id
    client_tokens: list[str]
    client_ids: list[uuid.UUID]
    admin_token: str
    admin_id: uuid.UUID
    questionnaire: instrument.Questionnaire
    quality: dict[uuid.UUID, dict[str, float]] = field(default_factory=dict)


def _token(kind: str, subject: User | Client, scopes: Sequence[Scope]) -> str:
    token, _ = issue_token(
        kind=kind,
        subject_id=subject.id,
        version=subject.token_version,
        scopes=[s.value for s in scopes],
        secret=SECRET_KEY,
        issuer="sipas",
        audience="sipas-api",
        lifetime=timedelta(hours=10),
    )
    return token


async def _province_agencies(session: AsyncSession, day: date) -> list[Agency]:
    """The demo province's measured agencies on `day` (seeded if missing), as its demo campaigns
    take them."""
    await seed.load_demo_catalogue(session)
    return await measured_agencies(session, day)


async def make_fixture(
    url: str,
    *,
    agencies: int = 8,
    clients: int = 1,
    questionnaire: str = QUESTIONNAIRE,
    province: bool = False,
) -> Fixture:
    """Write the campaign, its agencies and strata, the clients and an admin; commit.

    The agencies are `agencies` made-up departments, or with `province` the demo province's
    own measured agencies (Tuyên Quang's departments and districts)."""
    settings = Settings(_env_file=None, database_url=url, environment="test")
    db = create_database(url, settings)
    tag = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    try:
        async with session_scope(db) as session:
            await ensure_builtins(session)
            q = await session.scalar(
                sa.select(Questionnaire).where(
                    col(Questionnaire.code) == questionnaire, col(Questionnaire.version) == 1
                )
            )
            if q is None:
                raise RuntimeError(f"no built-in questionnaire {questionnaire}")
            q.frozen_at = q.frozen_at or now
            made: list[Agency] = (
                await _province_agencies(session, date(2020, 10, 31)) if province else []
            )
            for i in range(0 if province else agencies):
                name = f"Sở đo tải {tag} {i + 1}"
                agency = Agency(
                    code=f"BENCH.{tag}.{i + 1}".upper(),
                    name=name,
                    search_name=fold(name),
                    kind=AgencyKind.department,
                    level="department",
                    valid_from=date(2008, 1, 1),
                    is_measured=True,
                )
                session.add(agency)
                made.append(agency)
            campaign = Campaign(
                code=f"BENCH-{tag}",
                name=f"Chiến dịch đo tải {tag}",
                year=2020,
                questionnaire_id=q.id,
                state=CampaignState.open,
                period_start=date(2019, 11, 1),
                period_end=date(2020, 10, 31),
                fieldwork_start=date(2020, 11, 1),
                fieldwork_end=date(2020, 12, 15),
                map_date=date(2020, 10, 31),
                opened_at=now,
            )
            session.add(campaign)
            await session.flush()
            strata: dict[uuid.UUID, uuid.UUID] = {}
            for agency in made:
                session.add(CampaignAgency(campaign_id=campaign.id, agency_id=agency.id))
                stratum = Stratum(
                    campaign_id=campaign.id, agency_id=agency.id, frame_size=2000, target=200
                )
                session.add(stratum)
                await session.flush()
                strata[agency.id] = stratum.id
            kiosks: list[Client] = []
            for i in range(clients):
                kiosk = Client(
                    name=f"Kiosk đo tải {tag} {i + 1}",
                    scopes=[Scope.submissions_write, Scope.progress_read],
                    client_id=new_client_id(),
                    secret_hash=hash_secret(new_client_secret()),
                )
                session.add(kiosk)
                kiosks.append(kiosk)
            admin = User(
                username=f"bench-admin-{tag}",
                display_name="Quản trị đo tải",
                role=Role.admin,
                password_hash="!",  # noqa: S106 - no password login: the token is minted here
                is_active=True,
            )
            session.add(admin)
            await session.flush()
            fixture = Fixture(
                campaign_id=campaign.id,
                agencies=made,
                strata=strata,
                client_tokens=[
                    _token("client", k, [Scope.submissions_write, Scope.progress_read])
                    for k in kiosks
                ],
                client_ids=[k.id for k in kiosks],
                admin_token=_token("user", admin, list(Scope)),
                admin_id=admin.id,
                questionnaire=instrument.load_builtin(questionnaire),
            )
    finally:
        await db.dispose()
    rng = random.Random(tag)
    for agency in fixture.agencies:
        base = rng.uniform(0.55, 0.92)
        fixture.quality[agency.id] = {
            e.id: min(0.98, max(0.3, base + rng.uniform(-0.08, 0.08)))
            for e in fixture.questionnaire.elements
        } or {"*": base}  # a dossier form has no elements: one level for the agency
    return fixture


def make_form(fixture: Fixture, rng: random.Random) -> dict[str, Any]:
    """One valid single-form request body with a fresh client-made submission id."""
    agency = rng.choice(fixture.agencies)
    return said_once(
        {
            "submission_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "agency_code": agency.code,
            "respondent_type": "individual" if rng.random() < 0.9 else "organisation",
            "channel": "kiosk",
            "answers": synthetic_form(
                rng, fixture.questionnaire, agency, fixture.quality[agency.id]
            ),
        }
    )


class Server:
    """A uvicorn server (master plus workers) in its own process group on 127.0.0.1."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        *,
        workers: int = 2,
        factory: bool = True,
        log: Path | None = None,
        port: int | None = None,
        graceful_timeout: int = 20,
    ) -> None:
        self.target = target
        self.env = env
        self.workers = workers
        self.factory = factory
        self.port = port or free_port()
        self.graceful_timeout = graceful_timeout
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.peak_rss = 0  # bytes: the largest resident set of any one process, while sampled
        self._sampling = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/readyz", timeout: float = 60) -> None:
        args = [
            PYTHON,
            "-m",
            "uvicorn",
            self.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            str(self.graceful_timeout),
        ]
        if self.factory:
            args.append("--factory")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()/kill()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(ready_path, timeout)

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn {self.target} exited early; see {self.log_path}")
            try:
                r = httpx.get(self.base + path, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.base}{path} not ready within {timeout} s")
            time.sleep(0.2)

    def sample_rss(self, every: float = 0.1) -> None:
        """Sample the resident memory of the master and each worker in a thread until `stop`;
        `peak_rss` keeps the largest of any one process (the budget is per worker)."""

        def run() -> None:
            while not self._sampling.wait(every):
                for p in self.processes():
                    with contextlib.suppress(psutil.NoSuchProcess):
                        self.peak_rss = max(self.peak_rss, p.memory_info().rss)

        self._sampling.clear()
        threading.Thread(target=run, daemon=True).start()

    def processes(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            master = psutil.Process(self.proc.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a crash or an OOM kill would."""
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        self._reap()

    def terminate(self) -> None:
        """SIGTERM to the master only, as an orchestrator stopping the service does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 30) -> None:
        """Stop gracefully; kill whatever is left after `timeout`."""
        self._sampling.set()
        procs = self.processes()
        self.terminate()
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of `values` (any order); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


async def truncate_submissions(url: str) -> None:
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("TRUNCATE submissions CASCADE")
        await conn.execute("VACUUM ANALYZE submissions")
    finally:
        await conn.close()


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{memory:.1f} GiB",
        "cpu": cpu,
        "python": sys.version.split()[0],
    }


def replace_section(results: Path, heading: str, text: str) -> None:
    """Put `text` in place of the section of `results` that starts with `heading` (or add it at
    the end). A section runs to the next `## ` heading or to the next `<!-- ` line, which opens
    the marked block of another command (bench.partitions), so that block is never taken."""
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    head, found, tail = old.partition(heading)
    rest = ""
    if found:
        ends = [i for i in (tail.find("\n## "), tail.find("\n<!-- ")) if i >= 0]
        rest = tail[min(ends) :] if ends else ""
    results.write_text(head.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n" + rest)
