"""Forms from every channel: taking them in, reading them, reviewing and correcting them.

- `checks`: what a form is checked against (`WriteContext`, loaded once per request) and the
  checks of one form (`prepare`): the questionnaire, the campaign's scope, the caller's rights,
  an invitation's dossier, the agency and respondent type said once.
- `writes`: the statements that write checked forms, their events and audit, in one round trip.
- `ingest`: one form or a batch, idempotent by a client-made key (`submit_one`, `submit_batch`).
- `read`: one form, lists in commit order, the rows of an export.
- `corrections`: review, corrections with their versions, the re-check sample.
- `common`: what they share (the parsed questionnaire, the body hash, the public shape,
  `REVIEWABLE`).

Callers use the names below (`submissions.submit_one(...)`); the modules' private helpers stay
theirs.
"""

from app.services.submissions.checks import (
    AGENCY_ITEM,
    RESPONDENT_TYPE_ITEM,
    OpenCampaign,
    Prepared,
    WriteContext,
    form_errors,
    open_for_writing,
    prepare,
)
from app.services.submissions.common import REVIEWABLE, instrument_of, public, request_hash
from app.services.submissions.corrections import correct, recheck_sample, review, versions
from app.services.submissions.ingest import (
    IDEMPOTENCY_NAMESPACE,
    Outcome,
    key_from_header,
    submit_batch,
    submit_one,
)
from app.services.submissions.read import Filters, export_rows, get_submission, list_submissions

__all__ = [
    "AGENCY_ITEM",
    "IDEMPOTENCY_NAMESPACE",
    "RESPONDENT_TYPE_ITEM",
    "REVIEWABLE",
    "Filters",
    "OpenCampaign",
    "Outcome",
    "Prepared",
    "WriteContext",
    "correct",
    "export_rows",
    "form_errors",
    "get_submission",
    "instrument_of",
    "key_from_header",
    "list_submissions",
    "open_for_writing",
    "prepare",
    "public",
    "recheck_sample",
    "request_hash",
    "review",
    "submit_batch",
    "submit_one",
    "versions",
]
