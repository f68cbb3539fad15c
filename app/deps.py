"""Dependencies shared by the routers, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.errors import Unauthorized
from app.models.identity import Scope
from app.replica import LSN_COOKIE, LSN_HEADER, Consistency, Source, parse_lsn
from app.services import invitations
from app.services.auth import authenticate
from app.services.paging import DEFAULT_LIMIT, MAX_LIMIT
from app.services.principal import Principal
from app.services.ratelimit_guard import ClientRateLimiter

SessionScope = Callable[[Database], AbstractAsyncContextManager[AsyncSession]]

# Dependencies that only read the application's state are `async def`: FastAPI runs a plain
# `def` dependency in its thread pool, a hop that cost a single form about 7 % of its CPU.


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _database(request: Request) -> Database:
    return get_database(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent.

    The dependency is declared with scope="function", so its exit (the commit) runs when the
    handler returns and before FastAPI sends anything: a failed commit becomes an error
    response, never a 2xx for data that was not saved.

    The transaction is `app.state.session_scope`'s (`app.db.session_scope`). The test suite
    swaps it for a savepoint of the test's transaction: an override of this dependency would
    make FastAPI analyse every dependency of every request again, which doubled each request's
    time in the tests.
    """
    scope: SessionScope = request.app.state.session_scope
    async with scope(get_database(request)) as session:
        yield session


async def get_rate_limiter(request: Request) -> ClientRateLimiter:
    """The application's request counts, made on first use: one per worker process."""
    limiter: ClientRateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = ClientRateLimiter()
        request.app.state.rate_limiter = limiter
    return limiter


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# ---- reads that may lag: the replica when fit (app/replica.py), else the request's session ----


def _min_lsn(request: Request) -> int | None:
    """The caller's write token (header, else cookie). One that cannot be read counts as a
    write too recent to place: the primary answers."""
    raw = request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE)
    if raw is None:
        return None
    lsn = parse_lsn(raw)
    return lsn if lsn is not None else 2**64


@asynccontextmanager
async def _read_session(
    request: Request, session: AsyncSession, eventual: bool
) -> AsyncIterator[AsyncSession]:
    replica = get_database(request).replica if eventual else None
    if replica is None:
        request.state.read_source = Source.primary.value
        yield session
        return
    async with replica.session(_min_lsn(request)) as replica_session:
        chosen = replica_session or session
        source = Source.primary if replica_session is None else Source.replica
        request.state.read_source = source.value
        yield chosen


async def get_reader(request: Request, session: SessionDep) -> AsyncIterator[AsyncSession]:
    """The session for reads that may lag (published reports, the public API and site): the
    replica's when one is configured, reachable and has replayed the caller's own writes;
    otherwise the request's own. The response says which in Sipas-Read-Source."""
    async with _read_session(request, session, eventual=True) as chosen:
        yield chosen


async def get_consistent_reader(
    request: Request,
    session: SessionDep,
    consistency: Annotated[
        Consistency,
        Query(
            description="`strong` (default): read from the primary, current to the last "
            "commit. `eventual`: the read may be served by the read replica, which can lag the "
            "primary by a moment, though never behind a write of the caller's own that it "
            "names by the `Sipas-Min-Lsn` header or cookie; `Sipas-Read-Source` in the "
            "response says which server answered."
        ),
    ] = Consistency.strong,
) -> AsyncIterator[AsyncSession]:
    """As get_reader, for reads the caller may ask to be eventual (`?consistency=eventual`)."""
    eventual = consistency is Consistency.eventual
    async with _read_session(request, session, eventual=eventual) as chosen:
        yield chosen


ReaderDep = Annotated[AsyncSession, Depends(get_reader, scope="function")]
ConsistentReaderDep = Annotated[AsyncSession, Depends(get_consistent_reader, scope="function")]
DatabaseDep = Annotated[Database, Depends(_database)]
RateLimiterDep = Annotated[ClientRateLimiter, Depends(get_rate_limiter)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
DEFAULT_PAGE = DEFAULT_LIMIT
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omit for the first.")
]


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    refreshUrl="/api/v1/auth/token",
    auto_error=False,
    scopes={s.value: s.name.replace("_", " ") for s in Scope},
    description="Staff: password grant (with a rotating refresh token). Machines: "
    "client_credentials grant, authenticated with HTTP Basic or the form fields client_id and "
    "client_secret.",
)


