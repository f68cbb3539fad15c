"""Every error path answers RFC 9457 problem+json with a request id."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.deps import SessionDep
from app.main import create_app
from app.models.identity import Role, Scope
from tests.factories import bearer, make_client, make_user
from tests.helpers.problems import assert_problem, error_codes


class Echo(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)
    tags: list[str] = []


@pytest.fixture
def probe_app(settings: Settings, db: Database) -> FastAPI:
    """A fresh app with test-only routes; the real app never has them."""
    app = create_app(settings, database=db)

    @app.post("/test-only/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail that must not leak")

    @app.get("/test-only/sqlstate/{state}")
    async def sqlstate(state: str, session: SessionDep) -> None:
        # A real error from PostgreSQL with the given SQLSTATE (a hot standby cancelling a read
        # that conflicts with replay raises 40001, as a serialization failure does).
        await session.execute(
            sa.text(
                "DO $$ BEGIN RAISE EXCEPTION 'raised for the test' USING ERRCODE = '"
                + {"serialization": "40001", "deadlock": "40P01", "other": "P0001"}[state]
                + "'; END $$"
            )
        )

    return app


@pytest.fixture
async def probe(probe_app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=probe_app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/no-such-thing"), 404, "not_found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/healthz"), 405, "method_not_allowed")
    assert body["instance"] == "/healthz"


async def test_validation_error_points_at_each_field(probe: httpx.AsyncClient) -> None:
    response = await probe.post("/test-only/echo", json={"name": "", "count": -1, "tags": [1]})
    body = assert_problem(response, 422, "validation_failed")
    errors = body["errors"]
    assert isinstance(errors, list)
    pointers = {e["pointer"] for e in errors}
    assert pointers == {"/body/name", "/body/count", "/body/tags/0"}


async def test_malformed_json_is_422_not_500(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        "/test-only/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "validation_failed")


async def test_declared_body_over_limit_is_413(
    probe: httpx.AsyncClient, settings: Settings
) -> None:
    big = b"x" * (settings.max_body_bytes + 1)
    response = await probe.post(
        "/test-only/echo", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_streamed_body_over_limit_is_413(
    probe: httpx.AsyncClient, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    response = await probe.post(
        "/test-only/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")


async def test_unexpected_error_is_500_without_internals(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/test-only/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"]


@pytest.mark.parametrize("state", ["serialization", "deadlock"])
async def test_a_read_to_try_again_is_503_with_retry_after(
    probe: httpx.AsyncClient, state: str
) -> None:
    response = await probe.get(f"/test-only/sqlstate/{state}")
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["Retry-After"].isdigit()


async def test_any_other_database_error_stays_a_500(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/test-only/sqlstate/other")
    assert response.status_code == 500
    assert "raised for the test" not in response.text


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    bad = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"
    assert len(bad.headers["x-request-id"]) == 32


async def test_values_the_database_cannot_store_are_422(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Found by fuzzing: an int32 overflow and a NUL character used to surface as 500s."""
    admin = bearer(settings, await make_user(session, Role.admin))
    too_big = await client.get("/api/v1/campaigns", params={"year": 6553199838}, headers=admin)
    assert_problem(too_big, 422, "validation_failed")
    one_stop, _ = await make_client(session, [Scope.dossiers_write])
    nul = await client.post(
        "/api/v1/dossiers",
        json={
            "code": "HS\u0000-1",
            "procedure_code": "1.0\u00004227",
            "agency_code": "X",
            "returned_at": "2020-05-04T09:30:00+07:00",
        },
        headers=bearer(settings, one_stop),
    )
    body = assert_problem(nul, 422, "validation_failed")  # the model names the fields now
    assert error_codes(body) == [
        ("/body/code", "value_error"),
        ("/body/procedure_code", "value_error"),
    ]
    # where no model stands in the way, the database's refusal is still a 422, not a 500
    searched = await client.get("/api/v1/agencies", params={"q": "Sở\u0000"}, headers=admin)
    assert_problem(searched, 422, "invalid_value")


async def test_every_json_operation_refuses_text_that_is_not_unicode(
    client: httpx.AsyncClient,
) -> None:
    """The check is a dependency of the versioned API's router and runs first: every operation
    that takes JSON answers a lone surrogate with a 422 naming it, before authentication."""
    document = (await client.get("/openapi.json")).json()
    operations = [
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(operations) > 30
    for method, path in operations:
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = await client.request(
            method.upper(),
            url,
            content=json.dumps({"name": "Sở Nội vụ", "x": ["ok", "\udc00"]}),
            headers={"content-type": "application/json"},
        )
        body = assert_problem(response, 422, "invalid")
        assert error_codes(body) == [("/body/x/1", "not_unicode")], (method, path)


async def test_a_lone_surrogate_in_free_json_is_422_with_its_pointer(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A questionnaire definition is free JSON (no model types its strings): the half of a
    UTF-16 pair in a label is refused before anything reads it, with a pointer to it."""
    admin = bearer(settings, await make_user(session, Role.admin))
    definition = {"code": "q-x", "title": "Phiếu \udc80", "sections": [{"items": ["ok", "\ud83d"]}]}
    response = await client.post(
        "/api/v1/questionnaires",
        content=json.dumps({"definition": definition}),
        headers={**admin, "content-type": "application/json"},
    )
    body = assert_problem(response, 422, "invalid")
    assert error_codes(body) == [("/body/definition/title", "not_unicode")]
