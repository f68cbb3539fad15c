"""The agency map: the dated tree, succession links, bulk import and export."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status

from app.api.etag import NOT_MODIFIED, conditional, json_with_etag
from app.api.files import MEDIA_TYPES, XLSX, attachment, download
from app.api.ids import AgencyId
from app.api.paging import PageDep
from app.api.problems import AUTHED, CONFLICT, IMPORT_TOO_LARGE, NOT_FOUND
from app.deps import (
    AgenciesReader,
    AgenciesWriter,
    SessionDep,
    SettingsDep,
)
from app.models.agency import (
    AgencyCreate,
    AgencyKind,
    AgencyLinks,
    AgencyPage,
    AgencyPublic,
    AgencyRetire,
    AgencyUpdate,
    ImportSummary,
    SuccessorLinksCreate,
)
from app.models.timestamps import SaneDate
from app.services import agencies, agency_io, tabular

router = APIRouter(prefix="/agencies", tags=["agencies"], responses=AUTHED)

ValidOn = Annotated[
    SaneDate | None,
    Query(description="Only agencies that existed on this day (valid_from <= d <= valid_to)."),
]


@dataclass
class AgencyFilters:
    level: str | None = None
    kind: AgencyKind | None = None
    parent_id: uuid.UUID | None = None
    is_measured: bool | None = None
    valid_on: ValidOn = None
    q: Annotated[str | None, Query(max_length=200, examples=["son duong"])] = None


@router.get(
    "",
    summary="List and search agencies",
    description="Paged by code. `q` matches name and short name ignoring case and diacritics "
    "(`son duong` finds *Sơn Dương*). An agency manager sees only its own subtree.",
    response_model=AgencyPage,
    responses=NOT_MODIFIED,
)
async def list_agencies(
    request: Request,
    session: SessionDep,
    principal: AgenciesReader,
    page: PageDep,
    filters: Annotated[AgencyFilters, Depends()],
) -> Response:
    found = await agencies.list_agencies(session, principal, **asdict(page), **asdict(filters))
    return json_with_etag(request, found)


@router.get(
    "/export",
    summary="Export agencies as CSV or XLSX",
    description="The columns of the import: code, name, short_name, kind, level, parent_code, "
    "is_measured, valid_from, valid_to, admin_unit_code. CSV is UTF-8 with a BOM.",
    response_class=Response,
    responses={**download("text/csv", XLSX, description="The file."), **NOT_MODIFIED},
)
async def export_agencies(
    request: Request,
    session: SessionDep,
    principal: AgenciesReader,
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    rows = await agency_io.export_rows(session, principal)
    body = agency_io.to_xlsx(rows) if format == "xlsx" else agency_io.to_csv(rows)
    return conditional(request, body, MEDIA_TYPES[format], attachment(f"agencies.{format}"))


@router.post(
    "/import",
    summary="Import agencies from CSV or XLSX (all or nothing)",
    description="Upserts by code. Any bad row rejects the whole file with a 422 whose `errors` "
    "point at `/rows/<row>/<column>` (the header is row 1). With `dry_run=true` the file is "
    "checked and the summary answered, but nothing is written. The file is parsed within the "
    "import limits (413 `import_too_large` names the limit); an unreadable file, or an XLSX "
    "with a DOCTYPE, answers 422 `unreadable_file`.",
    response_model=ImportSummary,
    responses={**CONFLICT, **IMPORT_TOO_LARGE},
)
async def import_agencies(
    session: SessionDep,
    settings: SettingsDep,
    actor: AgenciesWriter,
    file: Annotated[UploadFile, File(description="A .csv (UTF-8, BOM optional) or .xlsx file.")],
    dry_run: bool = False,
) -> ImportSummary:
    limits = tabular.Limits.of(settings)
    raw = await agency_io.parse_upload(file.filename, file.content_type, await file.read(), limits)
    return await agency_io.import_rows(session, actor, raw, dry_run=dry_run, source=file.filename)


@router.post(
    "",
    summary="Create an agency",
    description="A new agency under its parent, with a unique code (409 otherwise). Audited.",
    status_code=status.HTTP_201_CREATED,
    response_model=AgencyPublic,
    responses=CONFLICT,
)
async def create_agency(
    session: SessionDep, actor: AgenciesWriter, body: AgencyCreate
) -> AgencyPublic:
    return agencies.public(await agencies.create_agency(session, actor, body))


@router.get(
    "/{agency_id}",
    summary="One agency",
    description="Answers with an ETag; a caller holding it gets 304. An agency manager sees only "
    "its own subtree (404 otherwise).",
    response_model=AgencyPublic,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_agency(
    request: Request, session: SessionDep, principal: AgenciesReader, agency_id: AgencyId
) -> Response:
    agency = await agencies.get_agency(session, principal, agency_id)
    return json_with_etag(request, agencies.public(agency))


@router.patch(
    "/{agency_id}",
    summary="Change an agency, or move it under another parent",
    description="Moving an agency under itself or one of its descendants is refused with 409 "
    "`agency_cycle` pointing at `/body/parent_id`.",
    response_model=AgencyPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_agency(
    session: SessionDep, actor: AgenciesWriter, agency_id: AgencyId, body: AgencyUpdate
) -> AgencyPublic:
    return agencies.public(await agencies.update_agency(session, actor, agency_id, body))


@router.get(
    "/{agency_id}/subtree",
    summary="The agency and every agency below it",
    description="The subtree as a flat list, optionally as it stood on `valid_on`. Answers with "
    "an ETag.",
    response_model=list[AgencyPublic],
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_subtree(
    request: Request,
    session: SessionDep,
    principal: AgenciesReader,
    agency_id: AgencyId,
    valid_on: ValidOn = None,
) -> Response:
    return json_with_etag(request, await agencies.subtree(session, principal, agency_id, valid_on))


@router.get(
    "/{agency_id}/ancestors",
    summary="The agency's parents up to the root, root first",
    description="The chain of parents, for breadcrumbs. Answers with an ETag.",
    response_model=list[AgencyPublic],
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_ancestors(
    request: Request, session: SessionDep, principal: AgenciesReader, agency_id: AgencyId
) -> Response:
    return json_with_etag(request, await agencies.ancestors(session, principal, agency_id))


@router.get(
    "/{agency_id}/successors",
    summary="Succession links both ways: successors and predecessors",
    description="Which agencies this one was merged or renamed into, and which were merged into "
    "it. Answers with an ETag.",
    response_model=AgencyLinks,
    responses={**NOT_FOUND, **NOT_MODIFIED},
)
async def get_successors(
    request: Request, session: SessionDep, principal: AgenciesReader, agency_id: AgencyId
) -> Response:
    return json_with_etag(request, await agencies.links(session, principal, agency_id))


@router.post(
    "/{agency_id}/successors",
    summary="Add succession links from this agency",
    description="Records merges, splits or renames effective on a date; the index follows them "
    "when comparing with a baseline. Audited.",
    response_model=AgencyLinks,
    responses=NOT_FOUND,
)
async def add_successors(
    session: SessionDep, actor: AgenciesWriter, agency_id: AgencyId, body: SuccessorLinksCreate
) -> AgencyLinks:
    return await agencies.add_successors(session, actor, agency_id, body.successors)


@router.post(
    "/{agency_id}/retire",
    summary="End an agency on a date, optionally naming its successors",
    description="Refused with 409 `agency_has_active_children` while a child agency is still "
    "valid after `valid_to`.",
    response_model=AgencyPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def retire_agency(
    session: SessionDep, actor: AgenciesWriter, agency_id: AgencyId, body: AgencyRetire
) -> AgencyPublic:
    return agencies.public(await agencies.retire_agency(session, actor, agency_id, body))
