"""The OpenAPI linter: the document is valid, and keeps the rules a generated client relies on.

Each rule names the operations or schemas that break it, so a new endpoint that forgets one
fails here with its name rather than in an integrator's generated client.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, routing
from openapi_spec_validator import validate
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.deps import CampaignsReader, SessionDep
from app.main import create_app
from app.models.campaign import Campaign
from app.models.identity import CLIENT_SCOPES, Role, Scope
from app.openapi import operation_id, walk_schemas
from app.services.demo_campaigns import ensure_demo_campaigns
from app.services.seed import load_demo_catalogue
from tests.factories import bearer, make_user

Operation = tuple[str, str, dict[str, Any]]
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)*$")
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    doc: dict[str, Any] = app.openapi()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[Operation]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_operation_ids_are_unique_and_readable(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert [i for i in ids if not OPERATION_ID.fullmatch(i)] == []
    tags = {op["operationId"]: op["tags"][0] for _, _, op in operations(document)}
    assert [i for i, tag in tags.items() if not i.startswith(tag + "_")] == []
    for expected in (
        "campaigns_list",
        "campaigns_get",
        "submissions_create",
        "submissions_create_batch",
        "dossiers_create",
        "questionnaires_get",
        "reports_get",
        "index_get",
    ):
        assert expected in ids


def test_an_operation_id_is_written_only_where_the_handler_s_name_cannot_give_it(
    app: FastAPI,
) -> None:
    """Operation ids come from the handler's name (`app.openapi.operation_id`); a route sets
    its own only when that name would give another id, so there is one way to name each."""
    explicit = [
        ctx.original_route
        for ctx in routing.iter_route_contexts(app.routes)
        if isinstance(ctx.original_route, routing.APIRoute) and ctx.original_route.operation_id
    ]
    assert len(explicit) > 10
    assert [r.operation_id for r in explicit if operation_id(r) == r.operation_id] == []


def test_every_operation_has_summary_description_and_one_described_tag(
    document: dict[str, Any],
) -> None:
    described = {t["name"] for t in document["tags"] if t.get("description", "").strip()}
    missing = [
        f"{method.upper()} {path}"
        for method, path, op in operations(document)
        if not op.get("summary", "").strip()
        or not op.get("description", "").strip()
        or len(op.get("tags", [])) != 1
        or op["tags"][0] not in described
    ]
    assert missing == []
    used = {op["tags"][0] for _, _, op in operations(document)}
    assert used <= described


def test_every_path_parameter_says_what_it_is(document: dict[str, Any]) -> None:
    """A generated client shows a parameter's description beside it; the ids of the paths are
    declared once with theirs (app/api/ids.py), and one `*_id` keeps one description everywhere
    (a `code` is an agency's in one path and a dossier's in another)."""
    undescribed: list[str] = []
    meanings: dict[str, set[str | None]] = {}
    for method, path, op in operations(document):
        for param in op.get("parameters", []):
            if param["in"] != "path":
                continue
            if not param.get("description", "").strip():
                undescribed.append(f"{method.upper()} {path} {param['name']}")
            if param["name"].endswith("_id"):
                meanings.setdefault(param["name"], set()).add(param.get("description"))
    assert undescribed == []
    assert {name: texts for name, texts in meanings.items() if len(texts) > 1} == {}
    assert meanings["agency_id"] == {"The agency's id."}
    uuids = [
        param["schema"]
        for _, _, op in operations(document)
        for param in op.get("parameters", [])
        if param["in"] == "path"
        and param["name"].endswith("_id")
        and param["name"] != "delivery_id"
    ]
    assert len(uuids) > 70
    assert [s for s in uuids if {s.get("type"), s.get("format")} != {"string", "uuid"}] == []


# The token endpoint may answer its grant errors in OAuth's own shape (RFC 6749 section 5.2),
# which OAuth libraries expect; every other error of the API is a problem.
OAUTH_TOKEN = ("post", "/api/v1/auth/token")
# The OAuth endpoints answer RFC 6749 section 5.2 errors, not problem+json, and turn a
# malformed request into 400 `invalid_request` rather than 422.
OAUTH_ROUTES = {OAUTH_TOKEN, ("post", "/api/v1/auth/revoke")}


def _oauth_error(document: dict[str, Any], content: dict[str, Any] | None) -> bool:
    body = (content or {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    schema = document["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    return "error" in schema.get("required", [])


def test_every_error_is_problem_json_with_the_problem_schema(document: dict[str, Any]) -> None:
    wrong = [
        f"{method.upper()} {path} {code}"
        for method, path, op in operations(document)
        for code, response in op["responses"].items()
        if code[0] in "45"
        and response.get("content") != PROBLEM
        and not (
            (method, path) in OAUTH_ROUTES
            and code in ("400", "401", "429")
            and _oauth_error(document, response.get("content"))
        )
    ]
    assert wrong == []
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    errors = schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"]
    assert errors == {"$ref": "#/components/schemas/FieldProblem"}
    assert set(schemas["FieldProblem"]["required"]) == {"pointer", "code", "detail"}


def test_errors_follow_from_how_each_route_is_built(document: dict[str, Any]) -> None:
    """Secured: 401 (with WWW-Authenticate) and 403; path parameters: 404; parameters or a
    body: 422; a body: 413; rate-limited: 429 with Retry-After; the database: 503, and a write
    to it 409."""
    missing = []
    for method, path, op in operations(document):
        responses = op["responses"]
        wanted = set()
        if any("OAuth2PasswordBearer" in r for r in op.get("security", [])):
            wanted |= {"401", "403"}
            assert "WWW-Authenticate" in responses["401"]["headers"], path
        if "{" in path:
            wanted.add("404")
        if op.get("requestBody"):
            wanted |= {"413", "422"}
        if op.get("parameters"):
            wanted.add("422")
        if (method, path) in OAUTH_ROUTES:
            wanted.discard("422")
        if not wanted <= set(responses):
            missing.append((method, path, sorted(wanted - set(responses))))
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in responses[code]["headers"], (method, path, code)
    assert missing == []
    submit = document["paths"]["/api/v1/campaigns/{campaign_id}/submissions"]["post"]
    assert {"429", "503"} <= set(submit["responses"])


class Note(BaseModel):
    text: str


def test_a_route_added_later_inherits_the_rules(settings: Settings) -> None:
    """The rules are applied to the document, not written per router: a new secured route with
    a path parameter and a body gets its errors without declaring any."""

    router = APIRouter(prefix="/api/v1/notes", tags=["campaigns"])

    @router.put("/{note_id}", summary="A note", description="A route made by this test.")
    async def put_note(note_id: int, body: Note, _: CampaignsReader, s: SessionDep) -> Note:
        return body  # pragma: no cover - only documented

    app = create_app(settings)
    app.include_router(router)
    op = app.openapi()["paths"]["/api/v1/notes/{note_id}"]["put"]
    assert op["operationId"] == "campaigns_put_note"
    assert set(op["responses"]) == {"200", "401", "403", "404", "409", "413", "422", "503"}
    assert all(op["responses"][c]["content"] == PROBLEM for c in op["responses"] if c != "200")


def test_schema_names_are_unique_and_readable(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    titles = Counter(s.get("title", name) for name, s in schemas.items())
    assert [t for t, n in titles.items() if n > 1] == []
    assert [name for name in schemas if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)] == []
    assert [name for name, s in schemas.items() if s.get("title", name) != name] == []
    # Two classes named Role: each takes the name of its module or package under app.<layer>,
    # however deep the class sits (app.services.instrument.model.Role is the instrument's).
    assert schemas["Item"]["properties"]["role"]["$ref"] == "#/components/schemas/InstrumentRole"
    assert {"IdentityRole", "InstrumentRole"} <= set(schemas)


def _untyped(schema: dict[str, Any]) -> bool:
    if not schema:
        return True
    return schema.get("type") == "object" and not (
        schema.get("properties") or schema.get("additionalProperties")
    )


def test_every_body_is_typed(document: dict[str, Any]) -> None:
    """Every JSON request and success response has a schema: a reference or a type, never `{}`
    or a bare object; downloads are strings."""
    untyped = []
    for method, path, op in operations(document):
        bodies = [("request", op.get("requestBody", {}).get("content", {}))]
        bodies += [
            (code, r.get("content", {})) for code, r in op["responses"].items() if code[0] == "2"
        ]
        for where, content in bodies:
            for media, body in content.items():
                schema = body.get("schema", {})
                if _untyped(schema) or not ("$ref" in schema or "type" in schema):
                    untyped.append(f"{method.upper()} {path} {where} {media}")
    assert untyped == []
    for name, schema in document["components"]["schemas"].items():
        for prop, sub in schema.get("properties", {}).items():
            assert not _untyped(sub), f"{name}.{prop} is untyped"


def test_batch_items_and_typed_documents_refer_to_their_models(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    items = schemas["SubmissionBatchIn"]["properties"]["submissions"]["items"]
    assert items == {"$ref": "#/components/schemas/SubmissionIn"}
    items = schemas["DossierBatch"]["properties"]["dossiers"]["items"]
    assert items == {"$ref": "#/components/schemas/DossierEvent"}
    for result in ("BatchItemResult", "DossierResult"):
        errors = schemas[result]["properties"]["errors"]["anyOf"][0]["items"]
        assert errors == {"$ref": "#/components/schemas/FieldProblem"}
    definition = schemas["QuestionnaireVersion"]["properties"]["definition"]
    assert definition == {"$ref": "#/components/schemas/Questionnaire"}
    report = document["paths"]["/api/v1/reports/{report_id}"]["get"]["responses"]["200"]
    schema = report["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ReportDocument"}


def test_conditional_reads_declare_etag_and_if_none_match(document: dict[str, Any]) -> None:
    conditional = [(m, p, op) for m, p, op in operations(document) if "304" in op["responses"]]
    assert len(conditional) > 10
    for method, path, op in conditional:
        names = {p["name"] for p in op.get("parameters", [])}
        assert "If-None-Match" in names, (method, path)
        assert "ETag" in op["responses"]["200"]["headers"], (method, path)
        assert "ETag" in op["responses"]["304"]["headers"], (method, path)
    submit = document["paths"]["/api/v1/campaigns/{campaign_id}/submissions"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in submit["parameters"]}
    assert "Idempotent-Replayed" in submit["responses"]["201"]["headers"]
    assert set(document["components"]["headers"]) >= {"ETag", "Retry-After", "WWW-Authenticate"}


def test_oauth_declares_both_flows_and_says_what_each_scope_allows(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    flows = scheme["flows"]
    assert set(flows) == {"password", "clientCredentials"}
    assert set(flows["password"]["scopes"]) == {s.value for s in Scope}
    assert set(flows["clientCredentials"]["scopes"]) == {s.value for s in CLIENT_SCOPES}
    for flow in flows.values():
        assert flow["tokenUrl"] == "/api/v1/auth/token"
        vague = [s for s, text in flow["scopes"].items() if len(text.split()) < 3 or text == s]
        assert vague == []


def _seed_codes(name: str) -> set[str]:
    path = resources.files("app") / "seed" / "data" / name
    with path.open(encoding="utf-8") as f:
        return {row["code"] for row in csv.DictReader(f)}


def test_examples_name_codes_of_the_demo_catalogue(document: dict[str, Any]) -> None:
    """An integrator pastes the examples against the demo: the codes they name must exist."""
    catalogues = {
        "procedure_code": _seed_codes("procedures.csv"),
        "agency_code": _seed_codes("agencies.csv"),
        "sector_code": _seed_codes("sectors.csv"),
    }
    checked = 0
    for schema in document["components"]["schemas"].values():
        for prop, sub in schema.get("properties", {}).items():
            if prop in catalogues:
                for example in sub.get("examples", []):
                    assert example in catalogues[prop], (schema.get("title"), prop, example)
                    checked += 1
    assert checked >= 2


async def test_the_request_examples_work_against_the_demo(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, document: dict[str, Any]
) -> None:
    """Pasted as they are, the documented form and dossier event are accepted by the demo."""
    await load_demo_catalogue(session)
    await ensure_demo_campaigns(session)
    campaign_id = await session.scalar(
        sa.select(col(Campaign.id)).where(col(Campaign.code) == "TQ-SIPAS-2020")
    )
    admin = bearer(settings, await make_user(session, Role.admin))
    schemas = document["components"]["schemas"]

    (form,) = schemas["SubmissionIn"]["examples"]
    submitted = await client.post(
        f"/api/v1/campaigns/{campaign_id}/submissions", json=form, headers=admin
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["answers"]["E1.C1"] == 5

    (event,) = schemas["DossierEvent"]["examples"]
    reported = await client.post("/api/v1/dossiers", json=event, headers=admin)
    assert reported.status_code == 201, reported.text


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_everything_from_this_service(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    parser = _Assets()
    parser.feed(response.text)
    # The scripts' inline configuration names the document's URL too.
    urls = parser.urls + re.findall(r"url: '([^']+)'", response.text)
    assert len(urls) >= 2
    assert [u for u in urls if not u.startswith("/")] == []
    assert "fonts.googleapis" not in response.text
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_no_time_of_day_claims_the_json_schema_time_format(document: dict[str, Any]) -> None:
    """JSON Schema's `time` format requires an offset (RFC 3339 full-time); Python writes a time
    of day without one, so a response would break its own schema (the fuzzer found it)."""
    offenders = [
        schema.get("title", "?")
        for schema in walk_schemas(document)
        if schema.get("format") == "time"
    ]
    assert offenders == []
