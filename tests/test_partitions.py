"""One partition per campaign (app/services/partitions.py): a campaign's forms live in its own
partition, made with the campaign, and one campaign's index scans only that partition."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.config import Settings
from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.submission import Submission
from app.services import partitions
from tests.factories import bearer, make_agency, make_campaign, make_user

GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "R.GENDER": "nu"}


def _relations(plan: Any) -> set[str]:
    """Every relation an EXPLAIN (FORMAT JSON) plan reads."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _relations(value)
    return found


def _form_partitions(relations: set[str]) -> set[str]:
    return {r for r in relations if r.startswith("submissions_of_")}


async def _forms(session: AsyncSession, campaign: Campaign, agency: Agency, n: int) -> None:
    await session.execute(
        sa.insert(Submission),
        [
            {
                "campaign_id": campaign.id,
                "client_submission_id": uuid.uuid4(),
                "request_hash": "h",
                "agency_id": agency.id,
                "channel": "web",
                "respondent_type": "individual" if i % 2 else "organisation",
                "state": "valid",
                "answers": GOOD,
                "received_at": datetime.now(UTC),
            }
            for i in range(n)
        ],
    )


async def _three(session: AsyncSession) -> tuple[Agency, list[Campaign]]:
    agency = await make_agency(session, level="province")
    campaigns = [
        await make_campaign(session, agencies=[agency], state=CampaignState.open) for _ in range(3)
    ]
    for i, campaign in enumerate(campaigns):
        await _forms(session, campaign, agency, 3 + i)
    await session.flush()
    return agency, campaigns


async def test_creating_a_campaign_creates_its_partitions(session: AsyncSession) -> None:
    agency = await make_agency(session, level="province")
    campaign = await make_campaign(session, agencies=[agency])
    found = await session.execute(
        sa.text(
            "SELECT p.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE c.relname IN (:forms, :rollups)"
        ),
        {
            "forms": partitions.partition_name("submissions", campaign.id),
            "rollups": partitions.partition_name("index_cells", campaign.id),
        },
    )
    bound = f"FOR VALUES IN ('{campaign.id}')"
    assert sorted(found.all()) == [("index_cells", bound), ("submissions", bound)]
    # made again: nothing changes
    await partitions.ensure(session, campaign.id)
    listed = [p for p in await partitions.listing(session) if p.campaign_id == campaign.id]
    assert {(p.parent, p.attached) for p in listed} == {
        ("submissions", True),
        ("index_cells", True),
    }


async def test_forms_of_each_campaign_land_in_its_own_partition(session: AsyncSession) -> None:
    _, campaigns = await _three(session)
    rows = await session.execute(
        sa.text(
            "SELECT tableoid::regclass::text, campaign_id, count(*) FROM submissions"
            " WHERE campaign_id = ANY(:ids) GROUP BY 1, 2"
        ),
        {"ids": [c.id for c in campaigns]},
    )
    assert sorted(rows.all()) == sorted(
        (partitions.partition_name("submissions", c.id), c.id, 3 + i)
        for i, c in enumerate(campaigns)
    )


async def test_a_plain_read_of_one_campaign_scans_one_partition(session: AsyncSession) -> None:
    _, campaigns = await _three(session)
    target = campaigns[1]
    plan = await session.scalar(
        sa.text(
            "EXPLAIN (FORMAT JSON) SELECT agency_id, count(*) FROM submissions"
            " WHERE campaign_id = :c GROUP BY agency_id"
        ),
        {"c": target.id},
    )
    assert _form_partitions(_relations(plan)) == {
        partitions.partition_name("submissions", target.id)
    }


