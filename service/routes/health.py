"""Liveness and readiness."""

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..core import LaariService
from ..schemas import Health, Ready
from . import get_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Alive / Palvelu käynnissä")
async def health() -> dict:
    """The process answers (says nothing about the model: see /ready)."""
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, summary="Model loaded / Malli ladattu",
            responses={503: {"model": Ready, "description": "The model is loading or failed to load."}})
async def ready(service: LaariService = Depends(get_service)):
    """200 once a model is loaded (with its version), 503 while loading or after a failed load (with the reason)."""
    body = service.ready()
    return body if body["ready"] else JSONResponse(body, status_code=503)
