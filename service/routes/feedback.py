"""Reviewers' feedback: store a decision, export them all."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from ..auth import Principal, require
from ..core import LaariService
from classifier.feedback import to_csv, to_jsonl
from ..schemas import ErrorResponse, FeedbackIn, FeedbackRecord
from ..settings import Role
from . import get_service

router = APIRouter(tags=["feedback"], responses={
    401: {"model": ErrorResponse, "description": "API key missing or not recognised."},
    403: {"model": ErrorResponse, "description": "The key lacks the role."},
    503: {"model": ErrorResponse, "description": "Feedback database or model not available."},
})


@router.post("/v1/feedback", response_model=FeedbackRecord, status_code=201,
             summary="Accept or correct a suggestion / Hyväksy tai korjaa ehdotus",
             responses={422: {"model": ErrorResponse, "description": "Schema error or unknown laari/tag."},
                        413: {"model": ErrorResponse, "description": "Text over the length limit."}})
def post_feedback(body: FeedbackIn, principal: Principal = Depends(require(Role.reviewer)),
                  service: LaariService = Depends(get_service)):
    """Stores the reviewer's decision (one row per decision; the latest per project counts in training)."""
    return service.add_feedback(body, principal.key_id)


@router.get("/v1/feedback", summary="Export feedback / Vie palautteet",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}},
                             "description": "One row per decision, oldest first."}})
def export_feedback(format: Literal["jsonl", "csv"] = Query("jsonl", description="jsonl or csv"),
                    since: datetime | None = Query(None, description="Only rows created at or after this time."),
                    project_id: str | None = Query(None, max_length=200),
                    model_version: str | None = Query(None, max_length=200),
                    limit: int | None = Query(None, ge=1, le=1_000_000),
                    _: Principal = Depends(require(Role.admin)), service: LaariService = Depends(get_service)):
    """All feedback rows as JSON Lines or CSV (admin)."""
    store = service.feedback
    rows = store.rows(since=since, project_id=project_id, model_version=model_version, limit=limit)
    if format == "csv":
        body, media, ext = to_csv(rows), "text/csv; charset=utf-8", "csv"
    else:
        body, media, ext = to_jsonl(rows), "application/x-ndjson; charset=utf-8", "jsonl"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="laari-feedback.{ext}"'})
