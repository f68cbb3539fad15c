"""Roll-ups folded after commit (migration 0013f), with real, separate transactions: the cells
catch up in batches, and a read (cells plus the tail counted from the forms) equals a recount
whatever the folds, corrections, reviews and deletes in between, and whatever runs beside a
fold. These tests commit, then clean up."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import Database
from app.models.agency import Agency
from app.models.campaign import Campaign
from app.models.identity import Role
from app.models.submission import Channel, Submission, SubmissionState
from app.services import instrument
from app.services.events.worker import Worker
from app.services.index import rollups
from tests.factories import bearer, make_procedure, make_sector, make_user
from tests.helpers.cli import sipas
from tests.helpers.horizon import settled
from tests.helpers.rollup_world import answers, close, forms, setup


@dataclass
class World:
    db: Database
    campaign: Campaign
    q: instrument.Questionnaire
    agencies: list[Agency]
    placements: list[tuple[uuid.UUID, uuid.UUID | None]]
    admin: dict[str, str]


@pytest.fixture
async def world(db: Database, settings: Settings) -> AsyncIterator[World]:
    async with AsyncSession(db.engine, expire_on_commit=False) as s:
        campaign, q, agencies = await setup(s, "sipas-2017")
        sectors = [await make_sector(s) for _ in range(2)]
        procedures = [await make_procedure(s, sector) for sector in sectors]
        admin = await make_user(s, Role.admin)
        await s.commit()
    placements: list[tuple[uuid.UUID, uuid.UUID | None]] = [(p.id, p.sector_id) for p in procedures]
    yield World(db, campaign, q, agencies, placements, bearer(settings, admin))
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM users WHERE id = :u"), {"u": admin.id})
        c = {"c": campaign.id}
        for statement in (
            "DELETE FROM submissions WHERE campaign_id = :c",
            "DELETE FROM campaign_agencies WHERE campaign_id = :c",
            "DELETE FROM campaigns WHERE id = :c",
        ):
            await conn.execute(sa.text(statement), c)
        await conn.execute(
            sa.text("DELETE FROM questionnaires WHERE id = :q"), {"q": campaign.questionnaire_id}
        )
        for procedure in procedures:
            await conn.execute(sa.text("DELETE FROM procedures WHERE id = :p"), {"p": procedure.id})
        for sector in sectors:
            await conn.execute(sa.text("DELETE FROM sectors WHERE id = :s"), {"s": sector.id})
        for agency in reversed(agencies):
            await conn.execute(sa.text("DELETE FROM agencies WHERE id = :a"), {"a": agency.id})


async def _insert(w: World, rng: random.Random, count: int) -> None:
    async with AsyncSession(w.db.engine) as s:
        rows = forms(w.campaign, w.q, w.agencies, rng, count)
        for row in rows:
            procedure_id, sector_id = rng.choice([*w.placements, (None, None)])
            row.procedure_id, row.sector_id = procedure_id, sector_id
        s.add_all(rows)
        await s.commit()


async def _check(w: World) -> tuple[int, int]:
    """The read equals a recount; (forms in the cells, forms in the tail) of the valid ones."""
    async with AsyncSession(w.db.engine) as s:
        assert await rollups.discrepancies(s, w.campaign.id) == []
        folded, tail = (
            await s.execute(
                sa.text(
                    """SELECT count(*) FILTER (WHERE s.tx_id < st.folded_to),
                              count(*) FILTER (WHERE s.tx_id >= st.folded_to)
                       FROM submissions s JOIN index_rollup_states st
                         ON st.campaign_id = s.campaign_id
                       WHERE s.campaign_id = :c AND s.state = 'valid'"""
                ),
                {"c": w.campaign.id},
            )
        ).one()
        cells = await s.scalar(
            sa.text(
                "SELECT coalesce(sum(n), 0) FROM index_cells WHERE campaign_id = :c AND facet = ''"
            ),
            {"c": w.campaign.id},
        )
        assert cells == folded  # the cells hold exactly the folded forms
        return int(folded), int(tail)


async def _fold(w: World, most: int | None) -> int | None:
    async with AsyncSession(w.db.engine) as s:
        folded = await rollups.fold(s, w.campaign.id, most)
        await s.commit()
        return folded


async def _valid_ids(w: World) -> list[uuid.UUID]:
    async with AsyncSession(w.db.engine) as s:
        return sorted(
            (
                await s.scalars(
                    sa.select(col(Submission.id)).where(
                        col(Submission.campaign_id) == w.campaign.id,
                        col(Submission.state) == SubmissionState.valid,
                    )
                )
            ).all()
        )


async def _correct(w: World, rng: random.Random, ids: list[uuid.UUID]) -> None:
    """Answers and facts changed, one form rejected, one deleted: committed."""
    async with AsyncSession(w.db.engine) as s:
        for row_id in ids[:-2]:
            procedure_id, sector_id = rng.choice(w.placements)
            await s.execute(
                sa.update(Submission)
                .where(col(Submission.id) == row_id)
                .values(
                    answers=answers(w.q, rng),
                    channel=rng.choice(list(Channel)),
                    procedure_id=procedure_id,
                    sector_id=sector_id,
                    agency_id=rng.choice(w.agencies).id,
                )
            )
        await s.execute(
            sa.update(Submission)
            .where(col(Submission.id) == ids[-2])
            .values(state=SubmissionState.rejected)
        )
        await s.execute(sa.delete(Submission).where(col(Submission.id) == ids[-1]))
        await s.commit()


async def test_folds_in_batches_and_reads_stay_exact_through_every_write(world: World) -> None:
    rng = random.Random("fold")
    for size in (1, 30, 45):
        await _insert(world, rng, size)
    await settled(world.db.engine)
    folded, tail = await _check(world)
    assert folded == 0
    assert tail > 0
    for round_ in range(3):
        # a fold of part of the tail: whole transactions, at least the one it stopped in
        assert (await _fold(world, 20) or 0) > 0, round_
        folded, tail = await _check(world)
        assert folded > 0, round_
        # corrections of folded forms and of forms in the tail, in one transaction
        valid = await _valid_ids(world)
        await _correct(world, rng, rng.sample(valid, 6))
        await _check(world)
        await _insert(world, rng, 25)
        await settled(world.db.engine)
        await _check(world)
    # the rest, then nothing left
    assert (await _fold(world, None) or 0) > 0
    folded, tail = await _check(world)
    assert tail == 0
    assert folded > 0
    assert await _fold(world, None) == 0


async def test_a_fold_and_a_correction_follow_one_another(world: World) -> None:
    """A correction holds the campaign: the fold steps aside (None) and comes back. A fold holds
    it: the correction of a form it is folding waits, then subtracts what the fold added."""
    rng = random.Random("race")
    await _insert(world, rng, 40)
    await settled(world.db.engine)
    valid = await _valid_ids(world)
    assert (await _fold(world, None) or 0) > 0
    await _insert(world, rng, 40)
    await settled(world.db.engine)

    async with AsyncSession(world.db.engine) as correcting:
        await correcting.execute(
            sa.update(Submission)
            .where(col(Submission.id) == valid[0])
            .values(answers=answers(world.q, rng))
        )
        assert await _fold(world, None) is None  # the campaign is held: try again later
        await correcting.commit()
    await _check(world)

    tail = [i for i in await _valid_ids(world) if i not in valid]
    async with AsyncSession(world.db.engine) as folding:
        assert (await rollups.fold(folding, world.campaign.id, None) or 0) > 0

        async def correct() -> None:
            async with AsyncSession(world.db.engine) as s:
                await s.execute(
                    sa.update(Submission)
                    .where(col(Submission.id) == tail[0])
                    .values(answers=answers(world.q, rng), channel="kiosk")
                )
                await s.commit()

        waiting = asyncio.create_task(correct())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the correction waits for the fold's transaction
        await folding.commit()
        await waiting
    folded, tail_left = await _check(world)
    assert tail_left == 0
    assert folded > 0


async def test_a_fold_stops_below_a_transaction_still_open(world: World) -> None:
    """Forms of a transaction still running when a fold starts are left in the tail (they could
    otherwise commit below the mark unseen); once committed they are read, then folded."""
    rng = random.Random("open")
    await _insert(world, rng, 20)
    async with AsyncSession(world.db.engine) as open_tx:
        rows = forms(world.campaign, world.q, world.agencies, rng, 30)
        for row in rows:
            row.state = SubmissionState.valid
        open_tx.add_all(rows)
        await open_tx.flush()
        await _fold(world, None)
        folded, _ = await _check(world)  # the open forms are not seen, nor folded
        await open_tx.commit()
    folded_before, tail = await _check(world)
    assert folded_before == folded
    assert tail >= 30  # committed, not folded: read from the tail
    await settled(world.db.engine)
    await _fold(world, None)
    folded, tail = await _check(world)
    assert tail == 0
    assert folded >= folded_before + 30


async def test_reads_through_the_api_equal_reads_from_the_forms(
    world: World, client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Half folded, half in the tail: every held breakdown read through the API equals the same
    read with the campaign's roll-ups removed (in the test's transaction, rolled back; it writes
    nothing before then, so it does not hold the horizon back)."""
    admin = world.admin
    rng = random.Random("api")
    for size in (40, 40, 40):
        await _insert(world, rng, size)
    await settled(world.db.engine)
    await _fold(world, 50)  # whole transactions below the 51st form: the first 40
    folded, tail = await _check(world)
    assert folded > 0
    assert tail > 0
    # the operator sees the backlog: the forms not folded, of every state
    unfolded = await _unfolded(client)
    assert unfolded >= tail
    url = f"/api/v1/campaigns/{world.campaign.id}/index"
    reads = [
        {"group_by": g}
        for g in ("none", "agency", "sector", "procedure", "channel", "respondent_type")
    ] + [{"group_by": "agency", "channel": "web"}, {"group_by": "item:R.AGE"}]
    held = []
    for params in reads:
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        held.append(answer.json())
    await session.execute(
        sa.text("DELETE FROM index_rollup_states WHERE campaign_id = :c"), {"c": world.campaign.id}
    )
    for params, expected in zip(reads, held, strict=True):
        answer = await client.get(url, params=params, headers=admin)
        assert answer.status_code == 200, answer.text
        assert close(answer.json(), expected) == [], params
    assert held[0]["total"]["n_respondents"] == folded + tail


