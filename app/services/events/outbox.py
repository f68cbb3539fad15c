"""Writing events: the transactional outbox.

An event is a row of `events`, inserted by the same session, in the same transaction, as the
change it tells of: it commits with it or vanishes with it, so a receiver never hears of a
change that rolled back and never misses one that committed. The payload is frozen here; the
feed and the deliveries send the stored JSON as written and never read the changed rows again.
Services call `emit` (one event) or `emit_many` (one multi-row INSERT); they flush, never
commit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.event import EventType
from app.services.plain import jsonable

# The current payload version of each type; bumped when a payload's shape changes.
VERSIONS: dict[EventType, int] = dict.fromkeys(EventType, 1)

DESCRIPTIONS: dict[EventType, str] = {
    EventType.submission_accepted: "A form was stored (single or batch, any channel).",
    EventType.submission_reviewed: "A reviewer changed a form's state.",
    EventType.invitation_used: "A citizen rated a dossier with its one-time invitation.",
    EventType.dossier_received: "The one-stop system reported a returned dossier.",
    EventType.campaign_transitioned: "A campaign changed state (opened, closed, published...).",
    EventType.campaign_behind_target: (
        "An open campaign had fewer valid forms than the configured share of its target by the "
        "configured share of its fieldwork period (once per campaign and check date)."
    ),
    EventType.report_published: "A report version was published.",
    EventType.plan_updated: (
        "An agency's improvement plan changed: proposed or refreshed from a newly published "
        "report, an action added or changed, or reviewed by the Department (`change` says which)."
    ),
}


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write. The agency and campaign it is routed by (who may read it) are part of
    its payload as well, as `agency_id` and `campaign_id`: they are given once, here."""

    type: EventType
    payload: dict[str, Any]
    agency_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    dedupe_key: str | None = None

    def stored_payload(self) -> dict[str, Any]:
        """The payload as written: the routing ids that are set, then the event's own fields."""
        scope = {"agency_id": self.agency_id, "campaign_id": self.campaign_id}
        return {**{k: v for k, v in scope.items() if v is not None}, **self.payload}


# One statement for any number of events: one array per column.
_INSERT = sa.text(
    "INSERT INTO events (type, version, agency_id, campaign_id, payload, dedupe_key)"
    " SELECT t, v, a, c, p::jsonb, d FROM unnest("
    "CAST(:types AS text[]), CAST(:versions AS int[]), CAST(:agencies AS uuid[]),"
    " CAST(:campaigns AS uuid[]), CAST(:payloads AS text[]), CAST(:keys AS text[])"
    ") AS u(t, v, a, c, p, d)"
    " ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING"
)


async def emit_many(session: AsyncSession, events: Sequence[NewEvent]) -> None:
    """Write `events` in the caller's transaction, in one INSERT. An event whose `dedupe_key`
    is already stored is not written again."""
    if not events:
        return
    await session.execute(
        _INSERT,
        {
            "types": [e.type.value for e in events],
            "versions": [VERSIONS[e.type] for e in events],
            "agencies": [e.agency_id for e in events],
            "campaigns": [e.campaign_id for e in events],
            "payloads": [
                json.dumps(jsonable(e.stored_payload()), ensure_ascii=False, sort_keys=True)
                for e in events
            ],
            "keys": [e.dedupe_key for e in events],
        },
    )


async def emit(
    session: AsyncSession,
    *,
    type: EventType,
    payload: dict[str, Any],
    agency_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Write one event in the caller's transaction (see the module's docstring)."""
    await emit_many(session, [NewEvent(type, payload, agency_id, campaign_id, dedupe_key)])


# submission.accepted, written by the INSERT of the forms itself: a data-modifying CTE over the
# rows that INSERT returned, so a form and its event cost one round trip, and a batch writes all
# its events in the same single statement as its forms.
SUBMISSION_COLUMNS = (
    "id",
    "client_submission_id",
    "campaign_id",
    "agency_id",
    "sector_id",
    "procedure_id",
    "channel",
    "respondent_type",
    "state",
    "received_at",
)


def submissions_accepted_sql(source: str) -> str:
    """SQL of a CTE body inserting one `submission.accepted` per row of `source`, another CTE
    of the same statement that returns at least `SUBMISSION_COLUMNS`. The payload carries the
    form's identifiers and provenance, never its answers."""
    fields = ", ".join(
        f"'{'submission_id' if name == 'client_submission_id' else name}', {source}.{name}"
        for name in SUBMISSION_COLUMNS
    )
    return (
        "INSERT INTO events (type, version, agency_id, campaign_id, payload)"  # noqa: S608
        f" SELECT '{EventType.submission_accepted.value}',"
        f" {VERSIONS[EventType.submission_accepted]},"
        f" {source}.agency_id, {source}.campaign_id, jsonb_build_object({fields})"
        f" FROM {source}"
    )
