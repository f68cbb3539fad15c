"""The one-stop system reports handled dossiers and gets rating invitations back."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.ids import DossierCode
from app.api.json_body import JsonRoute
from app.api.problems import AUTHED, CONFLICT, NOT_FOUND, REPLAYED
from app.deps import DossiersWriter, SessionDep, SettingsDep
from app.models.dossier import DossierBatch, DossierBatchResult, DossierEvent, DossierResult
from app.services import dossiers, limits

# Batches of dossier reports: their bodies are parsed by orjson (`json_body`).
router = APIRouter(prefix="/dossiers", tags=["dossiers"], responses=AUTHED, route_class=JsonRoute)


@router.post(
    "",
    summary="Report one returned dossier; get its one-time rating invitations",
    operation_id="dossiers_create",
    description="Idempotent by dossier code: the same event again answers 200 with the same "
    "dossier and tokens; another event under the same code is 409. An invitation is made for "
    "each open campaign that rates dossiers and covers the dossier's agency and date.",
    status_code=status.HTTP_201_CREATED,
    response_model=DossierResult,
    responses={**CONFLICT, 200: {"model": DossierResult, "description": "A repeated event."}},
)
async def report_dossier(
    session: SessionDep,
    settings: SettingsDep,
    actor: DossiersWriter,
    body: DossierEvent,
    response: Response,
) -> DossierResult:
    result = await dossiers.record_single(session, settings, actor, body)
    if result.status == "duplicate":
        response.status_code = status.HTTP_200_OK
        response.headers[REPLAYED] = "true"
    return result


@router.post(
    "/batch",
    summary="Report up to 1000 dossiers; one result per item",
    operation_id="dossiers_create_batch",
    description="Each item is created, a duplicate, or an error with its pointers; valid items "
    "are kept even when others fail.",
    response_model=DossierBatchResult,
)
async def report_batch(
    session: SessionDep, settings: SettingsDep, actor: DossiersWriter, body: DossierBatch
) -> DossierBatchResult:
    limits.check_batch_size(settings, len(body.dossiers), "/body/dossiers")
    return await dossiers.record_batch(session, settings, actor, body.dossiers)


@router.get(
    "/{code}",
    summary="A reported dossier and its invitations",
    description="The dossier as the one-stop system reported it, with its rating invitations; 404"
    " for a code this client never reported.",
    response_model=DossierResult,
    responses=NOT_FOUND,
)
async def get_dossier(
    session: SessionDep, settings: SettingsDep, actor: DossiersWriter, code: DossierCode
) -> DossierResult:
    return await dossiers.get_dossier(session, settings, actor, code)