async def test_the_worker_and_sipas_fold_catch_up(
    world: World, settings: Settings, database_url: str, client: httpx.AsyncClient
) -> None:
    """`sipas worker` folds a batch per campaign on each round; `sipas fold` folds all now; the
    backlog on /metrics follows."""
    rng = random.Random("worker")
    await _insert(world, rng, 30)
    await settled(world.db.engine)
    async with world.db.engine.connect() as conn:
        ours = await conn.scalar(sa.text("SELECT index_cells_tail(:c)"), {"c": world.campaign.id})
    backlog = await _unfolded(client)
    assert backlog >= ours >= 30

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(world.db.engine) as s, s.begin():
            yield s

    async with httpx.AsyncClient() as http:
        assert await Worker(transaction, settings, http).fold() >= 30
    folded, tail = await _check(world)
    assert tail == 0
    assert await _unfolded(client) == backlog - ours
    await _insert(world, rng, 20)
    await settled(world.db.engine)
    done = await asyncio.to_thread(sipas, database_url, "fold")
    assert done.returncode == 0, done.stderr
    assert "forms folded into the index roll-ups: " in done.stdout
    assert int(done.stdout.rsplit(":", 1)[1]) >= 20
    more, tail = await _check(world)
    assert tail == 0
    assert more > folded


async def _unfolded(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("sipas_index_unfolded_forms "))
    return int(float(line.split()[1]))
