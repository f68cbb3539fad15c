"""Throttling failed sign-ins by where they come from, never by whom they name alone.

Security decisions:
- An account name (a username, and even more a machine `client_id`, which is not secret) is
  known to others, so a counter per account alone would let anyone lock the owner out by
  failing on purpose. Failures are counted per (source address, account) and per source
  across every account; a source over either budget is refused for the rest of the window, and
  a correct secret from a source under its budgets is always accepted.
- The per-source budget catches one password tried over many accounts from one place. Without
  TRUSTED_PROXIES set correctly every client behind a proxy shares the proxy's address; the
  address is the one `app.proxies` resolves, the same the audit log records.
- Guessing many accounts from many addresses is not throttled here: no per-account counter
  can refuse an attacker without refusing the owner too. Passwords are Argon2id-hashed, which
  bounds that cost; the audit log records every failure with its address.
- The (source, account) counter is incremented before the secret is checked, in the request's
  transaction: concurrent guesses at one account from one source queue on its row, so they
  cannot all pass the check before any failure is counted. A correct secret clears it. The
  per-source counter is only read first and incremented on failure, so sign-ins from one busy
  source (a proxy, an office) never queue on one row; parallel guesses can overshoot it by at
  most the attempts in flight at once.
- An IPv6 source counts as its /64: one subscriber usually holds a whole /64, so counting
  single addresses would hand an attacker 2^64 fresh budgets.
- Counters live in PostgreSQL (`rate_counters`, fixed windows), shared by every worker.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.services import ratelimit


def source_of(address: str | None) -> str:
    """The unit a source is counted by: an IPv4 address, or the /64 of an IPv6 one."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class Budget:
    """What a source has left of its failure budgets, for the RateLimit headers."""

    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    policy: str

    def headers(self) -> dict[str, str]:
        """`RateLimit-*` (draft-ietf-httpapi-ratelimit-headers): the budget nearest its end."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": self.policy,
        }


@dataclass(slots=True)
class LoginThrottle:
    """One sign-in attempt's counters: (source, account) and source."""

    settings: Settings
    pair_key: str
    source_key: str
    now: datetime
    window: ratelimit.Window
    pair_count: int = 0
    source_count: int = 0

    @classmethod
    def start(
        cls, settings: Settings, kind: str, account: str, source: str | None
    ) -> LoginThrottle:
        now = datetime.now(UTC)
        where = source_of(source)
        return cls(
            settings,
            f"login:{kind}:{account}@{where}",
            f"login-source:{where}",
            now,
            ratelimit.window_for(now, settings.login_window_seconds),
        )

    async def admit(self, session: AsyncSession) -> bool:
        """Count this attempt against (source, account); False when the source is over a budget."""
        self.source_count = await ratelimit.count(session, self.source_key, self.window)
        if self.source_count >= self.settings.login_source_max_failures:
            return False
        self.pair_count = await ratelimit.hit(session, self.pair_key, self.window)
        return self.pair_count <= self.settings.login_max_failures

    async def failed(self, session: AsyncSession) -> None:
        """The secret was wrong: the attempt stays counted, and counts against the source."""
        self.source_count = await ratelimit.hit(session, self.source_key, self.window)

    async def succeeded(self, session: AsyncSession) -> None:
        """The secret was right: this source's failures on this account are forgotten."""
        await ratelimit.reset(session, self.pair_key)
        self.pair_count = 0

    def retry_after(self) -> int:
        return self.window.retry_after(self.now)

    def budget(self) -> Budget:
        pair_max = self.settings.login_max_failures
        source_max = self.settings.login_source_max_failures
        pair_left = max(0, pair_max - self.pair_count)
        source_left = max(0, source_max - self.source_count)
        seconds = self.settings.login_window_seconds
        policy = (
            f'{pair_max};w={seconds};comment="failed sign-ins per account and source", '
            f'{source_max};w={seconds};comment="failed sign-ins per source"'
        )
        limit, left = (
            (pair_max, pair_left) if pair_left <= source_left else (source_max, source_left)
        )
        return Budget(limit, left, self.retry_after(), policy)
