"""The rows a batch run writes (``laari batch``, ``laari predict --output``): their fields, the output formats,
the manifest beside an output, and reading an output back in any of its formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

from .project_rows import normalize_id
from .tables import DataError, iter_delimited, iter_records

# The output row contract, in order: each field and the kind of its value. The batch rows, every output format
# (the Parquet schema is made from it), reading outputs back and the HTTP schema's prediction fields
# (``tests/test_result_rows.py`` checks ``service.schemas.PredictionOut`` and ``Prediction`` against it) use it.
ROW_KINDS: dict[str, str] = {
    "id": "text", "laari": "text", "laari_scores": "scores", "fit": "number", "fit_verdict": "text",
    "tags": "texts", "tag_scores": "scores", "explanation": "json", "model_version": "text",
    "out_of_theme_probability": "number", "language": "text", "warnings": "texts", "error": "text",
    "row": "integer",
}
PREDICTION_FIELDS = ("id", "laari", "laari_scores", "fit", "fit_verdict", "tags", "tag_scores", "explanation",
                     "model_version")  # what a Prediction fills in; the rest of a row is the run's bookkeeping
ROW_FIELDS = tuple(ROW_KINDS)
OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                  ".xlsx": "xlsx"}


def output_fields(official: Sequence[str] = ()) -> tuple[str, ...]:
    """The fields of an output row, in order: laari's (``ROW_FIELDS``), then the official columns of a known
    register export (``InputRow.official``: text, or null) under the export's own names. Every output format
    (JSONL, CSV, Parquet, Excel) writes exactly these."""
    return ROW_FIELDS + tuple(c for c in official if c not in ROW_FIELDS)


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown output type {Path(path).suffix!r}; use .jsonl, .csv, .parquet or .xlsx")
    return fmt


def manifest_path(output: Path) -> Path:
    """``OUT.manifest.json``: the model, input hash, counts and settings of the run that wrote ``OUT``."""
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


def _maybe_json(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def normalize_output_row(rec: dict) -> dict:
    """A row read back from any output format, with the types of the JSONL output; the official columns of a
    register export as text (null when empty)."""
    out = {}
    for k in ROW_FIELDS:
        v = rec.get(k)
        if v == "":
            v = None
        if k in ("laari_scores", "tag_scores"):
            if isinstance(v, list):  # parquet map
                v = dict(v)
            v = _maybe_json(v)
        elif k in ("tags", "warnings", "explanation"):
            v = _maybe_json(v)
            if hasattr(v, "tolist"):
                v = v.tolist()
        elif k in ("fit", "out_of_theme_probability") and isinstance(v, str):
            v = float(v)
        elif k == "row" and isinstance(v, str):
            v = int(v)
        elif k == "id":
            v = normalize_id(v)
        out[k] = v
    for k, v in rec.items():
        if k not in out:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            out[k] = None if v is None or v == "" else (v if isinstance(v, str) else str(v))
    return out


def iter_output(path: str | Path) -> Iterator[dict]:
    """Rows of a batch output (JSONL, CSV, Parquet or Excel), streamed, each normalized as the JSONL output has
    it."""
    path = Path(path)
    fmt = output_format(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if fmt == "csv":
        for row, rec, error in iter_delimited(path, "csv"):
            if error is not None:
                raise DataError(f"{path}: line {row}: {error.message}")
            yield normalize_output_row(rec)
    else:
        for _, rec in iter_records(path):
            yield normalize_output_row(rec)
