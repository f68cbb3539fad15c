"""The ids that stand in the API's paths, one type each, with the description a generated
client shows beside the parameter. A route names the id it takes by its type here
(`agency_id: AgencyId`), so that every path declares the same id the same way."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

AgencyId = Annotated[uuid.UUID, Path(description="The agency's id.")]
CampaignId = Annotated[uuid.UUID, Path(description="The campaign's id.")]
SectorId = Annotated[uuid.UUID, Path(description="The sector's id.")]
ProcedureId = Annotated[uuid.UUID, Path(description="The procedure's id.")]
QuestionnaireId = Annotated[uuid.UUID, Path(description="The questionnaire version's id.")]
SubmissionId = Annotated[uuid.UUID, Path(description="The form's id.")]
ReportId = Annotated[uuid.UUID, Path(description="The report's id.")]
PlanId = Annotated[uuid.UUID, Path(description="The improvement plan's id.")]
ActionId = Annotated[uuid.UUID, Path(description="The id of one of the plan's actions.")]
RecordId = Annotated[uuid.UUID, Path(description="The dissemination record's id.")]
RecheckId = Annotated[uuid.UUID, Path(description="The re-check's id.")]
ObservationId = Annotated[uuid.UUID, Path(description="The supervision observation's id.")]
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
ClientId = Annotated[uuid.UUID, Path(description="The client's `id`, not its `client_id`.")]
SubscriptionId = Annotated[uuid.UUID, Path(description="The webhook subscription's id.")]
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The delivery's id.")]
DossierCode = Annotated[
    str, Path(description="The dossier's code, as the one-stop system sent it.")
]
