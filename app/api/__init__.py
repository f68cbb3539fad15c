"""The versioned API, assembled from one router per resource."""

from fastapi import APIRouter

from app.api import (
    agencies,
    audit,
    auth,
    campaigns,
    catalogue,
    clients,
    dossiers,
    fieldwork,
    index,
    me,
    questionnaires,
    reports,
    submissions,
    users,
)

api_router = APIRouter(prefix="/api/v1")
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
    fieldwork,
    questionnaires,
    submissions,
    index,
    reports,
):
    api_router.include_router(module.router)
