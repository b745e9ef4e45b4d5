"""A batch run: start or resume, read the input in chunks, hand them to an engine, record each finished chunk,
assemble the output (see the package docstring)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Callable, Iterator

from classifier.project_rows import InputReader, InputRow
from classifier.result_rows import manifest_path, output_format
from classifier.tables import count_rows, file_hash

from .local_engine import LocalEngine
from .predict import embedding_info
from .settings import EXPLAIN_MODES, BatchError, BatchResult, BatchSettings
from .workdir import STATE_FORMAT, WorkDir
from .write import finalize, now


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
    """Classify every row of ``input_path`` into ``output_path`` (see the docstring of the ``batch`` package).

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
    columns = reader.resolve()  # the columns (a known export's, when none are named); a missing one is an error
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
        started = now()
        t_start = time.perf_counter()
        log(f"hashing {inp.name}")
        reading = {"layout": reader.layout.name if reader.layout else None, "columns": columns.__dict__.copy(),
                   "official_columns": list(reader.layout.kept) if reader.layout else []}
        fingerprint = {"input": {"path": str(inp), "format": reader.format, "sha256": file_hash(inp),
                                 "bytes": inp.stat().st_size, "reading": reading},
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
            before = sorted({c.get("embedder_id") for c in state["chunks"]} - {None})
            # the local engine embeds with this predictor's engine; Ray workers choose their own (their chunks say)
            now_id = embedding_info(predictor)["embedder_id"] if engine.name == "local" else None
            if now_id is not None and before and before != [now_id]:
                log(f"note: the rows done so far were embedded by {', '.join(before)}; the rest by {now_id} "
                    "(the manifest's embedding block lists both)")
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
                    "cache_hits": stats["cache_hits"], "cache_misses": stats["cache_misses"],
                    "device": stats.get("device"), "embedder_id": stats.get("embedder_id"), "finished": now(),
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
        run_end = {"ended": now(), "seconds": round(time.perf_counter() - t_start, 3)}
        work.record({"run_end": run_end})
        state["runs"][-1].update(run_end)
        manifest = finalize(work, state, out, out_fmt, reader.skipped)
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
        from .compare import write_comparison

        result.compare = write_comparison(compare_to, out)
    return result
