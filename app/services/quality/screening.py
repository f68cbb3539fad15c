"""Screening: named flags with their evidence, put on every form as it is stored.

Per-form rules look only at the form (its answers, channel and times) and the campaign's
config, so they run in Python while the form is prepared and travel in the same INSERT as the
form (`submissions.flags`). Window rules look at other forms (many forms from one device or one
surveyor in a short window, a dossier rated before); they run as one set-based statement per
batch after the insert (`screen_window`), and only when some form of the batch has a device,
a surveyor or a dossier to look at.

Under the `auto` review policy a clean form is stored `valid` at once; a form flagged by a
window rule after its insert goes back to `received` in the same statement, so it waits for a
review like any other flagged form. The index roll-ups follow state changes by trigger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import cache as caches
from app.cache import Cache
from app.models.quality import Contradiction, QualityConfig, Rule
from app.services import instrument

_RATED_TYPES = frozenset({instrument.ItemType.satisfaction5, instrument.ItemType.intensity3})


# Parsed configs by their JSON text, the questionnaires' rated items and the rules' plans: small
# values worked out once each, weighed at a nominal size, within one budget.
_CONFIGS: Cache[Hashable, Any] = caches.named("screening.configs", lambda _: 1024)


def _parse(text: str) -> QualityConfig:
    found = _CONFIGS.get(("config", text))
    if found is None:
        found = QualityConfig.model_validate_json(text)
        _CONFIGS.put(("config", text), found)
    parsed: QualityConfig = found
    return parsed


def config_of(stored: Mapping[str, Any] | None) -> QualityConfig:
    """The campaign's config from its stored JSON (defaults for what it leaves out)."""
    if not stored:
        return _DEFAULT
    return _parse(json.dumps(stored, sort_keys=True))


_DEFAULT = QualityConfig()
# By the parsed questionnaire's identity; the entry holds the object, so its id is not reused.


def rated_items(q: instrument.Questionnaire) -> tuple[str, ...]:
    """The questionnaire's rated criteria (5-level and 3-level scales), in order."""
    found = _CONFIGS.get(("rated", id(q)))
    if found is not None and found[0] is q:
        rated: tuple[str, ...] = found[1]
        return rated
    items = tuple(
        item.id
        for _, item in instrument.iter_items(q)
        if item.role == instrument.Role.criterion and item.type in _RATED_TYPES
    )
    _CONFIGS.put(("rated", id(q)), (q, items))
    return items


@dataclass(frozen=True, slots=True)
class _Plan:
    """A config made ready for the hot path: what is on, thresholds as plain values."""

    too_fast: bool
    straight_lining: bool
    no_answers: bool
    kiosk: bool
    mismatch: bool
    min_seconds: int
    min_items: int
    max_share: float
    zone: ZoneInfo
    opens: int  # seconds after local midnight
    closes: int
    days: frozenset[int]
    office_days: list[int]
    office_hours: str
    contradictions: tuple[Contradiction, ...]


# By the config object's identity and the questionnaire's code (configs come from config_of's
# cache, so one campaign's config is one object); the entry holds the config.


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _plan(config: QualityConfig, code: str) -> _Plan:
    found = _CONFIGS.get(("plan", id(config), code))
    if found is not None and found[0] is config:
        known: _Plan = found[1]
        return known
    off = set(config.disabled_rules)
    plan = _Plan(
        too_fast=Rule.too_fast not in off,
        straight_lining=Rule.straight_lining not in off,
        no_answers=Rule.too_many_no_answers not in off,
        kiosk=Rule.kiosk_off_hours not in off,
        mismatch=Rule.agency_mismatch not in off,
        min_seconds=config.min_completion_seconds,
        min_items=config.straight_lining_min_items,
        max_share=config.max_no_answer_share,
        zone=ZoneInfo(config.timezone),
        opens=_seconds(config.office_hours_start),
        closes=_seconds(config.office_hours_end),
        days=frozenset(config.office_days),
        office_days=list(config.office_days),
        office_hours=f"{config.office_hours_start:%H:%M}-{config.office_hours_end:%H:%M}",
        contradictions=() if Rule.contradiction in off else tuple(config.contradictions_for(code)),
    )
    _CONFIGS.put(("plan", id(config), code), (config, plan))
    return plan


