"""Settings: the one place that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "dev-only-secret-change-me"  # noqa: S105 - a marker refused in production


class Settings(BaseSettings):
    """Every setting the service reads, from the environment or an optional `.env` file."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset starts an embedded server under data_dir.",
    )
    data_dir: Path = Path(".data")
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
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    invitation_days: int = Field(default=30, ge=1, le=365)
    client_requests_per_minute: int = Field(default=1200, ge=1)
    # Requests per minute one source address may make to the public site and /public/v1.
    public_requests_per_minute: int = Field(default=600, ge=1)
    max_batch_items: int = Field(default=1000, ge=1, le=1000)
    public_form_url: str | None = Field(
        default=None,
        description="Base URL of the rating form; an invitation link is this plus ?invitation=.",
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        return async_url(value)

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> Settings:
        secret = self.secret_key.get_secret_value()
        if self.environment == "production" and (secret == DEFAULT_SECRET or len(secret) < 32):
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 32 characters "
                "when ENVIRONMENT=production"
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
