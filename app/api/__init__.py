"""The versioned API, assembled from one router per resource."""

from fastapi import APIRouter, Depends

from app.api import (
    agencies,
    audit,
    auth,
    campaigns,
    catalogue,
    clients,
    dossiers,
    events,
    fieldwork,
    index,
    invitations,
    me,
    plans,
    publicity,
    quality,
    questionnaires,
    reform,
    reports,
    submissions,
    users,
    webhooks,
)
from app.api.unicode_body import reject_lone_surrogates

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(reject_lone_surrogates)])
for module in (
    auth,
    me,
    users,
    clients,
    audit,
    agencies,
    catalogue,
    campaigns,
    dossiers,
    invitations,
    fieldwork,
    questionnaires,
    submissions,
    quality,
    index,
    reports,
    webhooks,
    events,
    publicity,
    plans,
    reform,
):
    api_router.include_router(module.router)
