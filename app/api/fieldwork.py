"""Fieldwork: the sampling frame, the stratified sample, surveyor assignments, the worklist."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from starlette.datastructures import UploadFile

from app.api.etag import NOT_MODIFIED, conditional, json_with_etag
from app.api.files import CSV, attachment
from app.api.ids import CampaignId
from app.api.problems import AUTHED, CONFLICT, IMPORT_TOO_LARGE, NOT_FOUND, Responses
from app.config import Settings
from app.deps import (
    CampaignsReader,
    CampaignsWriter,
    FrameWriter,
    SessionDep,
    SettingsDep,
    WorklistReader,
)
from app.errors import AppError, FieldError, Invalid
from app.models.fieldwork import (
    FrameImport,
    FrameImportSummary,
    SamplePublic,
    SampleRequest,
    SurveyorAssignmentPublic,
    SurveyorAssignments,
    WorklistItem,
)
from app.services import fieldwork, tabular

router = APIRouter(prefix="/campaigns", tags=["fieldwork"], responses=AUTHED)

UNSUPPORTED: Responses = {
    415: {
        "description": "Send application/json, multipart/form-data (field `file`) or text/csv.",
        "content": {"application/problem+json": {}},
    }
}
FRAME_EXAMPLE = {
    "units": [
        {
            "dossier_code": "000.00.12.H59-200315-0001",
            "procedure_code": "1.001193",
            "agency_code": "TQ.STP",
            "returned_on": "2020-03-15",
            "contact_name": "Nguyễn Thị Hoà",
            "contact_phone": "0912345678",
            "contact_address": "Tổ 5, phường Minh Xuân, TP. Tuyên Quang",
        }
    ]
}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `#/$defs/...` references replaced by their definitions: the OpenAPI
    document has no `$defs` section for them to point into."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


FRAME_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _inline(FrameImport.model_json_schema()),
                "example": FRAME_EXAMPLE,
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (UTF-8, BOM optional) or XLSX; the header row "
                            "holds the JSON field names.",
                        }
                    },
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "dossier_code,procedure_code,agency_code,returned_on,contact_name\r\n"
                "000.00.12.H59-200315-0001,1.001193,TQ.STP,2020-03-15,Nguyễn Thị Hoà\r\n",
            },
        },
    }
}
FRAME_DESCRIPTION = """
The frame is the list of dossiers the one-stop system completed in the campaign's period. Send
it as JSON (`{"units": [...]}`) or upload a CSV file (multipart field `file`, UTF-8 with or
without BOM, header row = the field names). Allowed while the campaign is `draft` or `open`;
the scope `frame:write` is held by the one-stop client and by admins.

All or nothing: any bad unit refuses the import with 422 `import_rejected`, one error per bad
unit pointing at `/units/<index>/<field>` (JSON) or `/rows/<row>/<column>` (CSV, header = row 1).
Units are upserted by dossier code; contact fields are kept apart and purged on archiving. Each
unit joins the stratum agency x sector (agency alone when the campaign has no sectors in scope),
created when missing; every stratum's frame size N_h is then recounted.

