"""The OpenAPI document: readable operationIds, and the answers every operation can give, by rule.

Routers declare what is particular to them (their success schema, a 409 they raise, a 304 when
they honour If-None-Match). Everything that follows from how a route is built is added here once,
so an endpoint added later gets it without anyone remembering:

- a secured route (it declares scopes) can answer 401 and 403;
- a route with path parameters can answer 404;
- a route that takes parameters or a body can answer 422, and one with a body 413;
- a route that counts the caller's requests can answer 429, with `Retry-After`;
- a route that reads the database can answer 503, with `Retry-After`, and one that writes to it
  409 (a constraint met);
- a route that declares a 304 takes `If-None-Match`, and its 200 carries `ETag`.

Every 4xx and 5xx is `application/problem+json` with the `Problem` schema; FastAPI's own
`HTTPValidationError` (declared under `application/json`, never sent) is removed. The linter in
`tests/test_openapi.py` checks the result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from app.api.problems import Problem
from app.models.base import FieldProblem
from app.models.identity import CLIENT_SCOPES, Scope

SECURITY_SCHEME = "OAuth2PasswordBearer"
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret

TAGS: list[dict[str, str]] = [
    {"name": "auth", "description": "Tokens: the OAuth2 password and client-credentials grants."},
    {
        "name": "users",
        "description": "Staff accounts and the caller itself (`/me`): roles, agencies, passwords.",
    },
    {
        "name": "clients",
        "description": "Machine clients (the one-stop system, frontends, fetchers): scopes and "
        "secrets.",
    },
    {"name": "audit", "description": "The audit trail of every state change."},
    {
        "name": "agencies",
        "description": "The province's agency tree: codes, levels, validity, merges and renames.",
    },
    {"name": "catalogue", "description": "Sectors and administrative procedures, per agency."},
    {
        "name": "campaigns",
        "description": "Measurement campaigns: lifecycle, strata, targets and progress.",
    },
    {
        "name": "dossiers",
        "description": "The one-stop system reports returned dossiers and gets rating invitations.",
    },
    {
        "name": "fieldwork",
        "description": "Sampling frames, samples, surveyors and their work lists.",
    },
    {
        "name": "events",
        "description": "The event feed: every change integrators may follow, in commit order, "
        "for receivers that poll instead of taking webhooks.",
    },
    {
        "name": "webhooks",
        "description": "Signed webhook subscriptions (Standard Webhooks), their deliveries and "
        "dead letters.",
    },
    {
        "name": "invitations",
        "description": "What a citizen's rating form reads and sends with a one-time invitation "
        "alone (the invitation is the credential).",
    },
    {
        "name": "questionnaires",
        "description": "Questionnaire versions: everything a frontend needs to render a form.",
    },
    {
        "name": "submissions",
        "description": "Filled forms from every channel: single, batch, review, correction, "
        "export.",
    },
    {
        "name": "index",
        "description": "The live index of a campaign, its rankings and its change over a baseline.",
    },
    {
        "name": "reports",
        "description": "Published, immutable reports in JSON, CSV and XLSX, and the methods "
        "behind them.",
    },
    {
        "name": "quality",
        "description": "Field quality: screening config and flags, bulk review and the review "
        "queue, re-checks (phúc tra), schedule progress and supervisors' observations.",
    },
    {"name": "health", "description": "Probes and metrics for orchestrators."},
]

SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.users_admin: "Create, change and deactivate staff users and machine clients.",
    Scope.audit_read: "Read the audit trail.",
    Scope.events_read: "Read the event feed, limited to the caller's agency subtree.",
    Scope.webhooks_write: "Manage the caller's own webhook subscriptions and their dead letters.",
    Scope.webhooks_admin: "Manage every client's webhook subscriptions and dead letters.",
    Scope.plans_read: "Read improvement plans and dissemination records within the caller's scope.",
    Scope.plans_write: "Write the actions of the own agency's improvement plan and its "
    "dissemination records.",
    Scope.plans_review: "Review and comment on every agency's improvement plan (the Department).",
    Scope.agencies_read: "Read the agency tree, its history and its exports.",
    Scope.agencies_write: "Create, change, import, merge and retire agencies.",
    Scope.catalogue_read: "Read sectors and procedures.",
    Scope.catalogue_write: "Create and change sectors, procedures and agency sectors.",
    Scope.questionnaires_read: "Read questionnaire versions (to render forms).",
    Scope.questionnaires_write: "Create and replace questionnaire versions.",
    Scope.campaigns_read: "Read campaigns and their strata.",
    Scope.campaigns_write: "Create, change and move campaigns; set strata and targets; import "
    "tallies.",
    Scope.progress_read: "Read fieldwork progress per stratum.",
    Scope.frame_write: "Import sampling frames, draw samples and assign surveyors.",
    Scope.worklist_read: "Read a surveyor's work list (sampled contacts).",
    Scope.submissions_read: "Read and export filled forms (no contact data).",
    Scope.submissions_write: "Submit forms, singly or in batches, and correct one's own.",
    Scope.submissions_review: "Review forms (valid, flagged, rejected) and draw re-check lists.",
    Scope.dossiers_write: "Report returned dossiers and read their rating invitations.",
    Scope.index_read: "Read the live index, rankings and change.",
    Scope.quality_read: "Read screening flags, re-check outcomes, schedule progress and "
    "observations (never answers).",
    Scope.rechecks_write: "Record the outcome of a re-check (phúc tra).",
    Scope.observations_write: "File a supervisor's observation on the fieldwork.",
    Scope.reports_read: "Read published reports and the methods.",
    Scope.reports_write: "Publish reports: snapshot every figure of a closed campaign.",
}

# Response headers, declared once and referenced by the responses that send them.
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The version of this representation; send it back as If-None-Match.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme expected (Bearer).",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier identical request.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the version the caller holds: an unchanged one answers 304.",
    "schema": {"type": "string"},
}

ERRORS: dict[int, str] = {
    400: "The request is malformed.",
    401: "Missing, malformed, expired or revoked bearer token.",
    403: "The caller is known but lacks the role or scope.",
    404: "No such object within the caller's scope.",
    409: "The request conflicts with the current state.",
    410: "The resource existed but is gone for good (an expired invitation).",
    413: "The body is larger than the service accepts.",
    422: "The request is not valid; `errors` lists each offending field by its JSON pointer.",
    429: "Too many requests; retry after the `Retry-After` seconds.",
    503: "The database is busy or unreachable; retry after the `Retry-After` seconds.",
}

_WORD = re.compile(r"[^a-z]+")
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word.removesuffix("s")


def operation_id(route: routing.APIRoute) -> str:
    """`<tag>_<what the handler does>`: the handler's name without the tag's own word, so
    `list_campaigns` under `campaigns` is `campaigns_list` and `get_campaign` is
    `campaigns_get`. A route that sets `operation_id` keeps it."""
    tag = str(route.tags[0]) if route.tags else "api"
    tag_words = {tag, _singular(tag)}
    words = [w for w in _WORD.split(route.name.lower()) if w]
    verb = [w for w in words if w not in tag_words] or words
    return "_".join([_WORD.sub("_", tag).strip("_"), *verb])


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _dependencies(dep)


def _route_facts(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """What each operation's dependencies say about it: `rate_limited`, `database`."""
    from app.deps import get_database, get_rate_limiter, get_session

    facts: dict[tuple[str, str], set[str]] = {}
    for ctx in routing.iter_route_contexts(app.routes):
        if not isinstance(ctx.original_route, routing.APIRoute):
            continue
        calls = set(_dependencies(ctx.dependant))
        found = set()
        if get_rate_limiter in calls:
            found.add("rate_limited")
        if calls & {get_session, get_database}:
            found.add("database")
        for method in ctx.methods or ():
            facts[(str(ctx.path_format), method.lower())] = found
    return facts


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _ref_headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {h: {"$ref": f"#/components/headers/{h}"} for h in names}


