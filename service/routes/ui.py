"""The reviewer web page, the pools page, their assets, and /docs with Swagger UI served locally (no CDN)."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index():
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


@router.get("/pools")
async def pools():
    return FileResponse(STATIC / "pools.html", media_type="text/html; charset=utf-8")


@router.get("/favicon.ico")
async def favicon():
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    local = getattr(request.app.state, "swagger_local", False)
    kwargs = {}
    if local:
        kwargs = {"swagger_js_url": "/static/swagger/swagger-ui-bundle.js",
                  "swagger_css_url": "/static/swagger/swagger-ui.css",
                  "swagger_favicon_url": "/static/swagger/favicon-32x32.png"}
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title="laari API", **kwargs)