def screen(
    q: instrument.Questionnaire, config: QualityConfig, answers: Mapping[str, Any], **form: Any
) -> dict[str, Any]:
    """The per-form flags of one form: rule name → evidence. Empty when the form is clean.
    `form` is what `Screener.__call__` takes besides the answers (channel, received_at...)."""
    return screener(q, config)(answers, **form)


def screener(q: instrument.Questionnaire, config: QualityConfig) -> Screener:
    """The per-form rules of one questionnaire under one config, looked up once: a batch
    screens its thousand forms with one."""
    return Screener(_plan(config, q.code), rated_items(q))


@dataclass(frozen=True, slots=True)
class Screener:
    """`screen` with its plan and rated items at hand (a few microseconds a form)."""

    plan: _Plan
    rated: tuple[str, ...]

    def __call__(
        self,
        answers: Mapping[str, Any],
        *,
        channel: str,
        received_at: datetime,
        started_at: datetime | None = None,
        agency_id: uuid.UUID | None = None,
        dossier_agency_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        plan = self.plan
        flags: dict[str, Any] = {}
        if started_at is not None and plan.too_fast:
            seconds = (received_at - started_at).total_seconds()
            if seconds < plan.min_seconds:
                flags["too_fast"] = {"seconds": round(seconds, 1), "threshold": plan.min_seconds}
        rated = self.rated
        if rated:
            get = answers.get
            given = [v for v in map(get, rated) if v is not None]
            if (
                plan.straight_lining
                and len(given) >= plan.min_items
                and given.count(given[0]) == len(given)
            ):
                flags["straight_lining"] = {"value": given[0], "items": len(given)}
            missing = len(rated) - len(given)
            if plan.no_answers and missing > plan.max_share * len(rated):
                flags["too_many_no_answers"] = {
                    "no_answers": missing,
                    "items": len(rated),
                    "threshold": plan.max_share,
                }
        if channel == "kiosk" and plan.kiosk:
            local = received_at.astimezone(plan.zone)
            at = local.hour * 3600 + local.minute * 60 + local.second
            if local.weekday() not in plan.days or not plan.opens <= at < plan.closes:
                flags["kiosk_off_hours"] = {
                    "local_time": local.isoformat(),
                    "office_hours": plan.office_hours,
                    "office_days": plan.office_days,
                }
        if plan.contradictions:
            broken = [
                c.name
                for c in plan.contradictions
                if _is_in(answers.get(c.when_item), c.when_in)
                and all(_is_in(answers.get(i), c.then_in) for i in c.then_items)
            ]
            if broken:
                flags["contradiction"] = {"rules": broken}
        if (
            plan.mismatch
            and dossier_agency_id is not None
            and agency_id is not None
            and dossier_agency_id != agency_id
        ):
            flags["agency_mismatch"] = {
                "form_agency_id": str(agency_id),
                "dossier_agency_id": str(dossier_agency_id),
            }
        return flags


def _is_in(value: Any, codes: Sequence[int | str]) -> bool:
    # bool is an int but never a code; lists (multiple choice) are never one code.
    if value is None or isinstance(value, (bool, list, dict)):
        return False
    return value in codes


def _forms_nearby(by: str) -> str:
    """The `seen` column `<by>_forms`: how many forms of the campaign came from the new form's
    device or surveyor (`by`) within the window around its time; NULL when the form names
    none or the rule is off (`:<by>_on`). `by` is one of this module's two column stems."""
    return f"""
        CASE WHEN n.{by}_id IS NOT NULL AND :{by}_on THEN (
            SELECT count(*) FROM submissions s
            WHERE s.campaign_id = n.campaign_id AND s.{by}_id = n.{by}_id
              AND s.received_at BETWEEN n.received_at - make_interval(mins => :minutes)
                                    AND n.received_at + make_interval(mins => :minutes)
        ) END AS {by}_forms"""  # noqa: S608 - `by` is "device" or "surveyor", never input


# One statement for a batch's window rules. For each new form: the forms of the same campaign
# from its device and from its surveyor within the window around its time, and an earlier
# form on the same dossier (by frame unit, or by the invitation's dossier). Flags are merged
# into the stored ones; a form found flagged that `auto` had made valid goes back to received.
_WINDOW = sa.text(
    """
WITH new AS (
    SELECT id, campaign_id, device_id, surveyor_id, frame_unit_id, invitation_id, received_at
    FROM submissions WHERE id = ANY(CAST(:ids AS uuid[]))
), seen AS (
    SELECT n.id, n.campaign_id,"""  # noqa: S608 - composed of this module's constants
    + _forms_nearby("device")
    + ","
    + _forms_nearby("surveyor")
    + """,
        CASE WHEN :dossier_on THEN COALESCE(
            (SELECT s.id FROM submissions s
             WHERE n.frame_unit_id IS NOT NULL AND s.campaign_id = n.campaign_id
               AND s.frame_unit_id = n.frame_unit_id
               AND (s.received_at, s.id) < (n.received_at, n.id)
             ORDER BY s.received_at, s.id LIMIT 1),
            (SELECT s.id FROM invitations mine
             JOIN invitations other ON other.dossier_id = mine.dossier_id AND other.id <> mine.id
             JOIN submissions s ON s.invitation_id = other.id
             WHERE mine.id = n.invitation_id
               AND (s.received_at, s.id) < (n.received_at, n.id)
             ORDER BY s.received_at, s.id LIMIT 1)
        ) END AS earlier_form
    FROM new n
), found AS (
    SELECT seen.id, seen.campaign_id, jsonb_strip_nulls(jsonb_build_object(
        'many_from_device', CASE WHEN device_forms > :max_forms THEN jsonb_build_object(
            'forms', device_forms, 'window_minutes', :minutes, 'threshold', :max_forms) END,
        'many_from_surveyor', CASE WHEN surveyor_forms > :max_forms THEN jsonb_build_object(
            'forms', surveyor_forms, 'window_minutes', :minutes, 'threshold', :max_forms) END,
        'dossier_rated_before', CASE WHEN earlier_form IS NOT NULL THEN jsonb_build_object(
            'earlier_form', earlier_form) END
    )) AS flags
    FROM seen
), held AS (
    UPDATE submissions s
    SET flags = s.flags || found.flags,
        state = CASE WHEN s.state = 'valid' THEN 'received' ELSE s.state END,
        updated_at = now()
    FROM found
    WHERE s.id = found.id AND s.campaign_id = found.campaign_id AND found.flags <> '{}'::jsonb
    RETURNING s.id
), told AS (
    -- The form's submission.accepted event, written by this transaction's INSERT, says the
    -- state it now has (the outbox is read only after commit).
    UPDATE events e SET payload = jsonb_set(e.payload, '{state}', '"received"')
    WHERE e.tx_id = (pg_current_xact_id()::text)::bigint
      AND e.type = 'submission.accepted'
      AND e.payload->>'state' = 'valid'
      AND (e.payload->>'id')::uuid IN (SELECT id FROM held)
)
SELECT id FROM held
"""
)


def needs_window(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any of the new forms' columns give a window rule something to look at."""
    looked_at = ("device_id", "surveyor_id", "frame_unit_id", "invitation_id")
    return any(r.get(name) for r in rows for name in looked_at)


async def screen_window(
    session: AsyncSession, config: QualityConfig, ids: Sequence[uuid.UUID]
) -> int:
    """Apply the window rules to the new forms `ids` (one campaign); the number flagged."""
    off = config.disabled_rules
    on = {
        "device_on": Rule.many_from_device not in off,
        "surveyor_on": Rule.many_from_surveyor not in off,
        "dossier_on": Rule.dossier_rated_before not in off,
    }
    if not ids or not any(on.values()):
        return 0
    result = await session.execute(
        _WINDOW,
        {
            "ids": list(ids),
            "minutes": config.burst_window_minutes,
            "max_forms": config.burst_max_forms,
            **on,
        },
    )
    return len(result.all())