def _add_errors(op: dict[str, Any], facts: set[str], path: str, method: str) -> None:
    """Declare the errors the route's construction implies, then make every 4xx and 5xx a
    problem+json answer (keeping a router's own description)."""
    responses: dict[str, Any] = op.setdefault("responses", {})
    wanted: dict[int, tuple[str, ...]] = {}
    if any(SECURITY_SCHEME in requirement for requirement in op.get("security", [])):
        wanted[401] = ("WWW-Authenticate",)
        wanted[403] = ()
    if "{" in path:
        wanted[404] = ()
    # A route answering its own error shape (OAuth's token errors, RFC 6749 section 5.2) turns
    # a malformed request into its 400 `invalid_request`, never a 422.
    own_shape = any(_own_error_schema(r) for c, r in responses.items() if c[:1] in "45")
    if (op.get("parameters") or op.get("requestBody")) and not own_shape:
        wanted[422] = ()
    if op.get("requestBody"):
        wanted[413] = ()
    if "rate_limited" in facts or "429" in responses:
        wanted[429] = ("Retry-After",)
    if "database" in facts or "503" in responses:
        wanted[503] = ("Retry-After",)
    if "database" in facts and method in ("post", "put", "patch", "delete"):
        wanted[409] = ()  # a write that meets a unique or foreign key constraint
    for status in wanted:
        responses.setdefault(str(status), {})
    for code, response in list(responses.items()):
        if code[0] not in "45":
            continue
        own = response.get("description") or ""
        generic = own in ("", "Validation Error", "Successful Response")
        fresh = _problem_response(ERRORS.get(int(code), "An error.") if generic else own)
        if _own_error_schema(response):
            # A router that declares another error shape on purpose (OAuth's token errors,
            # RFC 6749 section 5.2) keeps it.
            fresh["content"] = response["content"]
        headers = {**response.get("headers", {}), **_ref_headers(wanted.get(int(code), ()))}
        if headers:
            fresh["headers"] = headers
        responses[code] = fresh


