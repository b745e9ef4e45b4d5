"""Batch reclassification: a whole register (CSV/TSV, JSONL, Parquet, Excel) through the Predictor, resumably.

How it works
- Rows stream in chunks (``chunk_size`` rows); memory is bounded by the chunk, not by the file. The only thing
  that grows with the file is the index of ids seen so far (one short string per row, for the duplicate check).
- Every input row yields exactly one output row, in input order: a prediction, or an error row whose ``error``
  says why (empty text, not UTF-8, duplicate id, malformed line, ...). Nothing is dropped.
- Each finished chunk becomes a part file in ``OUT.partial/`` (written under a temporary name, fsynced, renamed)
  and is then recorded in ``OUT.partial/state.json`` (the same way). A run killed at any moment (kill -9) resumes
  with ``resume=True`` after the last recorded chunk: no row lost, none twice. A part written but not yet
  recorded is discarded and computed again.
- The final OUT is assembled from the parts into a temporary file beside OUT and renamed over it, so OUT is
  always either the old file or the complete new one. ``OUT.manifest.json`` records the model, the input's
  sha256, the counts, the times and the settings.
- Engines: ``local`` (in this process, the default) and ``ray`` (Ray Data, one Predictor per worker actor). Both
  turn rows into output rows with :func:`predict_rows`, which calls ``Predictor.predict_many``; their outputs
  are identical.

Output rows have the fields of ``laari predict --output`` (``id, laari, laari_scores, fit, fit_verdict, tags,
tag_scores, explanation, model_version``, then ``out_of_theme_probability, language, warnings``), plus ``error``
(null, or the reason the row could not be classified) and ``row`` (the input row number, 1-based as
``training.datasets.iter_records`` counts: JSONL lines, data rows after the header for tables).
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson

from .datasets import DataError, delimited_layout, file_format, file_hash, iter_records

PREDICTION_FIELDS = ("id", "laari", "laari_scores", "fit", "fit_verdict", "tags", "tag_scores", "explanation",
                     "model_version")
ROW_FIELDS = PREDICTION_FIELDS + ("out_of_theme_probability", "language", "warnings", "error", "row")
OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
EXPLAIN_MODES = ("none", "fast", "full")
DEFAULT_CHUNK_SIZE = 256
STATE_FORMAT = 1
CSV_FIELD_LIMIT = 10_000_000  # characters; a longer field means a broken quote, reported as an error row


class BatchError(RuntimeError):
    """The batch cannot run as asked (settings, an unfinished run in the way, a resume that does not match)."""


# =====================================================================================================  input
@dataclass(frozen=True)
class Columns:
    id: str = "id"
    title: str = "title"
    description: str = "description"


@dataclass
class InputRow:
    row: int  # 1-based, as iter_records counts
    id: str | None
    title: str
    description: str | None
    error: str | None = None  # set when the row cannot be classified whatever the model
    extra: dict | None = None  # the values of the reader's ``keep`` columns (labels for reports), when asked


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise BatchError(f"{path}: unknown output type {Path(path).suffix!r}; use .jsonl, .csv or .parquet")
    return fmt


def normalize_id(value) -> str | None:
    """Ids as text: 1234.0 from a spreadsheet becomes '1234'; empty and blank become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _title_text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _recover_json(raw: str | None) -> dict | None:
    """A rejected JSONL line, parsed as far as possible, to name the row's id in its error row."""
    if not raw:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def iter_delimited(path: Path, fmt: str) -> Iterator[tuple[int, dict | None, str | None]]:
    """Stream a CSV/TSV file: ``(row, record, error)``. Unlike reading the whole text, a line that is not UTF-8
    becomes an error on its own row (decoded with replacement characters so that its id can still be named), and
    a row with more fields than the header is reported and skipped. Row numbers count data rows after the header
    (blank lines skipped), as ``iter_records`` does."""
    bad_lines: dict[int, int] = {}
    layout = delimited_layout(path, fmt)
    encoding = layout["encoding"]

    def lines() -> Iterator[str]:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if n == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                if encoding == "cp1252":
                    yield raw.decode("cp1252", "replace")  # five byte values are unassigned in Windows-1252
                    continue
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad_lines[n] = exc.start
                    yield raw.decode("utf-8", "replace")

    source = lines()
    first = next(source, None)
    if first is None:
        return
    delimiter = layout["delimiter"]
    old_limit = csv.field_size_limit()
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(itertools.chain([first], source), delimiter=delimiter)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise DataError(f"{path}: the header line cannot be read: {exc}") from exc
        if 1 in bad_lines:
            raise DataError(f"{path}: the header line is not UTF-8 (byte {bad_lines[1]}); save the file as UTF-8")
        names = [h.strip() for h in header]
        n = 0
        prev_line = reader.line_num
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                n += 1
                prev_line = reader.line_num
                yield n, None, f"line: cannot be parsed ({exc})"
                continue
            start, end = prev_line + 1, reader.line_num
            prev_line = end
            if not values:
                continue
            n += 1
            rec = {k: v for k, v in zip(names, values) if k}
            bad = [ln for ln in range(start, end + 1) if ln in bad_lines]
            if bad:
                for ln in bad:
                    bad_lines.pop(ln, None)
                yield n, rec, f"encoding: not UTF-8 (file line {bad[0]}); save the file as UTF-8"
            elif len(values) > len(names):
                yield n, rec, f"line: {len(values)} fields, more than the header has ({len(names)})"
            else:
                for k in names[len(values):]:
                    if k:
                        rec[k] = ""
                yield n, rec, None
    finally:
        csv.field_size_limit(old_limit)


