"""The served model, its taxonomy and its pools."""

from fastapi import APIRouter, Depends, Path

from ..core import LaariService, NotFound
from ..schemas import ErrorResponse, MapOut, ModelInfo, PoolsOut, PoolStatsOut, TaxonomyOut
from . import get_service

router = APIRouter(tags=["model"], responses={503: {"model": ErrorResponse, "description": "No model loaded yet."}})


@router.get("/v1/model", response_model=ModelInfo, summary="The served model / Käytössä oleva malli")
async def model(service: LaariService = Depends(get_service)):
    """Version, creation time, taxonomy, channel choice and the evaluation metrics recorded in the manifest."""
    return service.model_info()


@router.get("/v1/taxonomy", response_model=TaxonomyOut, summary="Laarit, tags and facets / Luokittelu")
async def taxonomy(service: LaariService = Depends(get_service)):
    """The taxonomy the served model was trained with: laarit with their assessment metrics, tags and facets."""
    return service.taxonomy()


@router.get("/v1/laarit", response_model=PoolsOut, summary="Pool statistics / Laarien tunnusluvut")
async def laarit(service: LaariService = Depends(get_service)):
    """Per laari: size in the training data, keywords, cohesion, the nearest other pool and the separation,
    representative projects and outliers (five of each here; fifteen in /v1/laarit/{id})."""
    h = service.handle
    p = h.pools
    return {"model_version": h.version, "space": p.space, "out_of_theme": p.out_of_theme,
            "laarit": [p.summary(lid) for lid in p.laarit]}


@router.get("/v1/laarit/map", response_model=MapOut, summary="2D map of the training projects / Kartta")
async def laarit_map(service: LaariService = Depends(get_service)):
    """Every training project in two dimensions (PCA of the reference vectors), with its laari, and the
    laari centroids; coordinates are scaled into [-1, 1]."""
    return service.handle.pools.map


@router.get("/v1/laarit/{laari_id}", response_model=PoolStatsOut, summary="One pool / Yksi laari",
            responses={404: {"model": ErrorResponse, "description": "No such laari."}})
async def laari(laari_id: str = Path(examples=["tyohyvinvointi"], max_length=100),
                service: LaariService = Depends(get_service)):
    p = service.handle.pools
    if laari_id not in p.laarit:
        raise NotFound(f"unknown laari {laari_id!r}; known: {sorted(p.laarit)}", field="laari_id")
    return p.summary(laari_id, members=15)