_PROBLEM_REF = "#/components/schemas/Problem"
_FASTAPI_ERRORS = {"#/components/schemas/HTTPValidationError", _PROBLEM_REF}


def _own_error_schema(response: dict[str, Any]) -> bool:
    """True when the response declares a schema of its own, not Problem nor FastAPI's
    validation error."""
    refs = {
        body.get("schema", {}).get("$ref")
        for body in response.get("content", {}).values()
        if body.get("schema")
    }
    return bool(refs) and not refs <= _FASTAPI_ERRORS


def _add_conditional(op: dict[str, Any]) -> None:
    """A 304 means the operation honours If-None-Match and tags its 200 with an ETag."""
    responses = op.get("responses", {})
    if "304" not in responses:
        return
    params: list[dict[str, Any]] = op.setdefault("parameters", [])
    if not any(p.get("name") == IF_NONE_MATCH["name"] for p in params):
        params.append(dict(IF_NONE_MATCH))
    responses["304"]["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
    ok = responses.get("200")
    if ok is not None:
        ok.setdefault("headers", {})["ETag"] = {"$ref": "#/components/headers/ETag"}


def _type_downloads(op: dict[str, Any]) -> None:
    """A download (CSV, XLSX, text) is a string, binary unless text; a route that declares one
    does not also answer the JSON that FastAPI assumes when no response class is given."""
    for code, response in op.get("responses", {}).items():
        content: dict[str, Any] = response.get("content", {})
        if not code.startswith("2"):
            continue
        if len(content) > 1 and not content.get("application/json", {}).get("schema"):
            content.pop("application/json", None)
        for media, body in content.items():
            if media.endswith("json") or body.get("schema"):
                continue
            text = media.startswith("text/")
            body["schema"] = {"type": "string"} if text else {"type": "string", "format": "binary"}


def _add_replayed(op: dict[str, Any]) -> None:
    """An operation that takes an Idempotency-Key may answer a retry with the stored answer."""
    if not any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", [])):
        return
    for code, response in op.get("responses", {}).items():
        if code.startswith("2"):
            response.setdefault("headers", {})["Idempotent-Replayed"] = {
                "$ref": "#/components/headers/Idempotent-Replayed"
            }


def _security_scheme() -> dict[str, Any]:
    scopes = {s.value: SCOPE_DESCRIPTIONS.get(s, s.value) for s in Scope}
    return {
        "type": "oauth2",
        "description": "Staff use the password grant; machine clients use the client "
        "credentials grant. Both at `POST /api/v1/auth/token`, form-encoded; send the token as "
        "`Authorization: Bearer <token>`.",
        "flows": {
            "password": {"tokenUrl": TOKEN_URL, "scopes": scopes},
            # Machine clients may hold only some scopes (no administration, no raw answers).
            "clientCredentials": {
                "tokenUrl": TOKEN_URL,
                "scopes": {s: text for s, text in scopes.items() if Scope(s) in CLIENT_SCOPES},
            },
        },
    }


def _schema_of(model: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _refer_to_components(node: Any, schemas: dict[str, Any], top: bool = True) -> Any:
    """Replace an inline model (an object schema with a class-like title, as `DocumentedAs`
    makes) by a reference to the component of that title, adding the component when it is not
    there yet: a generator then makes one class, not one per place it appears."""
    if isinstance(node, dict):
        title = node.get("title")
        if (
            not top
            and isinstance(title, str)
            and _CLASS_NAME.fullmatch(title)
            and node.get("type") == "object"
            and "properties" in node
        ):
            known = schemas.get(title)
            if known is None:
                schemas[title] = _refer_to_components(node, schemas)
            if known is None or known == node:
                return {"$ref": f"#/components/schemas/{title}"}
        return {k: _refer_to_components(v, schemas, top=False) for k, v in node.items()}
    if isinstance(node, list):
        return [_refer_to_components(v, schemas, top=False) for v in node]
    return node


def walk_schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_schemas(value)


def _drop_object_default(schema: dict[str, Any]) -> None:
    """A default that is an object or a list of objects (a model's default instance) cannot be
    expressed by generated clients (openapi-python-client refuses the whole schema); the server
    applies it anyway, so it is dropped from the document."""
    default = schema.get("default")
    if isinstance(default, dict) and "description" in default and "schema" not in schema:
        return  # an operation's `default` response (a Response object), not a schema default
    if isinstance(default, dict) or (
        isinstance(default, list) and any(isinstance(v, dict) for v in default)
    ):
        del schema["default"]


def _rename_collisions(document: dict[str, Any]) -> dict[str, Any]:
    """Two classes of one name (FastAPI keys them `app__models__identity__Role`) get names of
    their own, the name of the module or package under `app.<layer>` before the class's
    (`IdentityRole`; `InstrumentRole` for `app.services.instrument.model.Role`): a generator
    names classes by title, and two equal titles lose one of them."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for key in schemas:
        if "__" in key:
            *modules, name = key.split("__")
            owner = modules[2] if len(modules) > 2 and modules[0] == "app" else modules[-1]
            renames[key] = owner.title().replace("_", "") + name
    if not renames:
        return document
    text = json.dumps(document)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    document = json.loads(text)
    schemas = document["components"]["schemas"]
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
    return document


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        # The house list, then tags a router declares beside itself (the public site's).
        tags=TAGS
        + [t for t in app.openapi_tags or [] if t["name"] not in {x["name"] for x in TAGS}],
    )
    document = _rename_collisions(document)
    components: dict[str, Any] = document.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = _schema_of(Problem)
    schemas["FieldProblem"] = _schema_of(FieldProblem)
    for name, schema in list(schemas.items()):
        schemas[name] = _refer_to_components(schema, schemas)
    document["paths"] = _refer_to_components(document.get("paths", {}), schemas, top=False)
    for schema in walk_schemas(document):
        _drop_object_default(schema)
    components["headers"] = HEADERS
    # Kept beside the schemes routes declare themselves (the token endpoint's HTTP Basic).
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = _security_scheme()
    facts = _route_facts(app)
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            _add_errors(op, facts.get((path, method), set()), path, method)
            _add_conditional(op)
            _add_replayed(op)
            _type_downloads(op)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi`'s document, built once per application."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
