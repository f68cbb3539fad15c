"""Index roll-ups: the database keeps them equal to a recount of the forms through every kind of
write, and an index read from them is the index read from the forms, figure for figure."""

from __future__ import annotations

import random

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.models.identity import Role
from app.models.submission import Channel, Submission, SubmissionState
from app.services import instrument
from app.services.index import cache, rollups
from tests.factories import (
    bearer,
    make_agency,
    make_campaign,
    make_procedure,
    make_sector,
    make_user,
)
from tests.helpers.rollup_world import answers, close, forms, setup

READS = [
    {"group_by": "none"},
    {"group_by": "agency"},
    {"group_by": "unit"},
    {"group_by": "level"},
    {"group_by": "agency", "aggregate": "unit_mean"},
    {"group_by": "level", "aggregate": "unit_mean"},
    {"group_by": "agency", "level": "commune"},
]


@pytest.mark.parametrize("kind", ["test", "sipas-2017", "sipas-2023", "dossier-rating-2018"])
async def test_rollups_equal_a_recount_and_give_the_same_index(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, kind: str
) -> None:
    rng = random.Random(kind)
    campaign, q, agencies = await setup(session, kind)
    admin = bearer(settings, await make_user(session, Role.admin))

    # several insert statements, each a set of forms in mixed states
    for size in (1, 17, 60):
        session.add_all(forms(campaign, q, agencies, rng, size))
        await session.flush()
    assert await rollups.discrepancies(session, campaign.id) == []
    counted = await session.scalar(
        sa.text("SELECT sum(n) FROM index_rollups WHERE campaign_id = :c AND kind = 'respondents'"),
        {"c": campaign.id},
    )
    valid = await session.scalar(
        sa.text("SELECT count(*) FROM submissions WHERE campaign_id = :c AND state = 'valid'"),
        {"c": campaign.id},
    )
    assert counted == valid
    assert valid > 0

    # reviews through the API, both into and out of `valid`
    rows = (
        await session.scalars(
            sa.select(Submission).where(col(Submission.campaign_id) == campaign.id)
        )
    ).all()
    received = [r for r in rows if r.state == SubmissionState.received][:3]
    valid_rows = [r for r in rows if r.state == SubmissionState.valid][:3]
    for row, to in [(r, "valid") for r in received] + [(r, "rejected") for r in valid_rows]:
        body = {"state": to, "reason": None if to == "valid" else "Phiếu trùng"}
        answer = await client.post(f"/api/v1/submissions/{row.id}/review", json=body, headers=admin)
        assert answer.status_code == 200, answer.text
    # a valid form moved to another agency, one deleted, one edited by plain SQL
    moved, gone, edited = [r for r in rows if r.state == SubmissionState.valid][3:6]
    await session.execute(
        sa.update(Submission)
        .where(col(Submission.id) == moved.id)
        .values(agency_id=agencies[-1].id)
    )
    await session.execute(sa.delete(Submission).where(col(Submission.id) == gone.id))
    await session.execute(
        sa.update(Submission).where(col(Submission.id) == edited.id).values(answers=answers(q, rng))
    )
    assert await rollups.discrepancies(session, campaign.id) == []

    url = f"/api/v1/campaigns/{campaign.id}/index"
    from_rollups = []
    for params in READS:
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        from_rollups.append(answer.json())
    # those reads were answered from the roll-ups (the cache keys say so)
    keys = [k for k in cache.RESULTS if isinstance(k, tuple) and k[0] == campaign.id]
    assert keys
    assert all(k[1][0] == "rollups" for k in keys)
    # Without its state row the campaign is read from its forms.
    await session.execute(
        sa.text("DELETE FROM index_rollup_states WHERE campaign_id = :c"), {"c": campaign.id}
    )
    for params, expected in zip(READS, from_rollups, strict=True):
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        assert close(answer.json(), expected) == [], params
    # the reads compared carry real figures
    total = from_rollups[0]["total"]
    assert total["n_respondents"] == valid + len(received) - len(valid_rows) - 1
    assert total["index"] is not None or total["dossier"] is not None


