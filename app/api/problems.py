"""OpenAPI description of the problem+json envelope, shared by every router."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.models.base import FieldProblem

# The items of a problem's `errors`, as batch results carry them too.
ProblemFieldError = FieldProblem


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered."""

    type: str = Field(examples=["urn:sipas:problem:validation_failed"])
    title: str = Field(examples=["Unprocessable Content"])
    status: int = Field(examples=[422])
    code: str = Field(examples=["validation_failed"])
    detail: str = Field(examples=["The request is not valid; see errors."])
    instance: str | None = Field(default=None, examples=["/api/v1/agencies"])
    request_id: str | None = Field(default=None, examples=["3f0c2a9b7d4e4f1a9c2b8e7d6a5f4c3b"])
    errors: list[FieldProblem] | None = Field(
        default=None, description="Each offending field, by its JSON pointer into the request."
    )


Responses = dict[int | str, dict[str, Any]]


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


UNAUTHORIZED: Responses = {401: _problem("Missing, malformed, expired or revoked bearer token.")}
FORBIDDEN: Responses = {403: _problem("The caller is known but lacks the role or scope.")}
NOT_FOUND: Responses = {404: _problem("No such object within the caller's scope.")}
CONFLICT: Responses = {409: _problem("The request conflicts with the current state.")}
INVALID: Responses = {
    422: _problem("The request is not valid; `errors` lists each offending field.")
}
GONE: Responses = {410: _problem("The invitation has expired.")}
TOO_MANY: Responses = {429: _problem("Too many requests; retry after the `Retry-After` seconds.")}
IMPORT_TOO_LARGE: Responses = {
    413: _problem(
        "`import_too_large`: the file goes past an import limit; `limit` names it (rows, "
        "columns, cells, shared_strings, uncompressed_bytes, zip_members, seconds) and "
        "`maximum` gives its value."
    )
}
UNAVAILABLE: Responses = {503: _problem("The service cannot answer now.")}

AUTHED: Responses = {**UNAUTHORIZED, **FORBIDDEN, **INVALID}

# Set on the answer to a retried write that changed nothing: the first answer, again.
REPLAYED = "Idempotent-Replayed"
