"""Predictions: one project, a batch, and text extraction from an uploaded file."""

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from classifier.prediction import ProjectInput
from classifier.predictor import InputError

from ..auth import Principal, client_id, require
from ..core import Invalid, LaariService, TooLarge
from ..errors import describe_errors
from ..extract import ExtractError, extract_text
from ..schemas import (BatchRequest, BatchResponse, ErrorResponse, ExtractedText, PredictionOut, PredictRequest,
                       lone_surrogate)
from ..settings import Role
from . import get_service

router = APIRouter(tags=["predict"], responses={
    401: {"model": ErrorResponse, "description": "API key missing or not recognised."},
    403: {"model": ErrorResponse, "description": "The key lacks the role."},
    413: {"model": ErrorResponse, "description": "Body, description or batch over the limit."},
    429: {"model": ErrorResponse, "description": "Over this client's share (request rate or new text); see the "
                                                 "Retry-After header."},
    422: {"model": ErrorResponse, "description": "Schema error; names the field."},
    503: {"model": ErrorResponse, "description": "No model loaded yet."},
})
predict_access = require(Role.reviewer, open_setting="predict_open")
ExplainQuery = Query(True, description="Include the explanation (terms, sentences, similar projects); without it "
                                       "a prediction is faster.")


def _field_of(error: InputError) -> str:
    return str(error).split(":", 1)[0] if ":" in str(error) else "description"


@router.post("/v1/predict", response_model=PredictionOut, response_model_exclude_unset=True,
             summary="Suggest a laari / Ehdota laaria")
async def predict(request: Request, body: PredictRequest, explain: bool = ExplainQuery,
                  principal: Principal = Depends(predict_access), service: LaariService = Depends(get_service)):
    """The ranked laari suggestions with probabilities, the fit and its verdict, tags with scores and the
    explanation: the same fields as `laari predict --json`."""
    service.check_description(body.description)
    _, (result,) = await service.predict([ProjectInput(body.description, body.title or "", body.id)], explain,
                                         client_id(request, principal))
    if isinstance(result, Exception):
        raise Invalid(str(result), field=_field_of(result))
    return result


@router.post("/v1/predict/batch", response_model=BatchResponse, response_model_exclude_unset=True, summary="Many projects / Monta hanketta")
async def predict_batch(request: Request, body: BatchRequest, explain: bool = ExplainQuery,
                        principal: Principal = Depends(predict_access), service: LaariService = Depends(get_service)):
    """Up to the configured number of items. An item that does not validate (or is too long) gets an error entry
    with the reason; the others are predicted. The whole request fails only when the envelope is wrong."""
    limit = service.settings.max_batch_items
    if len(body.items) > limit:
        raise TooLarge(f"items: {len(body.items)} items, the limit is {limit} per request", field="items")
    errors: dict[int, str] = {}
    ids: list[str | None] = []
    inputs: list[tuple[int, ProjectInput]] = []
    for i, raw in enumerate(body.items):
        rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
        if rid is not None and lone_surrogate(rid) is not None:  # not echoed: it cannot be encoded as UTF-8
            rid = None
        ids.append(rid)
        try:
            req = PredictRequest.model_validate(raw)
        except ValidationError as exc:
            errors[i] = describe_errors(exc.errors())[0]
            continue
        if len(req.description) > service.settings.max_description_chars:
            errors[i] = (f"description: {len(req.description)} characters, the limit is "
                         f"{service.settings.max_description_chars}")
            continue
        inputs.append((i, ProjectInput(req.description, req.title or "", req.id)))
    client = client_id(request, principal)
    if inputs:
        handle, results = await service.predict([p for _, p in inputs], explain, client)
    else:
        service.admit(client)
        handle, results = service.handle, []
    by_index = dict(zip((i for i, _ in inputs), results))
    out = []
    for i in range(len(body.items)):
        res = by_index.get(i)
        if i in errors:
            out.append({"index": i, "id": ids[i], "prediction": None, "error": errors[i]})
        elif isinstance(res, Exception):
            out.append({"index": i, "id": ids[i], "prediction": None, "error": str(res)})
        else:
            out.append({"index": i, "id": ids[i], "prediction": res, "error": None})
    n_ok = sum(1 for r in out if r.get("prediction") is not None)
    return {"model_version": handle.version, "results": out, "predicted": n_ok, "failed": len(out) - n_ok}


@router.post("/v1/extract", response_model=ExtractedText, summary="Text from a file / Teksti tiedostosta")
async def extract(request: Request, file: UploadFile = File(description="A .txt (UTF-8) or .docx file."),
                  principal: Principal = Depends(predict_access), service: LaariService = Depends(get_service)):
    """The text of an uploaded .txt or .docx file, for the reviewer page (nothing is stored)."""
    service.admit(client_id(request, principal))
    data = await file.read()
    try:
        fmt, text, warnings = await run_in_threadpool(extract_text, file.filename or "", data)
    except ExtractError as exc:
        raise Invalid(f"file: {exc}", field="file") from exc
    service.check_description(text, "file")
    return {"filename": file.filename or "", "format": fmt, "text": text, "characters": len(text),
            "warnings": warnings}
