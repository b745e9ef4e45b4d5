"""Input rows in, output rows out: one output row per input row, in order (a prediction, or an error row), and
the finished chunk as the driver records it (its JSONL part and its counts)."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import orjson

from classifier.devices import Device
from classifier.project_rows import InputRow
from classifier.result_rows import PREDICTION_FIELDS, ROW_FIELDS

from .settings import EXPLAIN_MODES, BatchError


def _sentence_free(predictor, items, *, explain_full: bool):
    """``predict_many`` with the full explanation, or with everything but the supporting sentences (which score
    every sentence on its own and dominate the cost)."""
    return predictor.predict_many(items, explain=True, sentences=explain_full, remember=False)


def predictor_results(predictor, items: list, explain: str) -> list:
    if explain not in EXPLAIN_MODES:
        raise BatchError(f"explain: {explain!r}; use one of {EXPLAIN_MODES}")
    if explain == "none":
        return predictor.predict_many(items, explain=False, remember=False)
    return _sentence_free(predictor, items, explain_full=explain == "full")


def error_row(r: InputRow, message: str, model_version: str | None) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(id=r.id, model_version=model_version, error=message, row=r.row)
    if r.official:
        row.update((k, v) for k, v in r.official.items() if k not in ROW_FIELDS)
    return row


def prediction_row(p, r: InputRow) -> dict:
    """The output row of a Prediction: its fields read directly (``Prediction.to_dict`` deep-copies the whole
    explanation, which cost more than everything else the batch does; the row is serialized at once anyway)."""
    row = {k: getattr(p, k) for k in PREDICTION_FIELDS}
    row.update(out_of_theme_probability=p.out_of_theme_probability, language=p.language, warnings=p.warnings,
               error=None, row=r.row)
    if r.official:  # a register export's official columns, beside laari's (``result_rows.output_fields``)
        row.update((k, v) for k, v in r.official.items() if k not in ROW_FIELDS)
    return row


def predict_rows(predictor, rows: Sequence[InputRow], explain: str = "fast") -> list[dict]:
    """One output row per input row, in order, from ``Predictor.predict_many``. If the chunk as a whole fails
    (an unexpected error, not an InputError), rows are retried one by one so that one bad row becomes one error
    row; when every row fails the same way the error is raised (a broken model, not bad rows)."""
    from classifier.prediction import ProjectInput

    todo = [r for r in rows if r.error is None]
    items = [ProjectInput(description=r.description if r.description is not None else "", title=r.title, id=r.id)
             for r in todo]
    results: list = []
    if items:
        try:
            results = predictor_results(predictor, items, explain)
        except Exception as exc:  # noqa: BLE001 - isolated below, re-raised when not row-specific
            if len(items) == 1:
                results = [RuntimeError(f"internal: {type(exc).__name__}: {exc}")]
            else:
                results = []
                for item in items:
                    try:
                        results.extend(predictor_results(predictor, [item], explain))
                    except Exception as one:  # noqa: BLE001
                        results.append(RuntimeError(f"internal: {type(one).__name__}: {one}"))
                if all(isinstance(x, RuntimeError) for x in results):
                    raise
    by_row = dict(zip((r.row for r in todo), results))
    out = []
    for r in rows:
        if r.error is not None:
            out.append(error_row(r, r.error, predictor.version))
            continue
        res = by_row[r.row]
        out.append(error_row(r, str(res), predictor.version) if isinstance(res, Exception) else prediction_row(res, r))
    return out


def cache_counts(predictor) -> tuple[int, int]:
    cache = getattr(getattr(predictor, "embedder", None), "cache", None)
    return (getattr(cache, "hits", 0), getattr(cache, "misses", 0)) if cache is not None else (0, 0)


def embedding_info(predictor) -> dict:
    """Where the predictor's embedder runs and its id (None for a model without embeddings, or an embedder that
    does not say): what each chunk records, and the manifest sums up."""
    embedder = getattr(predictor, "embedder", None)
    if embedder is None:
        return {"device": None, "embedder_id": None}
    return {"device": getattr(embedder, "device", None), "embedder_id": getattr(embedder, "id", None)}


@dataclass(frozen=True)
class PredictorFactory:
    """Builds a Predictor where it is needed (the driver, or each Ray worker): picklable, no model inside.
    ``device``: where the embedding model runs (``classifier.embedders.Device``; None: the embedder's default)."""

    model: str | None = None  # a model folder (the driver resolves a version name to its folder)
    device: Device | None = None

    def __call__(self, device: Device | str | None = None):
        from classifier.predictor import Predictor

        return Predictor.load(self.model, device=device or self.device)


# =====================================================================================================  engines
@dataclass
class ChunkResult:
    """One finished chunk as the driver records it: the JSONL part, ready to write, and its summary. Made where
    the rows were predicted (so worker processes, not the driver, serialise them)."""

    data: bytes
    rows: int
    first_row: int
    last_row: int
    errors: int
    counts: dict
    stats: dict  # {"seconds", "cache_hits", "cache_misses", "device", "embedder_id"}


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """Rows as JSON lines, UTF-8 (orjson: the explanations make the rows big, and the standard library's encoder
    cost as much as the rest of the batch machinery together)."""
    dumps, opt = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    return b"".join(dumps(r, option=opt) for r in rows)


def chunk_result(rows: list[dict], stats: dict) -> ChunkResult:
    return ChunkResult(data=jsonl_bytes(rows),
                       rows=len(rows), first_row=rows[0]["row"], last_row=rows[-1]["row"],
                       errors=sum(r["error"] is not None for r in rows), counts=chunk_counts(rows), stats=stats)


def predict_chunk(predictor, chunk: list[InputRow], explain: str) -> ChunkResult:
    t0 = time.perf_counter()
    h0, m0 = cache_counts(predictor)
    out = predict_rows(predictor, chunk, explain)
    h1, m1 = cache_counts(predictor)
    return chunk_result(out, {"seconds": time.perf_counter() - t0, "cache_hits": h1 - h0, "cache_misses": m1 - m0,
                              **embedding_info(predictor)})


def error_reason(message: str) -> str:
    """An error message without its particulars (ids, numbers), to count errors by kind."""
    text = message.split(" (", 1)[0].split(";", 1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", text)
    return re.sub(r"\d+", "N", text).strip()


def chunk_counts(rows: list[dict]) -> dict:
    """What the summary and the manifest count, for one chunk (kept in state.json, summed at the end)."""
    laari, fit, tags, reasons = Counter(), Counter(), Counter(), Counter()
    warnings = 0
    for r in rows:
        if r["error"] is None:
            laari[r["laari"]] += 1
            fit[r["fit_verdict"]] += 1
            tags.update(r["tags"] or [])
            warnings += bool(r.get("warnings"))
        else:
            reasons[error_reason(r["error"])] += 1
    return {"laari": dict(laari), "fit_verdict": dict(fit), "tags": dict(tags), "error_reasons": dict(reasons),
            "warnings": warnings}
