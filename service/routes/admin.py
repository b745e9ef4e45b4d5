"""Administration: switch the served model."""

from fastapi import APIRouter, Body, Depends

from ..auth import Principal, require
from ..core import LaariService
from ..schemas import ErrorResponse, ReloadRequest, ReloadResponse
from ..settings import Role
from . import get_service

router = APIRouter(tags=["admin"])


@router.post("/v1/admin/reload", response_model=ReloadResponse, summary="Switch the model / Vaihda malli",
             responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                        404: {"model": ErrorResponse, "description": "No such model version."},
                        409: {"model": ErrorResponse, "description": "The model needs another embedder."},
                        422: {"model": ErrorResponse, "description": "Invalid name or broken model folder."}})
async def reload(body: ReloadRequest | None = Body(None), _: Principal = Depends(require(Role.admin)),
                 service: LaariService = Depends(get_service)):
    """Load another model version (default: the registry's current one) and switch to it atomically: requests
    in flight finish on the old model, new ones get the new model; on any error the old model stays."""
    return await service.reload(body.model if body else None)