async def test_the_index_of_one_campaign_scans_one_partition(
    session: AsyncSession,
    connection: AsyncConnection,
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    """The statements the index sends for a breakdown the roll-ups do not hold (respondent
    type: it reads the forms), explained with their own parameters, read only the campaign's
    partition, with two other campaigns' forms beside it."""
    _, campaigns = await _three(session)
    target = campaigns[0]
    admin = await make_user(session)
    await session.flush()

    sent: list[tuple[str, Any]] = []

    def seen(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "submissions" in statement and statement.lstrip().upper().startswith(("WITH", "SELECT")):
            sent.append((statement, parameters))

    sa.event.listen(connection.sync_connection, "before_cursor_execute", seen)
    try:
        response = await client.get(
            f"/api/v1/campaigns/{target.id}/index",
            params={"group_by": "respondent_type"},
            headers=bearer(settings, admin),
        )
    finally:
        sa.event.remove(connection.sync_connection, "before_cursor_execute", seen)
    assert response.status_code == 200, response.text

    assert any("FROM submissions s" in s for s, _ in sent), "the breakdown must scan forms"
    own = partitions.partition_name("submissions", target.id)
    for statement, parameters in sent:
        raw = await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = raw.scalar()
        touched = _form_partitions(_relations(json.loads(plan) if isinstance(plan, str) else plan))
        assert touched == {own}, statement


async def test_archiving_a_campaign_is_a_partition_operation(session: AsyncSession) -> None:
    """Detached, a campaign's forms leave every read through `submissions` and stay whole in
    their own table; a new form for it has nowhere to go; dropping needs the detach first."""
    agency, campaigns = await _three(session)
    old, kept = campaigns[2], campaigns[0]
    name = partitions.partition_name("submissions", old.id)

    both = {name, partitions.partition_name("index_cells", old.id)}
    assert set(await partitions.detach(session, old.id)) == both
    count = "SELECT count(*) FROM submissions WHERE campaign_id = :c"
    assert await session.scalar(sa.text(count), {"c": old.id}) == 0
    assert await session.scalar(sa.text(count), {"c": kept.id}) == 3
    detached = sa.text(f'SELECT count(*) FROM "{name}"')  # noqa: S608 - a name made above
    assert await session.scalar(detached) == 5
    listed = {p.name: p.attached for p in await partitions.listing(session)}
    assert listed[name] is False
    assert listed[partitions.partition_name("submissions", kept.id)] is True

    with pytest.raises(DBAPIError, match="no partition of relation"):
        async with session.begin_nested():
            await _forms(session, old, agency, 1)

    assert set(await partitions.drop(session, old.id)) == both
    assert await session.scalar(sa.text("SELECT to_regclass(:n)"), {"n": name}) is None


async def test_an_attached_partition_is_never_dropped(session: AsyncSession) -> None:
    _, campaigns = await _three(session)
    with pytest.raises(ValueError, match="detach it first"):
        await partitions.drop(session, campaigns[0].id)


def _index_names(plan: Any) -> set[str]:
    """Every index an EXPLAIN (FORMAT JSON) plan reads."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _index_names(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _index_names(value)
    return found


async def test_the_forms_kept_out_of_the_index_are_counted_through_their_own_index(
    session: AsyncSession,
    connection: AsyncConnection,
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    """Every index read counts the forms each rule kept out (not valid, flagged). That count can
    use the partial index of exactly those forms (migration 0012e), not a scan of them all: with
    sequential scans priced out, its plan reads the campaign's partition of that index."""
    _, campaigns = await _three(session)
    target = campaigns[0]
    await session.execute(
        sa.update(Submission)
        .where(Submission.campaign_id == target.id)  # type: ignore[arg-type]
        .values(state="flagged", flags={"too_fast": {"seconds": 3}})
    )
    admin = await make_user(session)
    await session.flush()

    sent: list[tuple[str, Any]] = []

    def seen(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "flags" in statement and "submissions" in statement:
            sent.append((statement, parameters))

    sa.event.listen(connection.sync_connection, "before_cursor_execute", seen)
    try:
        response = await client.get(
            f"/api/v1/campaigns/{target.id}/index", headers=bearer(settings, admin)
        )
    finally:
        sa.event.remove(connection.sync_connection, "before_cursor_execute", seen)
    assert response.status_code == 200, response.text
    assert sent, "the index read must count the forms kept out"
    await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        used: set[str] = set()
        for statement, parameters in sent:
            raw = await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = raw.scalar()
            used |= _index_names(json.loads(plan) if isinstance(plan, str) else plan)
    finally:
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = on")
    parents = await session.execute(
        sa.text(
            "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname = ANY(:names)"
        ),
        {"names": sorted(used)},
    )
    assert "ix_submissions_campaign_kept_out" in set(parents.scalars().all()), used
