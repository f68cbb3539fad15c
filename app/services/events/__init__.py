"""Events out: the outbox (`emit`), the pull feed, webhook subscriptions and their delivery.

Services import this package to write events; only the API and the worker use the modules
that read them (`feed`, `subscriptions`, `delivery`, `worker`)."""

from app.services.events.emitters import (
    campaign_transitioned,
    dossier_received,
    invitation_used,
    plan_updated,
    report_published,
    reviewed,
    submission_reviewed,
)
from app.services.events.outbox import (
    DESCRIPTIONS,
    SUBMISSION_COLUMNS,
    VERSIONS,
    NewEvent,
    emit,
    emit_many,
    submissions_accepted_sql,
)

__all__ = [
    "DESCRIPTIONS",
    "SUBMISSION_COLUMNS",
    "VERSIONS",
    "NewEvent",
    "campaign_transitioned",
    "dossier_received",
    "emit",
    "emit_many",
    "invitation_used",
    "plan_updated",
    "report_published",
    "reviewed",
    "submission_reviewed",
    "submissions_accepted_sql",
]
