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
# A request is matched against the routers in this order, route by route (a sixth of a single
# form's CPU went to matching it when the submissions came thirteenth). So the routes that
# carry most of the traffic, forms and dossier reports, come first; no path of theirs overlaps
# another router's. The OpenAPI document groups operations by tag, not by this order.
for module in (
    submissions,
    dossiers,
    auth,
    me,
    users,
    clients,
    audit,
    agencies,
    catalogue,
    campaigns,
    invitations,
    fieldwork,
    questionnaires,
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
