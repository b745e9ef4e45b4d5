"""HTTP routes: thin handlers over ``service.core.LaariService``."""

from fastapi import Request

from ..core import LaariService


def get_service(request: Request) -> LaariService:
    return request.app.state.service