def _iter_other(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """JSONL, Parquet and Excel through ``iter_records``; the lines it rejects come back in their place."""
    rejects: list = []
    taken = 0

    def flush():
        nonlocal taken
        while taken < len(rejects):
            r = rejects[taken]
            taken += 1
            msg = r.message
            kind = "encoding" if msg.startswith("not UTF-8") else "line"
            if kind == "encoding":
                msg += "; save the file as UTF-8"
            yield r.row, _recover_json(r.raw), f"{kind}: {msg}"

    for row, rec in iter_records(path, skip_invalid=True, rejects=rejects):
        yield from flush()
        yield row, rec, None
    yield from flush()


class InputReader:
    """Rows of an input file as :class:`InputRow`, validated: the text column must exist, every row needs an id,
    and an id may appear once (the first occurrence keeps it; later ones become error rows)."""

    def __init__(self, path: str | Path, columns: Columns = Columns(), keep: Sequence[str] = ()):
        self.path = Path(path)
        self.columns = columns
        self.keep = tuple(keep)
        if not self.path.exists():
            raise DataError(f"{self.path}: file not found")
        self.format = file_format(self.path)
        self.first_seen: dict[str, int] = {}

    def _source(self) -> Iterator[tuple[int, dict | None, str | None]]:
        if self.format in ("csv", "tsv"):
            return iter_delimited(self.path, self.format)
        return _iter_other(self.path)

    def __iter__(self) -> Iterator[InputRow]:
        cols = self.columns
        checked = False
        for row, rec, error in self._source():
            if rec is not None and error is None and not checked:
                missing = [c for c in (cols.id, cols.description) if c not in rec]
                if missing:
                    raise DataError(
                        f"{self.path}: row {row}: no column {', '.join(map(repr, missing))}; the file has "
                        f"{sorted(map(str, rec))} (choose columns with --id-col, --title-col, --text-col)")
                checked = True
            rec = rec or {}
            rid = normalize_id(rec.get(cols.id))
            title = _title_text(rec.get(cols.title))
            desc = rec.get(cols.description)
            if error is None:
                if rid is None:
                    error = f"id: empty (column {cols.id!r})"
                elif cols.description not in rec:
                    error = f"description: no field {cols.description!r} in this row"
                elif desc is not None and not isinstance(desc, str):
                    error = f"description: expected text, got {type(desc).__name__}"
            if rid is not None:
                first = self.first_seen.get(rid)
                if first is None:
                    self.first_seen[rid] = row
                elif error is None:
                    error = f"id: duplicate id {rid!r} (first on row {first})"
            yield InputRow(row=row, id=rid, title=title,
                           description=desc if isinstance(desc, str) else None, error=error,
                           extra={k: rec.get(k) for k in self.keep} if self.keep else None)


def count_rows(path: str | Path) -> int | None:
    """Rows in an input file, for the progress bar (cheap: one pass without parsing, or file metadata)."""
    path = Path(path)
    fmt = file_format(path)
    try:
        if fmt == "jsonl":
            n = 0
            with open(path, "rb") as f:
                for line in f:
                    if line.strip():
                        n += 1
            return n
        if fmt in ("csv", "tsv"):
            with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
                first = f.readline()
                delimiter = "\t" if fmt == "tsv" else (";" if first.count(";") > first.count(",") else ",")
                old = csv.field_size_limit()
                csv.field_size_limit(CSV_FIELD_LIMIT)
                try:
                    return sum(1 for values in csv.reader(f, delimiter=delimiter) if values)
                finally:
                    csv.field_size_limit(old)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = wb.worksheets[0].max_row
        finally:
            wb.close()
        return max(0, rows - 1) if rows else None
    except (OSError, csv.Error, ValueError):
        return None


# =====================================================================================================  predicting
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
    return row


def prediction_row(p, r: InputRow) -> dict:
    """The output row of a Prediction: its fields read directly (``Prediction.to_dict`` deep-copies the whole
    explanation, which cost more than everything else the batch does; the row is serialized at once anyway)."""
    row = {k: getattr(p, k) for k in PREDICTION_FIELDS}
    row.update(out_of_theme_probability=p.out_of_theme_probability, language=p.language, warnings=p.warnings,
               error=None, row=r.row)
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


def _cache_counts(predictor) -> tuple[int, int]:
    cache = getattr(getattr(predictor, "embedder", None), "cache", None)
    return (getattr(cache, "hits", 0), getattr(cache, "misses", 0)) if cache is not None else (0, 0)


@dataclass(frozen=True)
class PredictorFactory:
    """Builds a Predictor where it is needed (the driver, or each Ray worker): picklable, no model inside."""

    model: str | None = None  # a model folder (the driver resolves a version name to its folder)
    device: str | None = None

    def __call__(self, device: str | None = None):
        from classifier.predictor import Predictor

        device = device or self.device
        if device:
            from classifier.embedders import load_embedder

            return Predictor.load(self.model, embedder=load_embedder(device=device))
        return Predictor.load(self.model)


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
    stats: dict  # {"seconds", "cache_hits", "cache_misses"}


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """Rows as JSON lines, UTF-8 (orjson: the explanations make the rows big, and the standard library's encoder
    cost as much as the rest of the batch machinery together)."""
    dumps, opt = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
    return b"".join(dumps(r, option=opt) for r in rows)


def chunk_result(rows: list[dict], stats: dict) -> ChunkResult:
    return ChunkResult(data=jsonl_bytes(rows),
                       rows=len(rows), first_row=rows[0]["row"], last_row=rows[-1]["row"],
                       errors=sum(r["error"] is not None for r in rows), counts=chunk_counts(rows), stats=stats)


class LocalEngine:
    """On this machine: one Predictor in this process, chunk after chunk; or, with ``workers`` > 1, that many
    worker processes working on consecutive chunks, their results yielded in input order.

    Workers are forked from this process once its Predictor is warm (model, lemma dictionary and vocabulary
    tables loaded), so they start at once and share those pages until they write to them; each opens its own
    connection to the embedding cache and uses its share of the CPU threads. Where ``fork`` is not available they
    are spawned and load the model through ``factory``."""

    name = "local"

    def __init__(self, predictor, *, workers: int = 1, factory: Callable | None = None):
        if workers < 1:
            raise BatchError(f"workers: {workers}; at least 1")
        self.predictor = predictor
        self.workers = workers
        self.factory = factory

    def run(self, chunks: Iterable[list[InputRow]], explain: str, chunk_size: int) -> Iterator[ChunkResult]:
        if self.workers == 1:
            for chunk in chunks:
                yield _predict_chunk(self.predictor, chunk, explain)
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        chunks = iter(chunks)
        if "fork" in multiprocessing.get_all_start_methods():
            # the first chunk here: the workers then start with the word and token tables it filled
            first = next(chunks, None)
            if first is None:
                return
            yield _predict_chunk(self.predictor, first, explain)
            _WORKER["predictor"] = self.predictor
            context, initargs = multiprocessing.get_context("fork"), (None, threads, os.getpid())
        elif self.factory is not None:
            context, initargs = multiprocessing.get_context("spawn"), (self.factory, threads, os.getpid())
        else:
            raise BatchError("worker processes need fork, or a predictor factory to start them")
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_start, initargs=initargs)
        try:
            pending: deque = deque()
            for chunk in chunks:
                pending.append(pool.submit(_worker_chunk, chunk, explain))
                if len(pending) >= 2 * self.workers:  # bounded: a few chunks in flight, not the file
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _WORKER.pop("predictor", None)