async def get_principal(
    security_scopes: SecurityScopes,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The authenticated caller, refused with 403 unless it holds every scope the route declares.

    Routes declare scopes with `Security(get_principal, scopes=[...])` (the aliases below), so
    the OpenAPI document lists each operation's scopes and the check cannot drift from them.
    """
    if not token:
        raise Unauthorized()
    principal = await authenticate(session, settings, token)
    principal.require(*(Scope(s) for s in security_scopes.scopes))
    return principal


CurrentPrincipal = Annotated[Principal, Security(get_principal)]


async def get_writer_or_invitation(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    db: DatabaseDep,
    limiter: RateLimiterDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    """The bearer's principal, as get_principal; without a bearer token, the invitation the JSON
    body carries stands as the caller (services.invitations), and without one either, 401.

    The body is the one the framework has already parsed (and cached on the request), read
    here before the body's own validation, so a request with neither credential is a 401
    whatever its body."""
    if token:
        return await get_principal(security_scopes, session, settings, token)
    try:
        body = await request.json()
    except ValueError:
        body = None
    invitation = body.get("invitation") if isinstance(body, dict) else None
    return await invitations.authenticate(
        session, db.side, limiter, settings, invitation if isinstance(invitation, str) else None
    )


def scoped(*scopes: Scope) -> Any:
    """`Annotated[Principal, scoped(Scope.x)]`: the caller, holding every one of `scopes`."""
    return Security(get_principal, scopes=[s.value for s in scopes])


UsersAdmin = Annotated[Principal, scoped(Scope.users_admin)]
AuditReader = Annotated[Principal, scoped(Scope.audit_read)]
AgenciesReader = Annotated[Principal, scoped(Scope.agencies_read)]
AgenciesWriter = Annotated[Principal, scoped(Scope.agencies_write)]
CatalogueReader = Annotated[Principal, scoped(Scope.catalogue_read)]
CatalogueWriter = Annotated[Principal, scoped(Scope.catalogue_write)]
QuestionnairesReader = Annotated[Principal, scoped(Scope.questionnaires_read)]
CampaignsReader = Annotated[Principal, scoped(Scope.campaigns_read)]
CampaignsWriter = Annotated[Principal, scoped(Scope.campaigns_write)]
ProgressReader = Annotated[Principal, scoped(Scope.progress_read)]
FrameWriter = Annotated[Principal, scoped(Scope.frame_write)]
WorklistReader = Annotated[Principal, scoped(Scope.worklist_read)]
DossiersWriter = Annotated[Principal, scoped(Scope.dossiers_write)]
SubmissionsReader = Annotated[Principal, scoped(Scope.submissions_read)]
SubmissionsWriter = Annotated[Principal, scoped(Scope.submissions_write)]
# The bearer's principal (holding submissions:write), or the invitation a form carries.
SubmissionsWriterOrInvited = Annotated[
    Principal, Security(get_writer_or_invitation, scopes=[Scope.submissions_write.value])
]
SubmissionsReviewer = Annotated[Principal, scoped(Scope.submissions_review)]
QuestionnairesWriter = Annotated[Principal, scoped(Scope.questionnaires_write)]
IndexReader = Annotated[Principal, scoped(Scope.index_read)]
ReportsReader = Annotated[Principal, scoped(Scope.reports_read)]
ReportsWriter = Annotated[Principal, scoped(Scope.reports_write)]
PlansReader = Annotated[Principal, scoped(Scope.plans_read)]
PlansWriter = Annotated[Principal, scoped(Scope.plans_write)]
PlansReviewer = Annotated[Principal, scoped(Scope.plans_review)]
QualityReader = Annotated[Principal, scoped(Scope.quality_read)]
RechecksWriter = Annotated[Principal, scoped(Scope.rechecks_write)]
ObservationsWriter = Annotated[Principal, scoped(Scope.observations_write)]
