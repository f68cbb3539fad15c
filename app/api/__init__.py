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
    quality,
    questionnaires,
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
):
    api_router.include_router(module.router)
