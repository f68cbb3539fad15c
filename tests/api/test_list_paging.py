"""Every list takes its page (`limit`, `cursor`) through app/api/paging.py and its filters as a
dataclass dependency: each list, found from the OpenAPI document, answers a page of the size
asked with every documented filter set, and a limit out of range is a 422 naming
`/query/limit`, never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from tests.helpers.problems import assert_problem, error_codes


def _lists(app: FastAPI) -> list[tuple[str, list[dict[str, Any]]]]:
    """The GET operations with a `limit` query parameter and no path parameter, each parameter's
    schema with its references resolved."""
    doc = app.openapi()
    schemas = doc["components"]["schemas"]

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return resolved(schemas[schema["$ref"].rsplit("/", 1)[1]])
        if "anyOf" in schema:
            return {**schema, "anyOf": [resolved(s) for s in schema["anyOf"]]}
        return schema

    found = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        params = (op or {}).get("parameters", [])
        names = {(p["in"], p["name"]) for p in params}
        if ("query", "limit") in names and not any(p["in"] == "path" for p in params):
            params = [{**p, "schema": resolved(p.get("schema", {}))} for p in params]
            found.append((path, params))
    return found


def _example(schema: dict[str, Any]) -> str:
    """A value of the parameter's type: the first enum member, a fresh id, a date..."""
    options = [schema, *schema.get("anyOf", [])]
    for s in options:
        if "enum" in s:
            return str(s["enum"][0])
    kinds = {(s.get("type"), s.get("format")) for s in options}
    for kind, value in (
        (("string", "uuid"), str(uuid.uuid4())),
        (("string", "date"), "2024-01-01"),
        (("string", "date-time"), "2024-01-01T00:00:00Z"),
        (("boolean", None), "true"),
        (("integer", None), "2024"),
    ):
        if kind in kinds:
            return value
    return "x"


async def test_every_list_pages_and_filters(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    lists = _lists(app)
    assert len(lists) >= 14, [path for path, _ in lists]
    for path, params in lists:
        filters = {
            p["name"]: _example(p.get("schema", {}))
            for p in params
            if p["in"] == "query" and p["name"] not in ("limit", "cursor")
        }
        response = await client.get(path, params={"limit": 1, **filters}, headers=admin)
        if response.status_code == 422:
            # A filter naming an unknown agency or event type is refused, by its own name.
            pointers = {pointer for pointer, _ in error_codes(response.json())}
            assert pointers <= {f"/query/{name}" for name in filters}, (path, response.text)
            response = await client.get(path, params={"limit": 1}, headers=admin)
        assert response.status_code == 200, (path, response.text)
        assert len(response.json()["items"]) <= 1, path


async def test_a_limit_out_of_range_names_the_parameter(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for path, _ in _lists(app):
        response = await client.get(path, params={"limit": 0}, headers=admin)
        body = assert_problem(response, 422, "validation_failed")
        assert [pointer for pointer, _ in error_codes(body)] == ["/query/limit"], path