Answers 201 when some dossier codes were new, 200 when every one was already in the frame.
"""


async def _frame_source(request: Request, settings: Settings) -> fieldwork.FrameSource:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limits = tabular.Limits.of(settings)
    if media_type == "multipart/form-data":
        # The context closes the spooled upload files, whatever happens while reading them.
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                detail = "Upload the frame file in the multipart field `file`."
                raise Invalid(detail, [FieldError("/body/file", detail, "missing")])
            data = await upload.read()
            table = await tabular.read_upload(upload.filename, upload.content_type, data, limits)
            return fieldwork.file_source(table, upload.filename)
    if media_type == "text/csv":
        table = await tabular.read_upload(None, media_type, await request.body(), limits)
        return fieldwork.file_source(table, None)
    if media_type in ("", "application/json") or media_type.endswith("+json"):
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            detail = "The body is not valid JSON."
            raise Invalid(detail, [FieldError("/body", detail, "json_invalid")]) from exc
        return fieldwork.json_source(body)
    raise AppError(
        "unsupported_media_type",
        "Send application/json, multipart/form-data (field `file`) or text/csv.",
        415,
    )


@router.post(
    "/{campaign_id}/frame",
    summary="Import the sampling frame (completed dossiers) as JSON or CSV, all or nothing",
    description=FRAME_DESCRIPTION,
    status_code=status.HTTP_201_CREATED,
    response_model=FrameImportSummary,
    responses={
        200: {"model": FrameImportSummary, "description": "Nothing new: every unit was updated."},
        **NOT_FOUND,
        **CONFLICT,
        **UNSUPPORTED,
        **IMPORT_TOO_LARGE,
    },
    openapi_extra=FRAME_BODY,
)
async def import_frame(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    actor: FrameWriter,
    campaign_id: CampaignId,
) -> FrameImportSummary:
    source = await _frame_source(request, settings)
    summary = await fieldwork.import_frame(session, actor, campaign_id, source)
    response.status_code = status.HTTP_201_CREATED if summary.created else status.HTTP_200_OK
    return summary


@router.post(
    "/{campaign_id}/sample",
    summary="Draw the stratified sample: n_h units from each stratum, repeatable by seed",
    description="Each stratum draws a simple random sample of its target from its frame units, "
    "with the stream `<seed>/<stratum id>`; a stratum smaller than its target is taken whole. "
    "The same seed gives the same sample; without a seed a random one is made and stored on the "
    "campaign. Refused with 409 `targets_missing` while a stratum has no target, and 409 "
    "`campaign_locked` unless the campaign is `draft` or `open`.",
    response_model=SamplePublic,
    responses={**NOT_FOUND, **CONFLICT},
)
async def draw_sample(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: SampleRequest
) -> SamplePublic:
    return await fieldwork.draw_sample(session, actor, campaign_id, body.seed)


@router.get(
    "/{campaign_id}/surveyors",
    summary="The surveyors assigned to the campaign, and to which agency's part",
    description="One row per assignment: the surveyor and, when limited, the agency.",
    response_model=list[SurveyorAssignmentPublic],
    responses=NOT_FOUND,
)
async def list_surveyors(
    session: SessionDep, principal: CampaignsReader, campaign_id: CampaignId
) -> list[SurveyorAssignmentPublic]:
    return await fieldwork.list_surveyors(session, principal, campaign_id)


@router.put(
    "/{campaign_id}/surveyors",
    summary="Replace the surveyor assignments",
    description="Each user must have the role surveyor; `agency_id` limits the assignment to "
    "one agency of the campaign's scope, null assigns the whole campaign.",
    response_model=list[SurveyorAssignmentPublic],
    responses={**NOT_FOUND, **CONFLICT},
)
async def replace_surveyors(
    session: SessionDep, actor: CampaignsWriter, campaign_id: CampaignId, body: SurveyorAssignments
) -> list[SurveyorAssignmentPublic]:
    return await fieldwork.replace_surveyors(session, actor, campaign_id, body)


@router.get(
    "/{campaign_id}/worklist",
    summary="The sampled dossiers to visit, with the applicant's contact, as JSON or CSV",
    description="A surveyor sees the units of the agencies assigned to them (all of the "
    "campaign for an assignment without agency) and gets 404 for a campaign they are not "
    "assigned to; other callers with `worklist:read` see every unit. Sorted by agency code, "
    "then dossier code. CSV is UTF-8 with a BOM and a header row of the JSON field names. "
    "Contact fields are empty once the campaign is archived.",
    response_model=list[WorklistItem],
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **NOT_FOUND,
        **NOT_MODIFIED,
    },
)
async def worklist(
    request: Request,
    session: SessionDep,
    principal: WorklistReader,
    campaign_id: CampaignId,
    agency_id: Annotated[uuid.UUID | None, Query(description="Only this agency's units.")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv.")] = "json",
) -> Response:
    items = await fieldwork.worklist(session, principal, campaign_id, agency_id)
    if format == "csv":
        body = fieldwork.worklist_csv(items)
        return conditional(request, body, CSV, attachment("worklist.csv"))
    return json_with_etag(request, items)