def _predict_chunk(predictor, chunk: list[InputRow], explain: str) -> ChunkResult:
    t0 = time.perf_counter()
    h0, m0 = _cache_counts(predictor)
    out = predict_rows(predictor, chunk, explain)
    h1, m1 = _cache_counts(predictor)
    return chunk_result(out, {"seconds": time.perf_counter() - t0, "cache_hits": h1 - h0, "cache_misses": m1 - m0})


_WORKER: dict = {}


def _worker_start(factory: Callable | None, threads: int, parent: int):
    """In a worker process: its share of the CPU threads, and its Predictor (forked: the parent's, with a
    connection of its own to the embedding cache; spawned: a new one from ``factory``)."""
    _exit_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is first imported
    if "torch" in sys.modules:  # already imported: importing it only to set this would cost seconds per worker
        sys.modules["torch"].set_num_threads(threads)
    if factory is not None:
        _WORKER["predictor"] = factory()
    else:
        cache = getattr(getattr(_WORKER["predictor"], "embedder", None), "cache", None)
        if cache is not None:
            cache.reopen_after_fork()


def _exit_with_parent(parent: int):
    """A worker must not outlive the batch (killed with kill -9, the parent cannot stop it): on Linux the kernel
    kills it when the parent dies; elsewhere a thread checks for a new parent every half second."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _worker_chunk(chunk: list[InputRow], explain: str) -> ChunkResult:
    return _predict_chunk(_WORKER["predictor"], chunk, explain)


def _rows_to_table(rows: Sequence[InputRow]):
    import pyarrow as pa

    return pa.table({
        "row": pa.array([r.row for r in rows], pa.int64()),
        "id": pa.array([r.id for r in rows], pa.string()),
        "title": pa.array([r.title for r in rows], pa.string()),
        "description": pa.array([r.description for r in rows], pa.string()),
        "error": pa.array([r.error for r in rows], pa.string()),
    })


def _table_to_rows(table) -> list[InputRow]:
    cols = {name: table.column(name).to_pylist() for name in ("row", "id", "title", "description", "error")}
    return [InputRow(row=cols["row"][i], id=cols["id"][i], title=cols["title"][i] or "",
                     description=cols["description"][i], error=cols["error"][i]) for i in range(table.num_rows)]


class RayPredictWorker:
    """A Ray Data actor: loads the Predictor once, then predicts batch after batch (on its GPU when it has one)."""

    def __init__(self, factory: Callable, explain: str):
        device = None
        try:
            import ray
            import torch

            if ray.get_gpu_ids() and torch.cuda.is_available():
                device = "cuda"
        except Exception:  # noqa: BLE001 - no GPU support: the CPU it is
            device = None
        self.predictor = factory(device=device) if device else factory()
        self.explain = explain

    def __call__(self, batch):
        import pyarrow as pa

        rows = _table_to_rows(batch)
        t0 = time.perf_counter()
        h0, m0 = _cache_counts(self.predictor)
        out = predict_rows(self.predictor, rows, self.explain)
        h1, m1 = _cache_counts(self.predictor)
        n = len(out)
        extra = [0] * max(0, n - 1)
        return pa.table({
            "row": pa.array([r["row"] for r in out], pa.int64()),
            "json": pa.array([json.dumps(r, ensure_ascii=False) for r in out], pa.string()),
            "seconds": pa.array(([time.perf_counter() - t0] + [0.0] * max(0, n - 1))[:n], pa.float64()),
            "cache_hits": pa.array(([h1 - h0] + extra)[:n], pa.int64()),
            "cache_misses": pa.array(([m1 - m0] + extra)[:n], pa.int64()),
        })


class RayEngine:
    """Ray Data: the driver reads and validates the rows (cheap, in order), the prediction runs in an actor pool
    (``workers`` actors, each loading the model once; ``batch_size`` rows per call, so the embedder works in
    batches; one GPU per actor when the cluster has GPUs), and the driver writes the results in input order into
    the same checkpointed parts as the local engine. ``address=None`` starts a local Ray instance."""

    name = "ray"

    def __init__(self, factory: Callable, *, address: str | None = None, workers: int | None = None,
                 num_cpus: int | None = None, gpus_per_worker: float | None = None, batch_size: int = 64,
                 env: dict[str, str] | None = None):
        self.factory = factory
        self.address = address
        self.workers = workers
        self.num_cpus = num_cpus
        self.gpus_per_worker = gpus_per_worker
        self.batch_size = batch_size
        self.env = env if env is not None else {k: v for k, v in os.environ.items() if k.startswith("LAARI_")}
        self._started = False

    def _init(self):
        import logging

        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False, "configure_logging": True}
            if self.address:
                # a cluster: its workers get the LAARI_* settings and this code's folder on their path (a local
                # instance's workers inherit both from this process)
                kwargs["address"] = self.address
                code_path = str(Path(__file__).resolve().parent.parent)
                kwargs["runtime_env"] = {"env_vars": {**self.env, "PYTHONPATH": os.pathsep.join(
                    p for p in [code_path, os.environ.get("PYTHONPATH", "")] if p)}}
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            self._started = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def close(self):
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, chunks: Iterable[list[InputRow]], explain: str, chunk_size: int) -> Iterator[ChunkResult]:
        ray = self._init()
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        for attr in ("enable_progress_bars", "enable_operator_progress_bars", "print_on_execution_start"):
            if hasattr(ctx, attr):
                setattr(ctx, attr, False)
        expected: list[tuple[int, int, int]] = []  # per chunk: first row, last row, count
        refs = []
        for chunk in chunks:
            refs.append(ray.put(_rows_to_table(chunk)))
            expected.append((chunk[0].row, chunk[-1].row, len(chunk)))
        if not refs:
            return
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        workers = self.workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1) // max(gpus, 1)))
        ds = ray.data.from_arrow_refs(refs).map_batches(
            RayPredictWorker, fn_constructor_kwargs={"factory": self.factory, "explain": explain},
            batch_size=self.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers), num_gpus=gpus)
        buf: list[dict] = []
        stats = {"seconds": 0.0, "cache_hits": 0, "cache_misses": 0}
        index = 0
        t_last = time.perf_counter()
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            buf.extend(json.loads(s) for s in batch.column("json").to_pylist())
            stats["cache_hits"] += sum(batch.column("cache_hits").to_pylist())
            stats["cache_misses"] += sum(batch.column("cache_misses").to_pylist())
            while index < len(expected) and len(buf) >= expected[index][2]:
                first, last, count = expected[index]
                out, buf = buf[:count], buf[count:]
                if out[0]["row"] != first or out[-1]["row"] != last:
                    raise RuntimeError(f"ray engine: rows out of order (expected {first}..{last}, got "
                                       f"{out[0]['row']}..{out[-1]['row']})")
                now = time.perf_counter()
                yield chunk_result(out, {**stats, "seconds": now - t_last})
                t_last = now
                stats = {"seconds": 0.0, "cache_hits": 0, "cache_misses": 0}
                index += 1
        if index != len(expected) or buf:
            raise RuntimeError(f"ray engine: {len(expected) - index} chunk(s) missing from the results")


# =====================================================================================================  writers
def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class _CsvWriter:
    """Nested values (scores, tags, explanation, warnings) as JSON text; null as an empty cell."""

    def __init__(self, f):
        import io

        self.text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=True)
        self.w = csv.writer(self.text)
        self.w.writerow(ROW_FIELDS)

    def write(self, rows: list[dict]):
        for r in rows:
            self.w.writerow(["" if r.get(k) is None else (_json_text(r[k]) if isinstance(r[k], (dict, list))
                                                           else r[k]) for k in ROW_FIELDS])

    def close(self):
        self.text.flush()
        self.text.detach()


def parquet_schema():
    import pyarrow as pa

    scores = pa.map_(pa.string(), pa.float64())
    return pa.schema([
        ("id", pa.string()), ("laari", pa.string()), ("laari_scores", scores), ("fit", pa.float64()),
        ("fit_verdict", pa.string()), ("tags", pa.list_(pa.string())), ("tag_scores", scores),
        ("explanation", pa.string()), ("model_version", pa.string()), ("out_of_theme_probability", pa.float64()),
        ("language", pa.string()), ("warnings", pa.list_(pa.string())), ("error", pa.string()), ("row", pa.int64()),
    ])


class _ParquetWriter:
    """One row group per chunk; scores as map<string, double>, the explanation as JSON text."""

    def __init__(self, f):
        import pyarrow.parquet as pq

        self.schema = parquet_schema()
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


WRITERS = {"csv": _CsvWriter, "parquet": _ParquetWriter}  # JSONL parts are copied as they are


def _fsync_dir(path: Path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data):
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


# =====================================================================================================  reading outputs
def _maybe_json(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def normalize_output_row(rec: dict) -> dict:
    """A row read back from any output format, with the types of the JSONL output."""
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
    return out


def iter_output(path: str | Path) -> Iterator[dict]:
    """Rows of a batch output (JSONL, CSV or Parquet), streamed, each normalized as the JSONL output has it."""
    path = Path(path)
    fmt = output_format(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            for rec in batch.to_pylist():
                yield normalize_output_row(rec)
    elif fmt == "csv":
        for _, rec, error in iter_delimited(path, "csv"):
            if error:
                raise DataError(f"{path}: {error}")
            yield normalize_output_row(rec)
    else:
        for _, rec in iter_records(path):
            yield normalize_output_row(rec)


# =====================================================================================================  the run
@dataclass
class BatchSettings:
    columns: Columns = field(default_factory=Columns)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    explain: str = "fast"

    def fingerprint(self) -> dict:
        return {"columns": asdict(self.columns), "chunk_size": self.chunk_size, "explain": self.explain}


@dataclass
class BatchResult:
    output: Path
    manifest_path: Path
    manifest: dict
    compare: dict | None = None  # paths of the comparison report, when asked


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def error_reason(message: str) -> str:
    """An error message without its particulars (ids, numbers), to count errors by kind."""
    text = message.split(" (", 1)[0].split(";", 1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", text)
    return re.sub(r"\d+", "N", text).strip()


class WorkDir:
    """``OUT.partial/``: ``state.json`` (the run's input, model and settings), ``journal.jsonl`` (one record per
    finished chunk), ``part-NNNNNN.jsonl`` (the rows of each finished chunk) and a lock file."""

    def __init__(self, output: Path):
        self.path = output.with_name(output.name + ".partial")
        self.state_path = self.path / "state.json"
        self.journal_path = self.path / "journal.jsonl"
        self._lock_fd: int | None = None

    def exists(self) -> bool:
        return self.state_path.exists()

    def lock(self):
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BatchError(f"another batch is writing {self.path.parent} (lock {self.path / 'lock'} is held)")
        self._lock_fd = fd

    def unlock(self):
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> dict | None:
        """The unfinished run: ``state.json`` (written once: input, model, settings) and the chunk and run records
        of ``journal.jsonl`` (appended and fsynced, one line per record: the file never grows by more than a line
        per chunk, whatever the size of the input). A last line torn by a kill is dropped."""
        if not self.state_path.exists():
            return None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BatchError(f"{self.state_path}: unreadable ({exc}); remove {self.path} or use --restart")
        if state.get("format") != STATE_FORMAT:
            raise BatchError(f"{self.state_path}: unknown state format {state.get('format')!r}; use --restart")
        state.update(chunks=[], runs=[], finalized=False)
        data = self.journal_path.read_bytes() if self.journal_path.exists() else b""
        complete, _, torn = data.rpartition(b"\n")
        if torn:  # killed while appending: drop the partial line
            with open(self.journal_path, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        for n, line in enumerate(complete.splitlines() if complete else [], 1):
            try:
                entry = json.loads(line)
            except ValueError:
                raise BatchError(f"{self.journal_path}: line {n} is damaged; use --restart")
            if "run" in entry:
                state["runs"].append({**entry["run"], "rows": 0})
            elif "chunk" in entry:
                c = entry["chunk"]
                if c["index"] != len(state["chunks"]):
                    raise BatchError(f"{self.journal_path}: chunk {c['index']} out of sequence; use --restart")
                state["chunks"].append(c)
                if state["runs"]:
                    run = state["runs"][-1]
                    run["rows"] += c["rows"]
                    run["seconds"] = c.get("run_seconds", run.get("seconds"))
            elif "run_end" in entry and state["runs"]:
                state["runs"][-1].update(entry["run_end"])
            elif "finalized" in entry:
                state["finalized"] = True
        return state

    def create(self, header: dict):
        atomic_write_json(self.state_path, header)
        atomic_write_bytes(self.journal_path, b"")

    def record(self, entry: dict):
        with open(self.journal_path, "ab") as f:
            f.write((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def part(self, index: int) -> Path:
        return self.path / f"part-{index:06d}.jsonl"

    def write_part_bytes(self, index: int, data: bytes):
        atomic_write_bytes(self.part(index), data)

    def read_part(self, index: int) -> list[dict]:
        with open(self.part(index), encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def tidy(self, n_parts: int):
        """Remove what a killed run may have left beyond the recorded chunks: unrecorded parts, temporary files."""
        for p in self.path.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.name.startswith("part-") and p.suffix == ".jsonl":
                try:
                    index = int(p.stem.split("-")[1])
                except ValueError:
                    continue
                if index >= n_parts:
                    p.unlink(missing_ok=True)

    def clear(self):
        for p in self.path.iterdir():
            if p.name != "lock":
                p.unlink(missing_ok=True) if p.is_file() else shutil.rmtree(p, ignore_errors=True)

    def remove(self):
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)


def _model_info(predictor) -> dict:
    bundle = getattr(predictor, "bundle", None)
    manifest = getattr(bundle, "manifest", {}) or {}
    return {"version": predictor.version, "bundle_hash": manifest.get("bundle_hash"),
            "embedder_id": manifest.get("embedder_id"), "taxonomy_version": manifest.get("taxonomy_version"),
            "path": str(bundle.path) if getattr(bundle, "path", None) else None}


def _describe_mismatch(old: dict, new: dict) -> str:
    diffs = []
    if old["input"]["sha256"] != new["input"]["sha256"]:
        diffs.append(f"the input file changed (sha256 {old['input']['sha256'][:12]} -> {new['input']['sha256'][:12]})")
    if old["model"].get("bundle_hash") != new["model"].get("bundle_hash") or \
            old["model"]["version"] != new["model"]["version"]:
        diffs.append(f"the model differs (unfinished run: {old['model']['version']}, now: {new['model']['version']};"
                     f" pass --model {old['model']['version']} to finish the old run)")
    for k, v in new["settings"].items():
        if old["settings"].get(k) != v:
            diffs.append(f"{k}: {old['settings'].get(k)!r} -> {v!r}")
    return "; ".join(diffs)


def run_batch(input_path: str | Path, output_path: str | Path, *, predictor=None, engine=None,
              settings: BatchSettings | None = None, resume: bool = False, restart: bool = False,
              compare_to: str | Path | None = None, progress: Callable[[int, int | None], None] | None = None,
              log: Callable[[str], None] | None = None, after_chunk: Callable[[int], None] | None = None) \
        -> BatchResult:
    """Classify every row of ``input_path`` into ``output_path`` (see the module docstring).

    ``predictor``: the Predictor whose model is used (and which the local engine runs). ``engine``: LocalEngine
    (default) or RayEngine. ``resume``: continue an unfinished run of the same input, model and settings;
    without it an unfinished run is an error unless ``restart`` discards it. ``progress(done, total)`` is called
    after every chunk; ``after_chunk(index)`` after a chunk is recorded (tests use it to interrupt a run).
    """
    settings = settings or BatchSettings()
    log = log or (lambda msg: None)
    if settings.chunk_size < 1:
        raise BatchError("chunk size must be at least 1")
    if settings.explain not in EXPLAIN_MODES:
        raise BatchError(f"explain: {settings.explain!r}; use one of {EXPLAIN_MODES}")
    inp = Path(input_path).resolve()
    out = Path(output_path).resolve()
    out_fmt = output_format(out)
    reader = InputReader(inp, settings.columns)  # checks existence and type
    if inp == out:
        raise BatchError("the output would overwrite the input; choose another output file")
    if predictor is None:
        raise BatchError("no predictor given")
    engine = engine or LocalEngine(predictor)
    out.parent.mkdir(parents=True, exist_ok=True)

    work = WorkDir(out)
    had_dir = work.path.exists()
    state = None
    work.lock()
    try:
        started = _now()
        t_start = time.perf_counter()
        log(f"hashing {inp.name}")
        fingerprint = {"input": {"path": str(inp), "format": reader.format, "sha256": file_hash(inp),
                                 "bytes": inp.stat().st_size},
                       "model": _model_info(predictor), "settings": settings.fingerprint()}
        state = work.load()
        if state is not None and state.get("finalized"):
            work.clear()  # a finished run killed while tidying up
            state = None
        if state is not None and not resume:
            if not restart:
                done = sum(c["rows"] for c in state["chunks"])
                raise BatchError(f"an unfinished run of {out.name} is in {work.path} ({done} rows done, started "
                                 f"{state['started']}); add --resume to continue it or --restart to start over")
            work.clear()
            state = None
        if state is not None:
            mismatch = _describe_mismatch(state, fingerprint)
            if mismatch:
                raise BatchError(f"cannot resume {work.path}: {mismatch}; use --restart to start over")
        elif resume and not had_dir:
            log("nothing to resume: starting a new run")
        if state is None:
            work.clear()
            header = {"format": STATE_FORMAT, **fingerprint, "output": {"path": str(out), "format": out_fmt},
                      "started": started}
            work.create(header)
            state = {**header, "chunks": [], "runs": [], "finalized": False}
        work.tidy(len(state["chunks"]))
        rows_done = sum(c["rows"] for c in state["chunks"])
        if rows_done:
            log(f"resuming after row {rows_done} ({len(state['chunks'])} chunk(s) done)")
        run_info = {"started": started, "engine": engine.name, "resumed_after_rows": rows_done, "ended": None}
        work.record({"run": run_info})
        state["runs"].append({**run_info, "rows": 0})

        total = count_rows(inp) if progress else None
        if progress:
            progress(rows_done, total)
        rows = iter(reader)
        for _ in itertools.islice(rows, rows_done):  # skipped rows still register their ids
            pass

        def chunks() -> Iterator[list[InputRow]]:
            while True:
                chunk = list(itertools.islice(rows, settings.chunk_size))
                if not chunk:
                    return
                yield chunk

        done = rows_done
        for result in engine.run(chunks(), settings.explain, settings.chunk_size):
            index = len(state["chunks"])
            work.write_part_bytes(index, result.data)
            run_seconds = round(time.perf_counter() - t_start, 3)
            stats = result.stats
            meta = {"index": index, "rows": result.rows, "first_row": result.first_row,
                    "last_row": result.last_row, "errors": result.errors,
                    "counts": result.counts, "seconds": round(stats["seconds"], 3),
                    "cache_hits": stats["cache_hits"], "cache_misses": stats["cache_misses"], "finished": _now(),
                    "run_seconds": run_seconds}
            work.record({"chunk": meta})  # the chunk is done once this line is on disk
            state["chunks"].append(meta)
            done += result.rows
            state["runs"][-1]["rows"] = done - rows_done
            state["runs"][-1]["seconds"] = run_seconds
            if progress:
                progress(done, total)
            if after_chunk:
                after_chunk(index)
        run_end = {"ended": _now(), "seconds": round(time.perf_counter() - t_start, 3)}
        work.record({"run_end": run_end})
        state["runs"][-1].update(run_end)
        manifest = _finalize(work, state, out, out_fmt)
        work.record({"finalized": True})
    except BaseException:
        if state is not None and not state["chunks"]:
            work.remove()  # nothing done: leave nothing behind
        else:
            work.unlock()
        raise
    work.remove()
    result = BatchResult(out, manifest_path(out), manifest)
    if compare_to is not None:
        result.compare = write_comparison(compare_to, out)
    return result


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


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


def _check_part(work: WorkDir, c: dict, first: dict, last: dict, n: int, previous_last: int | None):
    if n != c["rows"] or first["row"] != c["first_row"] or last["row"] != c["last_row"] or \
            (previous_last is not None and first["row"] <= previous_last):
        raise BatchError(f"{work.part(c['index'])} does not match its record in state.json; use --restart")


def _finalize(work: WorkDir, state: dict, out: Path, out_fmt: str) -> dict:
    """Assemble the parts into OUT (atomically) and write the manifest beside it. JSONL parts are copied as they
    are (each checked against its record: row count, first and last row); CSV and Parquet are converted."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    counts = {"rows": 0, "predicted": 0, "errors": 0, "laari": Counter(), "fit_verdict": Counter(),
              "tags": Counter(), "error_reasons": Counter(), "warnings": 0}
    previous_last = None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = None if out_fmt == "jsonl" else WRITERS[out_fmt](f)
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
            f.flush()
            os.fsync(f.fileno())
        finished = _now()
        chunks = state["chunks"]
        manifest = {
            "kind": "laari-batch",
            "format": 1,
            "output": {"path": str(out), "format": out_fmt, "sha256": file_hash(tmp), "rows": counts["rows"]},
            "input": {**state["input"], **(delimited_layout(Path(state["input"]["path"]), state["input"]["format"])
                                           if state["input"]["format"] in ("csv", "tsv") else {})},
            "model": state["model"],
            "settings": {**state["settings"], "engines": sorted({r["engine"] for r in state["runs"]})},
            "counts": {k: (dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) if isinstance(v, Counter) else v)
                       for k, v in counts.items()},
            "embedding_cache": {"hits": sum(c["cache_hits"] for c in chunks),
                                "misses": sum(c["cache_misses"] for c in chunks)},
            "started": state["started"],
            "finished": finished,
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
        mpath = manifest_path(out)
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        atomic_write_json(mpath, manifest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


# =====================================================================================================  comparison
MAX_IDS_SHOWN = 50  # per group in the Markdown/HTML report; the JSON has every id


def compare_outputs(previous: str | Path, current: str | Path) -> dict:
    """Who moved where between two batch outputs (matched by id): laari transitions with their ids, tags added
    and removed, fit verdicts changed, rows only in one of them, rows that became (or stopped being) errors."""
    previous, current = Path(previous), Path(current)
    old: dict[str, tuple] = {}
    old_versions: Counter = Counter()
    for r in iter_output(previous):
        if r["id"] is None or r["id"] in old:
            continue  # error rows without an id, and later duplicates, cannot be matched
        old[r["id"]] = (r["laari"], tuple(r["tags"] or ()), r["fit_verdict"], r["error"])
        if r["model_version"]:
            old_versions[r["model_version"]] += 1
    transitions: dict[tuple[str, str], list[str]] = {}
    matrix: Counter = Counter()
    tags_added: dict[str, list[str]] = {}
    tags_removed: dict[str, list[str]] = {}
    fit_changed: dict[tuple[str, str], list[str]] = {}
    became_errors: list[dict] = []
    no_longer_errors: list[str] = []
    only_current: list[str] = []
    seen: set[str] = set()
    new_versions: Counter = Counter()
    n_current = compared = unchanged = 0
    for r in iter_output(current):
        n_current += 1
        rid = r["id"]
        if r["model_version"]:
            new_versions[r["model_version"]] += 1
        if rid is None or rid in seen:
            continue
        seen.add(rid)
        if rid not in old:
            only_current.append(rid)
            continue
        o_laari, o_tags, o_fit, o_err = old[rid]
        if o_err is None and r["error"] is not None:
            became_errors.append({"id": rid, "error": r["error"], "previous_laari": o_laari})
            continue
        if o_err is not None and r["error"] is None:
            no_longer_errors.append(rid)
            continue
        if o_err is not None:
            continue
        compared += 1
        matrix[(o_laari, r["laari"])] += 1
        same = True
        if o_laari != r["laari"]:
            transitions.setdefault((o_laari, r["laari"]), []).append(rid)
            same = False
        new_tags = set(r["tags"] or ())
        for t in sorted(new_tags - set(o_tags)):
            tags_added.setdefault(t, []).append(rid)
            same = False
        for t in sorted(set(o_tags) - new_tags):
            tags_removed.setdefault(t, []).append(rid)
            same = False
        if o_fit != r["fit_verdict"]:
            fit_changed.setdefault((o_fit, r["fit_verdict"]), []).append(rid)
            same = False
        unchanged += same
    only_previous = [rid for rid in old if rid not in seen]
    labels = sorted({a for a, _ in matrix} | {b for _, b in matrix})
    moved = sum(len(v) for v in transitions.values())
    return {
        "previous": {"path": str(previous), "rows": len(old), "model_versions": dict(old_versions)},
        "current": {"path": str(current), "rows": n_current, "model_versions": dict(new_versions)},
        "summary": {"compared": compared, "unchanged": unchanged, "moved": moved,
                    "moved_share": round(moved / compared, 4) if compared else 0.0,
                    "tags_changed": len({i for v in (*tags_added.values(), *tags_removed.values()) for i in v}),
                    "fit_verdict_changed": sum(len(v) for v in fit_changed.values()),
                    "only_in_previous": len(only_previous), "only_in_current": len(only_current),
                    "became_errors": len(became_errors), "no_longer_errors": len(no_longer_errors)},
        "moved": [{"from": a, "to": b, "count": len(ids), "ids": ids}
                  for (a, b), ids in sorted(transitions.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
        "matrix": {"labels": labels, "counts": [[matrix[(a, b)] for b in labels] for a in labels]},
        "tags": {"added": [{"tag": t, "count": len(ids), "ids": ids} for t, ids in
                           sorted(tags_added.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
                 "removed": [{"tag": t, "count": len(ids), "ids": ids} for t, ids in
                             sorted(tags_removed.items(), key=lambda kv: (-len(kv[1]), kv[0]))]},
        "fit_verdicts": [{"from": a, "to": b, "count": len(ids), "ids": ids}
                         for (a, b), ids in sorted(fit_changed.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
        "only_in_previous": only_previous,
        "only_in_current": only_current,
        "became_errors": became_errors,
        "no_longer_errors": no_longer_errors,
    }


def _ids_text(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (f" … and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")


def comparison_markdown(c: dict, image: str | None = None) -> str:
    s = c["summary"]
    lines = [
        "# Reclassification report", "",
        f"Previous: `{c['previous']['path']}` (model {', '.join(c['previous']['model_versions']) or '-'}, "
        f"{c['previous']['rows']} ids)  ",
        f"Current: `{c['current']['path']}` (model {', '.join(c['current']['model_versions']) or '-'}, "
        f"{c['current']['rows']} rows)", "",
        "| figure | count |", "|---|---|",
        f"| projects compared (classified in both) | {s['compared']} |",
        f"| unchanged (same laari, tags and fit verdict) | {s['unchanged']} |",
        f"| moved to another laari | {s['moved']} ({100 * s['moved_share']:.1f} %) |",
        f"| tags changed | {s['tags_changed']} |",
        f"| fit verdict changed | {s['fit_verdict_changed']} |",
        f"| only in the previous output | {s['only_in_previous']} |",
        f"| only in the current output | {s['only_in_current']} |",
        f"| classified before, an error now | {s['became_errors']} |",
        f"| an error before, classified now | {s['no_longer_errors']} |", "",
        "## Moved projects (previous laari -> current laari)", "",
    ]
    if c["moved"]:
        lines += ["| previous | current | count | ids |", "|---|---|---|---|"]
        lines += [f"| {m['from']} | {m['to']} | {m['count']} | {_ids_text(m['ids'])} |" for m in c["moved"]]
    else:
        lines.append("No project moved.")
    if image:
        lines += ["", f"![laari transitions]({image})"]
    lines += ["", "## Tags", ""]
    if c["tags"]["added"] or c["tags"]["removed"]:
        lines += ["| tag | change | count | ids |", "|---|---|---|---|"]
        lines += [f"| {t['tag']} | added | {t['count']} | {_ids_text(t['ids'])} |" for t in c["tags"]["added"]]
        lines += [f"| {t['tag']} | removed | {t['count']} | {_ids_text(t['ids'])} |" for t in c["tags"]["removed"]]
    else:
        lines.append("No tag changed.")
    lines += ["", "## Fit verdicts changed", ""]
    if c["fit_verdicts"]:
        lines += ["| previous | current | count | ids |", "|---|---|---|---|"]
        lines += [f"| {m['from']} | {m['to']} | {m['count']} | {_ids_text(m['ids'])} |" for m in c["fit_verdicts"]]
    else:
        lines.append("No fit verdict changed.")
    for title, ids in (("Only in the previous output", c["only_in_previous"]),
                       ("Only in the current output", c["only_in_current"]),
                       ("An error before, classified now", c["no_longer_errors"])):
        if ids:
            lines += ["", f"## {title}", "", _ids_text(ids)]
    if c["became_errors"]:
        lines += ["", "## Classified before, an error now", "", "| id | previous laari | error |", "|---|---|---|"]
        lines += [f"| {e['id']} | {e['previous_laari']} | {e['error']} |" for e in c["became_errors"][:MAX_IDS_SHOWN]]
    return "\n".join(lines) + "\n"


def _transition_png(c: dict, path: Path) -> bool:
    labels = c["matrix"]["labels"]
    if not labels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    M = np.asarray(c["matrix"]["counts"], dtype=float)
    rows = M.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2), dpi=110)
    ax.imshow(M / rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("current laari")
    ax.set_ylabel("previous laari")
    ax.set_title("Where the projects went (row share, counts in cells)", fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if M[i, j]:
                ax.text(j, i, str(int(M[i, j])), ha="center", va="center", fontsize=9,
                        color="white" if M[i, j] / rows[i, 0] > 0.5 else "black")
    fig.tight_layout()
    buf = __import__("io").BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def write_comparison(previous: str | Path, current: str | Path, prefix: str | Path | None = None) -> dict:
    """Write ``PREFIX.json``, ``.md``, ``.html`` and ``.png`` (default prefix: ``CURRENT_STEM.compare`` beside the
    current output); returns the paths and the summary."""
    from .report import to_html

    current = Path(current)
    prefix = Path(prefix) if prefix else current.with_name(current.stem + ".compare")
    c = compare_outputs(previous, current)
    png = prefix.with_name(prefix.name + ".png")
    image = png.name if _transition_png(c, png) else None
    md = comparison_markdown(c, image)
    paths = {"json": prefix.with_name(prefix.name + ".json"), "markdown": prefix.with_name(prefix.name + ".md"),
             "html": prefix.with_name(prefix.name + ".html")}
    atomic_write_json(paths["json"], c)
    atomic_write_bytes(paths["markdown"], md.encode("utf-8"))
    atomic_write_bytes(paths["html"], to_html(md, "Reclassification report", []).encode("utf-8"))
    if image:
        paths["png"] = png
    return {"paths": {k: str(v) for k, v in paths.items()}, "summary": c["summary"]}
