"""The versioned API, assembled from one router per resource."""

from fastapi import APIRouter

api_router = APIRouter(prefix="/api/v1")