async def test_install_counts_existing_forms_and_truncate_clears(
    session: AsyncSession,
) -> None:
    rng = random.Random(7)
    campaign, q, agencies = await setup(session, "test")
    await session.execute(
        sa.text("DELETE FROM index_rollup_states WHERE campaign_id = :c"), {"c": campaign.id}
    )
    session.add_all(forms(campaign, q, agencies, rng, 40))
    await session.flush()
    # not installed: the triggers leave it alone
    stored = await session.scalar(
        sa.text("SELECT count(*) FROM index_rollups WHERE campaign_id = :c"), {"c": campaign.id}
    )
    assert stored == 0
    assert await rollups.version(session, campaign.id) is None
    assert await rollups.install_missing(session) == [campaign.id]
    assert await rollups.version(session, campaign.id) is not None
    assert await rollups.discrepancies(session, campaign.id) == []
    assert await rollups.install(session, campaign.id)  # idempotent
    version = await rollups.version(session, campaign.id)
    before = await cache.fingerprint(session, campaign.id, version)
    new = forms(campaign, q, agencies, rng, 5)
    new[0].state = SubmissionState.valid
    session.add_all(new)
    await session.flush()
    # new forms join the tail (they are not folded in this transaction): the cache's key moves
    assert await rollups.version(session, campaign.id) == version
    assert await cache.fingerprint(session, campaign.id, version) != before
    # deleting one of them leaves the tail as long as it was before the insert of another, so
    # a change to a counted form moves the version itself, folded or not
    await session.execute(
        sa.delete(Submission)
        .where(col(Submission.id) == new[0].id)
        .execution_options(synchronize_session=False)
    )
    assert (await rollups.version(session, campaign.id) or 0) > (version or 0)
    assert await rollups.discrepancies(session, campaign.id) == []


