"""Repeated reads of an unchanged index answer from memory instead of rescanning the forms.

A result is kept per process under a key that changes whenever anything it was computed from
can have changed: the campaign (its state and last update), the forms (how many, how many are
valid, and the last time any was inserted, reviewed or corrected: `submissions.updated_at`
moves on each), and the agency map (its last update). Only what cannot change unseen is cached:
not a draft (its questionnaire may still change), not weighted results (frame sizes carry no
timestamp)."""

from __future__ import annotations

import uuid
from collections.abc import Hashable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app import cache as caches
from app.cache import Cache
from app.models.index import IndexResult


def _weight(result: IndexResult) -> int:
    """What a result weighs: the length of its JSON (paid once, after a far dearer compute)."""
    return len(result.model_dump_json())


# The results, within the budget of the cache `index.results` (app/cache.py).
RESULTS: Cache[Hashable, IndexResult] = caches.named("index.results", _weight)


async def fingerprint(
    session: AsyncSession, campaign_id: uuid.UUID, rollup_version: int | None
) -> tuple[object, ...]:
    """What the result depends on. With roll-ups, their version moves with every correction,
    review or delete of a counted form, and new forms land in the tail (forms at or above
    `folded_to`, which only inserts make longer): the version, the fold mark and the tail's
    length stand for the valid forms, and the key reads only the tail (an index range, or one
    probe when it is empty)."""
    with_rollups = rollup_version is not None
    row = (
        await session.execute(_WITH_ROLLUPS if with_rollups else _FROM_FORMS, {"c": campaign_id})
    ).one()
    return ("rollups", rollup_version, *row) if with_rollups else tuple(row)


_WITH_ROLLUPS = sa.text(
    """SELECT c.state, c.updated_at, (SELECT max(a.updated_at) FROM agencies a),
              (SELECT folded_to FROM index_rollup_states WHERE campaign_id = c.id),
              index_cells_tail(c.id)
       FROM campaigns c WHERE c.id = :c"""
)
_FROM_FORMS = sa.text(
    """SELECT c.state, c.updated_at,
              (SELECT count(*) FROM submissions s WHERE s.campaign_id = c.id),
              (SELECT count(*) FROM submissions s WHERE s.campaign_id = c.id AND s.state = 'valid'),
              (SELECT max(s.updated_at) FROM submissions s WHERE s.campaign_id = c.id),
              (SELECT max(a.updated_at) FROM agencies a)
       FROM campaigns c WHERE c.id = :c"""
)


def get(key: Hashable) -> IndexResult | None:
    return RESULTS.get(key)


def put(key: Hashable, result: IndexResult) -> None:
    RESULTS.put(key, result)
