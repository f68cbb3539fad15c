"""The catalogue: sectors, procedures, and the sectors each agency handles."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.api.etag import NOT_MODIFIED, json_with_etag
from app.api.ids import AgencyId, ProcedureId, SectorId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND
from app.deps import (
    AgenciesReader,
    CatalogueReader,
    CatalogueWriter,
    SessionDep,
)
from app.models.catalogue import (
    AgencySectorList,
    AgencySectorsReplace,
    ProcedureCreate,
    ProcedurePage,
    ProcedurePublic,
    ProcedureUpdate,
    SectorCreate,
    SectorPage,
    SectorPublic,
    SectorUpdate,
)
from app.services import catalogue

router = APIRouter(tags=["catalogue"], responses=AUTHED)
Search = Annotated[str | None, Query(max_length=200, description="Ignores case and diacritics.")]


@dataclass
class SectorFilters:
    q: Search = None


@dataclass
class ProcedureFilters:
    sector_id: Annotated[uuid.UUID | None, Query(alias="sector")] = None
    level: str | None = None
    q: Search = None


@router.get(
    "/sectors",
    summary="List sectors",
    description="Paged by code; `q` searches the names ignoring case and diacritics. Answers with"
    " an ETag.",
    response_model=SectorPage,
    responses=NOT_MODIFIED,
)
async def list_sectors(
    request: Request,
    session: SessionDep,
    _: CatalogueReader,
    page: PageDep,
    filters: Annotated[SectorFilters, Depends()],
) -> Response:
    found = await catalogue.list_sectors(session, **asdict(page), **asdict(filters))
    return json_with_etag(request, found)


@router.post(
    "/sectors",
    summary="Create a sector",
    description="A sector with a unique code (409 otherwise). Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=SectorPublic,
    responses=CONFLICT,
)
async def create_sector(
    session: SessionDep, actor: CatalogueWriter, body: SectorCreate
) -> SectorPublic:
    return catalogue.sector_public(await catalogue.create_sector(session, actor, body))


@router.get(
    "/sectors/{sector_id}",
    summary="One sector",
    description="Answers with an ETag; a caller holding it gets 304.",
    response_model=SectorPublic,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_sector(
    request: Request, session: SessionDep, _: CatalogueReader, sector_id: SectorId
) -> Response:
    sector = await catalogue.get_sector(session, sector_id)
    return json_with_etag(request, catalogue.sector_public(sector))


@router.patch(
    "/sectors/{sector_id}",
    summary="Change a sector",
    description="Only the fields sent change. Audited.",
    response_model=SectorPublic,
    responses=NOT_FOUND,
)
async def update_sector(
    session: SessionDep, actor: CatalogueWriter, sector_id: SectorId, body: SectorUpdate
) -> SectorPublic:
    return catalogue.sector_public(await catalogue.update_sector(session, actor, sector_id, body))


@router.get(
    "/procedures",
    summary="List and search administrative procedures",
    description="Paged by code; `q` searches ignoring case and diacritics, `sector` and `level` "
    "filter. Answers with an ETag.",
    response_model=ProcedurePage,
    responses=NOT_MODIFIED,
)
async def list_procedures(
    request: Request,
    session: SessionDep,
    _: CatalogueReader,
    page: PageDep,
    filters: Annotated[ProcedureFilters, Depends()],
) -> Response:
    found = await catalogue.list_procedures(session, **asdict(page), **asdict(filters))
    return json_with_etag(request, found)


@router.post(
    "/procedures",
    summary="Create a procedure",
    description="A procedure with its national code (unique, 409 otherwise) and its sector. "
    "Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=ProcedurePublic,
    responses=CONFLICT,
)
async def create_procedure(
    session: SessionDep, actor: CatalogueWriter, body: ProcedureCreate
) -> ProcedurePublic:
    return catalogue.procedure_public(await catalogue.create_procedure(session, actor, body))


@router.get(
    "/procedures/{procedure_id}",
    summary="One procedure",
    description="Answers with an ETag; a caller holding it gets 304.",
    response_model=ProcedurePublic,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_procedure(
    request: Request, session: SessionDep, _: CatalogueReader, procedure_id: ProcedureId
) -> Response:
    procedure = await catalogue.get_procedure(session, procedure_id)
    return json_with_etag(request, catalogue.procedure_public(procedure))


@router.patch(
    "/procedures/{procedure_id}",
    summary="Change a procedure",
    description="Only the fields sent change. Audited.",
    response_model=ProcedurePublic,
    responses=NOT_FOUND,
)
async def update_procedure(
    session: SessionDep, actor: CatalogueWriter, procedure_id: ProcedureId, body: ProcedureUpdate
) -> ProcedurePublic:
    return catalogue.procedure_public(
        await catalogue.update_procedure(session, actor, procedure_id, body)
    )


@router.get(
    "/agencies/{agency_id}/sectors",
    summary="The sectors an agency handles",
    description="The agency's sectors, which bound the procedures its forms may name. Answers "
    "with an ETag.",
    response_model=AgencySectorList,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_agency_sectors(
    request: Request,
    session: SessionDep,
    principal: AgenciesReader,
    _: CatalogueReader,
    agency_id: AgencyId,
) -> Response:
    items = await catalogue.agency_sectors(session, principal, agency_id)
    return json_with_etag(request, AgencySectorList(items=items))


@router.put(
    "/agencies/{agency_id}/sectors",
    summary="Replace the set of sectors an agency handles",
    description="The list sent becomes the whole set. Audited.",
    response_model=AgencySectorList,
    responses=NOT_FOUND,
)
async def replace_agency_sectors(
    session: SessionDep, actor: CatalogueWriter, agency_id: AgencyId, body: AgencySectorsReplace
) -> AgencySectorList:
    items = await catalogue.replace_agency_sectors(session, actor, agency_id, body.sector_ids)
    return AgencySectorList(items=items)
