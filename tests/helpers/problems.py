"""Assertions on RFC 9457 problem+json answers, shared by every test module."""

from __future__ import annotations

import httpx


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:sipas:problem:{code}"
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def error_codes(body: dict[str, object]) -> list[tuple[str, str]]:
    """A problem's errors as (pointer, code) pairs, for comparing without their wording."""
    errors = body["errors"]
    assert isinstance(errors, list)
    return [(e["pointer"], e["code"]) for e in errors]