async def test_opening_a_campaign_installs_its_rollups(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    agency = await make_agency(session)
    campaign = await make_campaign(session, agencies=[agency])
    admin = bearer(settings, await make_user(session, Role.admin))
    assert await rollups.version(session, campaign.id) is None
    opened = await client.post(
        f"/api/v1/campaigns/{campaign.id}/transition", json={"to": "open"}, headers=admin
    )
    assert opened.status_code == 200, opened.text
    assert await rollups.version(session, campaign.id) is not None


GROUP_BYS = [
    "none",
    "agency",
    "unit",
    "level",
    "sector",
    "procedure",
    "channel",
    "respondent_type",
]


def _views(facet: str | None, sector: str, agency: str) -> list[dict[str, str]]:
    """Every breakdown the roll-ups hold, alone and under each filter and their combinations."""
    group_bys = [*GROUP_BYS, *([f"item:{facet}"] if facet else [])]
    filters: list[dict[str, str]] = [
        {},
        {"sector_id": sector},
        {"channel": "web"},
        {"respondent_type": "individual"},
        {"agency_id": agency},
        {"level": "commune"},
        {"sector_id": sector, "channel": "kiosk", "respondent_type": "organisation"},
        {"agency_id": agency, "respondent_type": "individual", "channel": "web"},
    ]
    return [{"group_by": g, **f} for g in group_bys for f in filters]


@pytest.mark.parametrize("kind", ["test", "sipas-2017", "sipas-2023", "dossier-rating-2018"])
async def test_every_view_from_rollups_equals_a_recount_from_the_forms(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, kind: str
) -> None:
    """Inserts, reviews both ways (valid, flagged, rejected), corrections of answers and facts,
    deletes: after each round the stored counts equal a recount, and at the end every breakdown
    under every filter read from the roll-ups equals the same read from the forms."""
    rng = random.Random(f"views-{kind}")
    campaign, q, agencies = await setup(session, kind)
    admin = bearer(settings, await make_user(session, Role.admin))
    sectors = [await make_sector(session) for _ in range(2)]
    procedures = [await make_procedure(session, s) for s in sectors for _ in range(2)]
    campaign_id = campaign.id
    agency_ids = [a.id for a in agencies]
    placements = [(p.id, p.sector_id) for p in procedures]
    facet = next(
        (
            item.id
            for _, item in instrument.iter_items(q)
            if item.role is instrument.Role.respondent and instrument.codes_of(item)
        ),
        None,
    )

    def placed(rows: list[Submission]) -> list[Submission]:
        for row in rows:
            procedure = rng.choice([*placements, None])
            row.procedure_id = procedure[0] if procedure else None
            row.sector_id = procedure[1] if procedure else rng.choice([placements[0][1], None])
        return rows

    for round_ in range(3):
        for size in (1, 25, 40):
            session.add_all(placed(forms(campaign, q, agencies, rng, size)))
            await session.flush()
        states = dict(
            (
                await session.execute(
                    sa.select(col(Submission.id), col(Submission.state)).where(
                        col(Submission.campaign_id) == campaign_id
                    )
                )
            ).all()
        )
        # reviews through the API: into and out of `valid`, flagged both ways
        moves = {
            SubmissionState.received: ["valid", "flagged"],
            SubmissionState.valid: ["flagged", "rejected"],
            SubmissionState.flagged: ["valid", "rejected"],
        }
        for row_id in rng.sample(sorted(states), 8):
            if states[row_id] not in moves:
                continue
            to = rng.choice(moves[states[row_id]])
            body = {"state": to, "reason": None if to == "valid" else "Cần kiểm tra lại"}
            answer = await client.post(
                f"/api/v1/submissions/{row_id}/review", json=body, headers=admin
            )
            assert answer.status_code == 200, answer.text
            states[row_id] = SubmissionState(to)
        valid = sorted(i for i, state in states.items() if state == SubmissionState.valid)
        # corrections: answers, facts and both, of counted forms, by plain SQL
        for row_id in rng.sample(valid, min(4, len(valid))):
            procedure_id, sector_id = rng.choice(placements)
            await session.execute(
                sa.update(Submission)
                .where(col(Submission.id) == row_id)
                .values(
                    answers=answers(q, rng),
                    channel=rng.choice(list(Channel)),
                    respondent_type=rng.choice(["individual", "organisation", None]),
                    sector_id=sector_id,
                    procedure_id=procedure_id,
                    agency_id=rng.choice(agency_ids),
                )
                .execution_options(synchronize_session=False)
            )
        # one statement that changes many rows at once, then deletes
        await session.execute(
            sa.update(Submission)
            .where(col(Submission.campaign_id) == campaign_id, col(Submission.channel) == "phone")
            .values(channel="web")
            .execution_options(synchronize_session=False)
        )
        gone = rng.sample(sorted(states), 3)
        await session.execute(
            sa.delete(Submission)
            .where(col(Submission.id).in_(gone))
            .execution_options(synchronize_session=False)
        )
        assert await rollups.discrepancies(session, campaign_id) == [], round_

    views = _views(facet, str(placements[0][1]), str(agency_ids[1]))
    for view in views:  # every one of them is held by the roll-ups
        assert await rollups.load(session, campaign_id, view["group_by"], False) is not None, view
    url = f"/api/v1/campaigns/{campaign_id}/index"
    from_rollups = []
    for params in views:
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, (params, answer.text)
        from_rollups.append(answer.json())
    await session.execute(
        sa.text("DELETE FROM index_rollup_states WHERE campaign_id = :c"), {"c": campaign_id}
    )
    assert await rollups.version(session, campaign_id) is None  # now read from the forms
    for params, expected in zip(views, from_rollups, strict=True):
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        assert close(answer.json(), expected) == [], params
    # the views compared carry real figures, split into more than one cell
    by_sector = from_rollups[views.index({"group_by": "sector"})]
    assert len(by_sector["groups"]) >= 2
    assert by_sector["total"]["n_respondents"] >= 30
    if facet:
        by_facet = from_rollups[views.index({"group_by": f"item:{facet}"})]
        assert len(by_facet["groups"]) >= 2


async def test_weighted_reads_and_other_items_are_not_held_by_rollups(
    session: AsyncSession,
) -> None:
    campaign, _, _ = await setup(session, "sipas-2017")
    assert await rollups.load(session, campaign.id, "agency", True) is None
    assert await rollups.load(session, campaign.id, "item:E1.C1", False) is None
    held = await rollups.load(session, campaign.id, "item:R.AGE", False)
    assert held is not None
    assert held.facet == "R.AGE"


async def test_the_roll_up_triggers_never_compile_their_plans(session: AsyncSession) -> None:
    """The triggers run on every correcting statement and the tail on every read, planned with
    nested loops priced out; on a server built with LLVM (Debian's PostgreSQL 15) that cost
    crossed jit_above_cost and each one-form INSERT spent 2.4 s compiling (when inserts still had
    a trigger). Their functions carry `jit = off`."""
    configs: dict[str, list[str] | None] = dict(
        (
            await session.execute(
                sa.text(
                    "SELECT proname, proconfig FROM pg_proc WHERE proname IN"
                    " ('index_cells_on_update', 'index_cells_on_delete', 'index_cells_fold',"
                    " 'index_cells_pending', 'index_cells_rebuild', 'index_cells_tail')"
                )
            )
        ).all()
    )
    assert set(configs) == {
        "index_cells_on_update",
        "index_cells_on_delete",
        "index_cells_fold",
        "index_cells_pending",
        "index_cells_rebuild",
        "index_cells_tail",
    }
    for name, config in configs.items():
        assert "jit=off" in (config or []), name
