"""The commands that apply a trained model: ``laari predict`` (one description, or a file with ``--input``) and
``laari batch`` (a register, resumable), added to the main app by ``register``. Parse arguments, call the
``batch`` package, print. No logic here."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from classifier.devices import Device

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1):
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)  # one line, as written
    raise typer.Exit(code)


def _errors():
    from classifier.bundle import BundleError
    from classifier.embedders import EmbedderError
    from classifier.taxonomy import TaxonomyError

    from classifier.tables import DataError

    from .settings import BatchError

    return (BatchError, BundleError, EmbedderError, TaxonomyError, DataError, ValueError, OSError)


def _factory(model: Optional[str], device: Optional[Device] = None):
    """What builds the Predictor (tests replace this): the model resolved to its folder now, so that every worker
    loads the same version even if the current model changes during the run; ``device``: where it embeds."""
    from classifier.registry import Registry

    from .predict import PredictorFactory

    path = Registry().resolve(model)
    return PredictorFactory(model=str(path.resolve()), device=device)


def _device(device: Device, engine: str = "local", ray_address: Optional[str] = None) -> Device:
    """The device a run embeds on, checked before anything is read (``resolve_device``: ``auto`` becomes the CPU
    or CUDA, ``cuda`` without a CUDA device or with the ONNX engine named is an error). A Ray cluster elsewhere
    (``--ray-address``) is not this machine: its workers resolve ``auto`` and ``cuda`` on their own GPUs."""
    from classifier.devices import resolve_device
    from classifier.embedders.backends import ONNX, named_backend

    try:
        if engine == "ray" and ray_address and named_backend() != ONNX:
            return device
        return resolve_device(device)
    except ValueError as exc:  # DeviceError, or an unknown LAARI_EMBED_BACKEND
        fail(str(exc))


def _embedder():
    """The embedder for discovery (tests replace this)."""
    from classifier.embedders import load_embedder

    return load_embedder()


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        start = task.fields.get("start_done", 0)
        elapsed = task.elapsed or 0
        rate = (task.completed - start) / elapsed if elapsed > 0 else 0
        return Text(f"{rate:,.1f} rows/s", style="progress.data.speed")


def _progress_bar(label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
                    console=console, transient=False)


# --------------------------------------------------------------------------- batch
def batch(
    input: Path = typer.Argument(..., help="Projects: CSV/TSV, JSONL, Parquet or Excel (.xlsx)."),
    output: Path = typer.Argument(..., help="Results: .jsonl, .csv, .parquet or .xlsx (by extension)."),
    id_col: str = typer.Option("id", "--id-col", help="Column with the project id (a known register export, "
                               "such as EURA 2021, needs no column options)."),
    title_col: str = typer.Option("title", "--title-col", help="Column with the title."),
    text_col: str = typer.Option("description", "--text-col", help="Column with the description."),
    model: Optional[str] = typer.Option(None, help="Model version or folder (default: current)."),
    chunk_size: int = typer.Option(256, "--chunk-size", min=1, help="Rows per chunk (the unit of resuming)."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Explanations: terms, tag terms, similar "
                                 "projects (fast). --no-explain keeps only runner-up, margin and fit."),
    explain_sentences: bool = typer.Option(False, "--explain-sentences", help="Also the supporting sentences (scores "
                                           "every sentence on its own: slower)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run of the same input, model and "
                                "settings after its last finished chunk."),
    restart: bool = typer.Option(False, "--restart", help="Discard an interrupted run and start over."),
    compare_to: Optional[Path] = typer.Option(None, "--compare-to", help="A previous output: write a "
                                              "reclassification report (OUT_STEM.compare.{md,html,json,png})."),
    engine: str = typer.Option("local", help="local (this machine) or ray (Ray Data actors)."),
    workers: Optional[int] = typer.Option(None, help="local: worker processes, each with its own copy of the "
                                          "model (default 1: in this process; more use more memory). Ray: number "
                                          "of predictor actors (default: one per CPU, or per GPU)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray: address of a running cluster "
                                              "(default: start a local instance)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", help="Ray: CPUs of the local instance."),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help="Ray: GPUs per actor (default: "
                                                    "1 when the cluster has GPUs, else 0)."),
    device: Device = typer.Option(Device.AUTO, "--device", case_sensitive=False, help="Where the embedding model "
                                  "runs: auto (a GPU when torch sees one, else the CPU), cpu, or cuda (an error "
                                  "without one). On a GPU: the torch engine, fp16 weights, LAARI_CUDA_BATCH_SIZE pieces "
                                  "at a time; on the CPU: the default engine (ONNX)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the run manifest as JSON."),
):
    """Classify every row of a register into OUTPUT: one output row per input row, in order, with `error` set on
    rows that could not be classified. Resumable (--resume), atomic, with a manifest beside OUTPUT."""
    from classifier.project_rows import Columns

    from .settings import BatchSettings

    settings = BatchSettings(columns=Columns(id=id_col, title=title_col, description=text_col),
                             chunk_size=chunk_size,
                             explain="full" if explain_sentences else ("fast" if explain else "none"))
    run_register_job(input, output, settings, model=model, resume=resume, restart=restart, compare_to=compare_to,
                     engine=engine, workers=workers, ray_address=ray_address, num_cpus=num_cpus,
                     gpus_per_worker=gpus_per_worker, device=device, quiet=quiet, as_json=as_json)


def run_register_job(input: Path, output: Path, settings, *, model: Optional[str] = None, resume: bool = False,
                     restart: bool = False, compare_to: Optional[Path] = None, engine: str = "local",
                     workers: Optional[int] = None, ray_address: Optional[str] = None, num_cpus: Optional[int] = None,
                     gpus_per_worker: Optional[float] = None, device: Device = Device.AUTO, quiet: bool = False,
                     as_json: bool = False) -> None:
    """The one way the command line classifies a file (``laari batch`` and ``laari predict --input``): the batch
    runner with a progress bar, then its summary. ``device`` is checked first, before the input is read."""
    from .local_engine import LocalEngine
    from .ray_engine import RayEngine
    from .run import run_batch

    if engine not in ("local", "ray"):
        fail(f"--engine: {engine!r}; use local or ray")
    if resume and restart:
        fail("--resume and --restart exclude each other")
    where = _device(device, engine, ray_address)
    remote = engine == "ray" and bool(ray_address)
    try:
        factory = _factory(model, where)
        # a cluster elsewhere embeds on its own devices; the driver here only reads the model, on the CPU
        predictor = factory(Device.CPU) if remote else factory()
        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                fail("--engine ray needs Ray: pip install 'ray[data]'")
            runner = RayEngine(factory, address=ray_address, workers=workers, num_cpus=num_cpus,
                               gpus_per_worker=gpus_per_worker, device=where)
        else:  # CUDA does not survive a fork: workers beside a GPU model start afresh
            runner = LocalEngine(predictor, workers=workers or 1, factory=factory, fork=where is not Device.CUDA)
    except _errors() as exc:
        fail(str(exc))

    bar = None if quiet else _progress_bar("batch")
    task = None

    def progress(done: int, total: Optional[int]):
        nonlocal task
        if bar is None:
            return
        if task is None:
            task = bar.add_task("rows", total=total, completed=done, start_done=done)
        else:
            bar.update(task, completed=done, total=total)

    t0 = time.perf_counter()
    try:
        if bar is not None:
            bar.start()
        result = run_batch(input, output, predictor=predictor, engine=runner, settings=settings, resume=resume,
                           restart=restart, compare_to=compare_to, progress=progress,
                           log=lambda m: console.print(f"[dim]{m}[/]"))
    except KeyboardInterrupt:
        if bar is not None:
            bar.stop()
        console.print(f"[yellow]interrupted[/]: finished chunks are kept in {output}.partial; run the same command "
                      "with --resume to continue")
        raise typer.Exit(130)
    except _errors() as exc:
        if bar is not None:
            bar.stop()
        from .workdir import WorkDir

        kept = WorkDir(output.resolve())
        fail(str(exc) + (f"; the finished chunks are kept in {kept.path}: run the same command with --resume to "
                         "continue" if kept.exists() else ""))
    finally:
        if bar is not None:
            bar.stop()
        if engine == "ray":
            runner.close()
    m = result.manifest
    if as_json:
        sys.stdout.write(json.dumps({**m, "compare": result.compare}, ensure_ascii=False, indent=2) + "\n")
        return
    _print_summary(m, time.perf_counter() - t0, result)


def _print_summary(m: dict, wall: float, result) -> None:
    c = m["counts"]
    t = Table(title=f"{m['output']['path']}  (model {m['model']['version']})", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    inp = m["input"]
    if "encoding" in inp:
        delimiter = {"\t": "tab", ";": "semicolon", ",": "comma"}.get(inp["delimiter"], repr(inp["delimiter"]))
        t.add_row("input read as", f"{inp['format'].upper()}, {inp['encoding']}, {delimiter}-separated")
    reading = inp.get("reading") or {}
    if reading.get("layout"):
        cols = reading["columns"]
        t.add_row("register export", f"{reading['layout']}: id {cols['id']!r}, title {cols['title']!r}, "
                                     f"{len(reading['official_columns'])} official columns kept")
    skipped = inp.get("skipped_rows") or []
    if skipped:
        t.add_row("skipped (not projects)", str(len(skipped)))
        for s in skipped:
            t.add_row(f"  row {s['row']}", s["reason"])
    t.add_row("rows", str(c["rows"]))
    t.add_row("predicted", str(c["predicted"]))
    t.add_row("errors", str(c["errors"]))
    for lab, n in c["laari"].items():
        t.add_row(f"  laari {lab}", str(n))
    for v, n in c["fit_verdict"].items():
        t.add_row(f"  fit {v}", str(n))
    for reason, n in c["error_reasons"].items():
        t.add_row(f"  error: {reason}", str(n))
    cache = m["embedding_cache"]
    t.add_row("embedding cache hits / misses", f"{cache['hits']} / {cache['misses']}")
    rows_now = m["runs"][-1]["rows"] if m["runs"] else c["rows"]
    t.add_row("time (this run)", f"{wall:.1f} s ({rows_now / wall if wall else 0:,.1f} rows/s)")
    if m.get("resumed"):
        t.add_row("resumed", f"{len(m['runs'])} runs; this one started after row {m['runs'][-1]['resumed_after_rows']}")
    out.print(t)
    out.print(f"manifest: {result.manifest_path}")
    if result.compare:
        s = result.compare["summary"]
        out.print(f"compared with the previous output: {s['moved']} of {s['compared']} moved, {s['tags_changed']} "
                  f"with changed tags, {s['fit_verdict_changed']} with changed fit verdict -> "
                  f"{result.compare['paths']['html']}")


def _taxonomy(path: Optional[Path]):
    if path is None:
        return None
    from classifier.taxonomy import load_taxonomy

    return load_taxonomy(path)


# --------------------------------------------------------------------------- predict
def _print_prediction(p) -> None:
    from classifier.predictor import Predictor  # noqa: F401  (keeps import errors at the command)

    expl = p.explanation
    score = p.laari_scores.get(p.laari)
    head = f"[bold]{p.laari}[/]" + (f"  p={score:.2f}" if score is not None else
                                    f"  (out of theme p={p.out_of_theme_probability:.2f}, nearest laari "
                                    f"{expl.get('nearest_laari')})")
    out.print(f"laari:  {head}")
    out.print(f"        runner-up {expl['runner_up']['laari']} p={expl['runner_up']['probability']:.2f}, "
              f"margin {expl['margin']:.2f}")
    fit = expl["fit"]
    pct = "" if fit["percentile"] is None else f", percentile {fit['percentile']:.0f} among {fit['laari']} projects"
    out.print(f"fit:    {p.fit:.2f} in theme, {p.fit_verdict}{pct}")
    out.print("tags:   " + (", ".join(f"{t} ({p.tag_scores[t]:.2f})" for t in p.tags) or "-"))
    terms = [f"{t['term']} ({t['weight']:+.2f})" for t in expl.get("terms", []) if t["weight"] > 0]
    if terms:
        out.print("why:    terms " + ", ".join(terms[:8]))
    for s in expl.get("sentences", []):
        out.print(f"        \u201c{s['text']}\u201d")
    for n in expl.get("similar", []):
        out.print(f"similar: {n['id']} {n['laari']} ({n['similarity']:.2f}) {n['title']}")
    for w in p.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    out.print(f"[dim]model {p.model_version}[/]")


def predict(
    text: Optional[str] = typer.Argument(None, help="The description; '-' or nothing reads standard input."),
    title: str = typer.Option("", help="Project title."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Read the description from a text file."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Batch: JSONL/CSV/TSV/Parquet/Excel with "
                                          "id, title, description."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Batch: .jsonl, .csv, .parquet or .xlsx "
                                          "output, one row per input row (unreadable rows become rows with `error` set)."),
    model: Optional[str] = typer.Option(None, help="Model version or folder (default: current)."),
    taxonomy: Optional[Path] = typer.Option(None, help="Refuse to run unless the model matches this taxonomy."),
    device: Optional[Device] = typer.Option(None, "--device", case_sensitive=False, help="Where the embedding "
                                            "model runs: auto, cpu or cuda, as for `laari batch` (default: auto "
                                            "with --input; one description: the default engine, ONNX on the CPU)."),
    as_json: bool = typer.Option(False, "--json"),
):
    """Suggest a laari, tags and fit for one description, or for every row of a file (`--input`: the same run as
    `laari batch INPUT OUTPUT --explain-sentences`)."""
    from classifier.predictor import InputError, Predictor

    if input is not None:
        if output is None:
            fail("--input needs --output")
        from .settings import BatchSettings

        if taxonomy is not None:
            try:
                Predictor.load(model, taxonomy=_taxonomy(taxonomy))
            except _errors() as exc:
                fail(str(exc))
        run_register_job(input, output, BatchSettings(explain="full"), model=model, device=device or Device.AUTO,
                         quiet=not sys.stderr.isatty())
        return
    where = _device(device) if device is not None else None
    try:
        predictor = Predictor.load(model, taxonomy=_taxonomy(taxonomy), device=where)
    except _errors() as exc:
        fail(str(exc))
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read as UTF-8 text: {exc}")
    elif text is None or text == "-":
        if sys.stdin.isatty():
            fail("give a description as an argument, with --file, or on standard input")
        text = sys.stdin.read()
    try:
        p = predictor.predict_one(text, title=title)
    except InputError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(p.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_prediction(p)


def register(app: typer.Typer) -> None:
    """Add ``predict`` and ``batch`` to the ``laari`` app."""
    app.command("predict")(predict)
    app.command("batch")(batch)


def main():  # `python -m batch.cli ...`: the two commands on their own
    app = typer.Typer(help="laari predict and batch.", no_args_is_help=True, add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
