"""Settings: the one place that reads the environment."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Stands for "SECRET_KEY not set"; never used to sign. Unset, the service signs with a random key
# it generates once and keeps in the database (app.services.signing_key); production refuses it.
DEFAULT_SECRET = "dev-only-secret-change-me"  # noqa: S105 - a marker, not a key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Bounds that several settings share, stated once.
Days = Annotated[int, Field(ge=1, le=365)]
DaysBack = Annotated[int, Field(ge=1, le=36500)]
PerMinute = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(gt=0, le=1)]


class Settings(BaseSettings):
    """Every setting the service reads, from the environment or an optional `.env` file."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL the app connects with (the app role); unset starts an "
        "embedded server under data_dir.",
    )
    database_owner_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the role that owns the schema: `sipas migrate` runs the "
        "migrations with it and grants the app role (DATABASE_URL's user) what it needs. Unset, "
        "DATABASE_URL is used for both (one role: the app could change its own history).",
    )
    data_dir: Path = Path(".data")
    # The read replica (app/replica.py).
    database_read_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a streaming replica (same role as DATABASE_URL) that "
        "serves reads which may lag: published reports, the public API and site, and index "
        "reads with ?consistency=eventual. Unset: every read goes to the primary.",
    )
    database_read_connect_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds to reach the replica before its reads go to the primary.",
    )
    database_read_retry_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="After the replica fails, its reads go to the primary for this long "
        "before it is tried again (a circuit breaker).",
    )
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    client_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    jwt_issuer: str = "sipas"
    jwt_audience: str = "sipas-api"
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins one source address may make on one account (user or "
        "client) per window before that source is refused for that account.",
    )
    login_source_max_failures: int = Field(
        default=50,
        ge=1,
        description="Failed sign-ins one source address may make across all accounts per "
        "window before that source is refused altogether.",
    )
    login_window_seconds: int = Field(default=900, ge=1)
    refresh_token_days: Days = Field(
        14, description="Lifetime of a staff refresh token; each use returns a new one."
    )
    token_clock_skew_seconds: int = Field(
        default=60,
        ge=0,
        le=600,
        description="How far in the future a token's iat may lie, and the leeway on exp.",
    )
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of the reverse proxies whose X-Forwarded-For "
        "is believed (comma-separated); empty: the socket peer is the client.",
    )
    invitation_days: Days = 30
    client_requests_per_minute: PerMinute = 1200
    # Requests per minute one source address may make to the public site and /public/v1.
    public_requests_per_minute: PerMinute = 600
    max_batch_items: int = Field(default=1000, ge=1, le=1000)
    import_max_rows: int = Field(default=100_000, ge=1, description="Rows per imported file.")
    import_max_columns: int = Field(default=256, ge=1, description="Columns per imported file.")
    import_max_cells: int = Field(default=2_000_000, ge=1, description="Non-empty cells per file.")
    import_max_shared_strings: int = Field(default=250_000, ge=1)
    import_max_uncompressed_bytes: int = Field(
        default=100 * 2**20, ge=1024, description="Uncompressed size of an XLSX's zip members."
    )
    import_max_zip_members: int = Field(default=200, ge=1)
    import_max_seconds: float = Field(
        default=30.0, gt=0, description="Time a file may take to parse before it is refused."
    )
    public_form_url: str | None = Field(
        default=None,
        description="Base URL of the rating form; an invitation link is this plus ?invitation=.",
    )
    max_json_depth: int = Field(
        32,
        ge=2,
        le=1000,
        description="Deepest nesting of arrays and objects a JSON body may have (checked before "
        "it is parsed).",
    )
    received_at_max_age_days: DaysBack = Field(
        400, description="How far in the past a form's received_at may lie (queued offline forms)."
    )
    returned_at_max_age_days: DaysBack = Field(
        3650, description="How far in the past a dossier event's returned_at may lie."
    )
    client_clock_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=24 * 3600,
        description="How far in the future a client-given timestamp may lie (clock skew).",
    )
    invitation_requests_per_minute: PerMinute = Field(
        10, description="Requests a minute on one invitation used as the only credential."
    )
    invitation_source_requests_per_minute: PerMinute = Field(
        60,
        description="Requests a minute from one source address without a bearer token "
        "(invitation look-ups and submissions with an invitation only).",
    )

    sipas_demo: bool | None = Field(
        default=None,
        description="Load the demo province, campaigns and accounts (printed passwords) on "
        "`sipas serve`. Unset: only on the embedded database. Refused in production.",
    )

    # Events and webhooks (app.services.events).
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, or IP networks in CIDR form, that webhooks may target even when "
        'private (a provincial intranet), e.g. ["10.20.0.0/16", "hook.tinh.gov.vn"].',
    )
    webhook_allow_http: bool = Field(
        default=False, description="Allow plain http:// webhook URLs (https only by default)."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow any private, loopback or link-local target (tests, closed networks).",
    )
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    webhook_retry_schedule: list[float] = Field(
        default_factory=lambda: [
            5.0,
            30.0,
            120.0,
            600.0,
            1800.0,
            3600.0,
            7200.0,
            14400.0,
            28800.0,
            43200.0,
        ],
        description="Seconds to wait after each failed attempt; after the last, a dead letter.",
    )
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each wait varies by up to this share, at random."
    )
    webhook_secret_overlap_seconds: int = Field(default=24 * 3600, ge=0, le=7 * 24 * 3600)
    webhook_pause_after_dead: int = Field(
        default=5, ge=1, description="Consecutive dead letters that pause a subscription."
    )
    webhook_pause_after_failing_seconds: int = Field(
        default=3 * 24 * 3600, ge=60, description="Continuous failure that pauses a subscription."
    )
    webhook_claim_seconds: int = Field(
        default=60, ge=5, description="A claimed delivery is due again after this (worker lost)."
    )
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    behind_target_elapsed: Share = Field(
        0.5,
        description="Share of the fieldwork period after which a campaign's progress is checked.",
    )
    behind_target_share: Share = Field(
        0.4,
        description="A campaign with fewer valid forms than this share of its target by the "
        "check date is behind target (event campaign.behind_target).",
    )

    @property
    def has_secret_key(self) -> bool:
        """Whether SECRET_KEY was set; otherwise the key stored with the data signs."""
        return self.secret_key.get_secret_value() != DEFAULT_SECRET

    @field_validator("database_url", "database_owner_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        return async_url(value)

    @field_validator("database_read_url")
    @classmethod
    def _normalise_read_url(cls, value: str | None) -> str | None:
        return async_url(value) if value else None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if self.environment == "production" and (secret == DEFAULT_SECRET or len(secret) < 32):
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "when ENVIRONMENT=production"
            )
        if self.environment != "test" and self.has_secret_key and len(secret) < 32:
            raise ValueError(
                "SECRET_KEY must be at least 32 random characters; leave it unset to have "
                "the service generate one and keep it in the database"
            )
        if self.database_owner_url and not self.database_url:
            raise ValueError("DATABASE_OWNER_URL needs DATABASE_URL (the app role's URL) too")
        if self.environment == "production" and self.sipas_demo:
            raise ValueError(
                "SIPAS_DEMO (demo accounts with printed passwords) is refused when "
                "ENVIRONMENT=production"
            )
        return self


def async_url(url: str) -> str:
    """Point a plain `postgresql://` URL at the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


@lru_cache
def get_settings() -> Settings:
    return Settings()
