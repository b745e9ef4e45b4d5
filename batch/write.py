"""The final output: the finished parts assembled into OUT (JSONL copied as it is, CSV, Parquet and Excel
converted), atomically, and the manifest beside it."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from classifier.atomic import atomic_file, atomic_write_json
from classifier.register_layouts import by_name
from classifier.result_rows import ROW_KINDS, manifest_path, output_fields
from classifier.tables import delimited_layout, file_hash

from .settings import BatchError
from .workdir import WorkDir


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class _CsvWriter:
    """Nested values (scores, tags, explanation, warnings) as JSON text; null as an empty cell."""

    def __init__(self, f, fields: tuple[str, ...], numbers=()):
        import io

        self.fields = fields
        self.text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=True)
        self.w = csv.writer(self.text)
        self.w.writerow(fields)

    def write(self, rows: list[dict]):
        for r in rows:
            self.w.writerow(["" if r.get(k) is None else (_json_text(r[k]) if isinstance(r[k], (dict, list))
                                                           else r[k]) for k in self.fields])

    def close(self):
        self.text.flush()
        self.text.detach()


def parquet_schema(official: tuple[str, ...] = ()):
    """laari's fields, then the official columns of a register export as text (``output_fields``)."""
    import pyarrow as pa

    types = {"text": pa.string(), "json": pa.string(), "number": pa.float64(), "integer": pa.int64(),
             "texts": pa.list_(pa.string()), "scores": pa.map_(pa.string(), pa.float64())}
    return pa.schema([(name, types[ROW_KINDS.get(name, "text")]) for name in output_fields(official)])


class _ParquetWriter:
    """One row group per chunk; scores as map<string, double>, the explanation as JSON text."""

    def __init__(self, f, fields: tuple[str, ...], numbers=()):
        import pyarrow.parquet as pq

        self.schema = parquet_schema(fields[len(output_fields()):])
        self.w = pq.ParquetWriter(f, self.schema, compression="zstd")

    def write(self, rows: list[dict]):
        import pyarrow as pa

        if not rows:
            return
        data = {name: [r.get(name) for r in rows] for name in self.schema.names}
        data["explanation"] = [_json_text(v) for v in data["explanation"]]
        for k in ("laari_scores", "tag_scores"):
            data[k] = [None if v is None else list(v.items()) for v in data[k]]
        self.w.write_table(pa.table(data, schema=self.schema))

    def close(self):
        self.w.close()


class _XlsxWriter:
    """One sheet, streamed (``xlsx_out.XlsxRows``); a register's number columns as numbers."""

    def __init__(self, f, fields: tuple[str, ...], numbers=()):
        from .xlsx_out import XlsxRows

        self.w = XlsxRows(f, fields, numbers=numbers)

    def write(self, rows: list[dict]):
        self.w.write(rows)

    def close(self):
        self.w.close()

    def discard(self):
        self.w.discard()


WRITERS = {"csv": _CsvWriter, "parquet": _ParquetWriter, "xlsx": _XlsxWriter}  # JSONL parts are copied as they are


def _check_part(work: WorkDir, c: dict, first: dict, last: dict, n: int, previous_last: int | None):
    if n != c["rows"] or first["row"] != c["first_row"] or last["row"] != c["last_row"] or \
            (previous_last is not None and first["row"] <= previous_last):
        raise BatchError(f"{work.part(c['index'])} does not match its record in state.json; use --restart")


def embedding_summary(chunks: list[dict]) -> dict:
    """Where the texts were embedded and by which engine: the devices (``cpu``, ``cuda``) and embedder ids the
    chunks record, each once, sorted (more than one only when a run was resumed elsewhere; none for a model
    without embeddings)."""
    return {key + "s": sorted({c[key] for c in chunks if c.get(key)}) for key in ("device", "embedder_id")}


def finalize(work: WorkDir, state: dict, out: Path, out_fmt: str, skipped: list[dict] | None = None) -> dict:
    """Assemble the parts into OUT (atomically) and write the manifest beside it. JSONL parts are copied as they
    are (each checked against its record: row count, first and last row); CSV, Parquet and Excel are converted.
    A failed write leaves the old OUT and the parts as they were (the run can be resumed). ``skipped``: the
    input's rows that were not projects (an export's footer), recorded in the manifest."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    counts = {"rows": 0, "predicted": 0, "errors": 0, "laari": Counter(), "fit_verdict": Counter(),
              "tags": Counter(), "error_reasons": Counter(), "warnings": 0}
    previous_last = None
    with atomic_file(out) as f:
        reading = state["input"].get("reading") or {}
        layout = by_name(reading.get("layout"))
        fields = output_fields(reading.get("official_columns") or ())
        writer = None if out_fmt == "jsonl" else WRITERS[out_fmt](f, fields, layout.numbers if layout else ())
        try:
            for c in state["chunks"]:
                if writer is None:
                    data = work.part(c["index"]).read_bytes()
                    lines = data.splitlines()
                    _check_part(work, c, json.loads(lines[0]), json.loads(lines[-1]), len(lines), previous_last)
                    f.write(data)
                else:
                    rows = work.read_part(c["index"])
                    _check_part(work, c, rows[0], rows[-1], len(rows), previous_last)
                    writer.write(rows)
                previous_last = c["last_row"]
                counts["rows"] += c["rows"]
                counts["errors"] += c["errors"]
                counts["predicted"] += c["rows"] - c["errors"]
                for k in ("laari", "fit_verdict", "tags", "error_reasons"):
                    counts[k].update(c["counts"][k])
                counts["warnings"] += c["counts"]["warnings"]
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None and hasattr(writer, "discard"):
                writer.discard()
            raise
    chunks = state["chunks"]
    manifest = {
        "kind": "laari-batch",
        "format": 1,
        "output": {"path": str(out), "format": out_fmt, "sha256": file_hash(out), "rows": counts["rows"]},
        "input": {**state["input"], **(delimited_layout(Path(state["input"]["path"]), state["input"]["format"])
                                       if state["input"]["format"] in ("csv", "tsv") else {}),
                  "skipped_rows": list(skipped or [])},
        "model": state["model"],
        "settings": {**state["settings"], "engines": sorted({r["engine"] for r in state["runs"]})},
        "counts": {k: (dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) if isinstance(v, Counter) else v)
                   for k, v in counts.items()},
        "embedding_cache": {"hits": sum(c["cache_hits"] for c in chunks),
                            "misses": sum(c["cache_misses"] for c in chunks)},
        "embedding": embedding_summary(chunks),
        "started": state["started"],
        "finished": now(),
        "seconds": round(sum(r.get("seconds") or 0 for r in state["runs"]), 3),
        "prediction_seconds": round(sum(c["seconds"] for c in chunks), 3),
        "chunks": len(chunks),
        "runs": state["runs"],
        "resumed": len(state["runs"]) > 1,
    }
    try:
        from classifier import __version__

        manifest["laari_version"] = __version__
    except ImportError:
        pass
    atomic_write_json(manifest_path(out), manifest)
    return manifest
