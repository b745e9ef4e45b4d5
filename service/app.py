"""The FastAPI application factory: ``create_app(settings=None, predictor=None)``.

With a ``predictor`` the app serves it at once (tests, embedding in other programs); without one it loads the
model named by the settings (default: the registry's current one) when it starts, in the background, and
``/ready`` says when it is done.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from classifier import __version__
from classifier.predictor import Predictor

from .auth import KeyRedactingFilter
from .core import LaariService, ServiceError
from .errors import describe_errors, field_errors
from .routes import admin, feedback, health, model, predict, ui
from .settings import Settings

log = logging.getLogger("laari.service")
access_log = logging.getLogger("laari.service.access")
STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """
**laari** ehdottaa ESR+-hankkeelle laaria (arviointipoolia), teemoja ja sopivuutta, ja kertoo miksi.
Suggests a laari (assessment pool), thematic tags and the fit for a Finnish ESF+ project description, with reasons.

- Reviewer page: [/](/) · pools: [/pools](/pools)
- Keys: send `X-API-Key`. Roles: `reviewer` (predict, feedback), `admin` (also reload and feedback export).
"""

PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _json_error(status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None):
    body = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 before the application reads them (by the
    Content-Length header, and by counting for chunked bodies)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = _json_error(413, f"request body over the limit of {self.max_bytes} bytes")

        async def refuse_too_large():
            log.warning("rejected %s %s with 413: request body over the limit of %d bytes", scope["method"],
                        scope.get("path", ""), self.max_bytes)
            return await too_large(scope, receive, send)

        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await _json_error(400, "invalid Content-Length header")(scope, receive, send)
            if size > self.max_bytes:
                return await refuse_too_large()
        chunks, total = [], 0
        while True:  # read the whole (bounded) body first, then hand it over in one piece
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await refuse_too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class AccessMiddleware:
    """Request id, timing log line (method, path, status, ms; never headers) and security headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        rid = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = rid
        path = scope.get("path", "")
        status_holder = {"status": 500}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                extra = [(b"x-request-id", rid.encode()), (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer")]
                if not path.startswith("/docs"):
                    extra.append((b"x-frame-options", b"DENY"))
                if path in ("/", "/pools") or (path.startswith("/static/") and not path.startswith("/static/swagger")):
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                message = dict(message)
                message["headers"] = list(message.get("headers") or []) + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            access_log.info("%s %s %d %.1f ms [%s]", scope.get("method"), path, status_holder["status"],
                            (time.perf_counter() - started) * 1000, rid)


def _protect_logs(settings: Settings) -> None:
    """Keys never reach a log: a redacting filter on every handler of the root and uvicorn loggers."""
    flt = KeyRedactingFilter(k.get_secret_value() for k in settings.api_keys)
    for name in (None, "uvicorn", "uvicorn.access", "uvicorn.error", "laari"):
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, KeyRedactingFilter)]:
            logger.removeFilter(f)
        logger.addFilter(flt)
        for handler in logger.handlers:
            for f in [f for f in handler.filters if isinstance(f, KeyRedactingFilter)]:
                handler.removeFilter(f)
            handler.addFilter(flt)


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    settings = settings or Settings()
    service = LaariService(settings, predictor)
    _protect_logs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="laari", version=__version__, description=DESCRIPTION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_tags=[
                      {"name": "predict", "description": "Ehdotukset / suggestions"},
                      {"name": "feedback", "description": "Arvioijan palaute / reviewers' feedback"},
                      {"name": "model", "description": "Malli, luokittelu ja laarit / model, taxonomy, pools"},
                      {"name": "admin", "description": "Ylläpito / administration"},
                      {"name": "health", "description": "Tila / status"}])
    app.state.settings = settings
    app.state.service = service

    def _rejected(request: Request, status: int, detail: str) -> None:
        rid = request.scope.get("state", {}).get("request_id", "?")
        log.warning("rejected %s %s with %d: %s [%s]", request.method, request.url.path, status, detail, rid)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        errors = [{"field": exc.field, "message": exc.message, "type": type(exc).__name__}] if exc.field else None
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        _rejected(request, exc.status, exc.message)
        return _json_error(exc.status, exc.message, errors, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if 400 <= exc.status_code < 500 and exc.status_code != 404:  # 401, 403, 405, ...: who was refused what
            _rejected(request, exc.status_code, str(exc.detail))
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        for e in errors:  # keep the body small and JSON-safe: no echo of the (possibly huge) input
            e.pop("input", None)
            e.pop("ctx", None)
        messages = describe_errors(errors)
        detail = "; ".join(messages[:3]) + (f" (and {len(messages) - 3} more)" if len(messages) > 3 else "")
        _rejected(request, 422, detail)
        return _json_error(422, detail, field_errors(errors))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        rid = request.scope.get("state", {}).get("request_id", "?")
        log.exception("unexpected error in %s %s [%s]", request.method, request.url.path, rid)
        return _json_error(500, f"internal error; the server log has the details (request {rid})")

    for r in (health.router, predict.router, feedback.router, model.router, admin.router, ui.router):
        app.include_router(r)

    try:
        from swagger_ui_bundle import swagger_ui_path

        app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
        app.state.swagger_local = True
    except ImportError:  # /docs then loads Swagger UI from its CDN
        app.state.swagger_local = False
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key"], max_age=600)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessMiddleware)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory service.app:app_from_env``."""
    return create_app()


__all__ = ["create_app", "app_from_env"]
