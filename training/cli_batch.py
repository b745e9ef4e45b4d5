"""The ``laari batch``, ``laari report`` and ``laari discover`` commands (added to the main app by ``register``).

Parse arguments, call ``training.batch`` / ``training.pool_report`` / ``training.discover``, print. No logic here.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _errors():
    from classifier.bundle import BundleError
    from classifier.embedders import EmbedderError
    from classifier.taxonomy import TaxonomyError

    from .batch import BatchError
    from .datasets import DataError

    return (BatchError, BundleError, EmbedderError, TaxonomyError, DataError, ValueError, OSError)


def _factory(model: Optional[str]):
    """What builds the Predictor (tests replace this): the model resolved to its folder now, so that every worker
    loads the same version even if the current model changes during the run."""
    from classifier.registry import Registry

    from .batch import PredictorFactory

    path = Registry().resolve(model)
    return PredictorFactory(model=str(path.resolve()))


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
    output: Path = typer.Argument(..., help="Results: .jsonl, .csv or .parquet (by extension)."),
    id_col: str = typer.Option("id", "--id-col", help="Column with the project id."),
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
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the run manifest as JSON."),
):
    """Classify every row of a register into OUTPUT: one output row per input row, in order, with `error` set on
    rows that could not be classified. Resumable (--resume), atomic, with a manifest beside OUTPUT."""
    from .batch import BatchSettings, Columns

    settings = BatchSettings(columns=Columns(id=id_col, title=title_col, description=text_col),
                             chunk_size=chunk_size,
                             explain="full" if explain_sentences else ("fast" if explain else "none"))
    run_register_job(input, output, settings, model=model, resume=resume, restart=restart, compare_to=compare_to,
                     engine=engine, workers=workers, ray_address=ray_address, num_cpus=num_cpus,
                     gpus_per_worker=gpus_per_worker, quiet=quiet, as_json=as_json)


def run_register_job(input: Path, output: Path, settings, *, model: Optional[str] = None, resume: bool = False,
                     restart: bool = False, compare_to: Optional[Path] = None, engine: str = "local",
                     workers: Optional[int] = None, ray_address: Optional[str] = None, num_cpus: Optional[int] = None,
                     gpus_per_worker: Optional[float] = None, quiet: bool = False, as_json: bool = False) -> None:
    """The one way the command line classifies a file (``laari batch`` and ``laari predict --input``): the batch
    runner with a progress bar, then its summary."""
    from .batch import LocalEngine, RayEngine, run_batch

    if engine not in ("local", "ray"):
        fail(f"--engine: {engine!r}; use local or ray")
    if resume and restart:
        fail("--resume and --restart exclude each other")
    try:
        factory = _factory(model)
        predictor = factory()
        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                fail("--engine ray needs Ray: pip install 'ray[data]'")
            runner = RayEngine(factory, address=ray_address, workers=workers, num_cpus=num_cpus,
                               gpus_per_worker=gpus_per_worker)
        else:
            runner = LocalEngine(predictor, workers=workers or 1, factory=factory)
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
        fail(str(exc))
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


# --------------------------------------------------------------------------- report
def report(
    source: Optional[Path] = typer.Argument(None, help="A batch output (texts joined from its input), or labelled "
                                            "data (default: the bundled training split)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: "
                                           "reports/pools-SOURCE_STEM)."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Batch output: the batch input, when the "
                                         "manifest does not name it."),
    id_col: str = typer.Option("id", "--id-col"),
    title_col: str = typer.Option("title", "--title-col"),
    text_col: str = typer.Option("description", "--text-col"),
    label_col: str = typer.Option("laari", "--label-col", help="Labelled data: the pool column."),
    model: Optional[str] = typer.Option(None, help="Model whose embedder (and taxonomy) is used (default: current)."),
    space: str = typer.Option("auto", help="auto, embedding or lexical (TF-IDF + SVD)."),
    center: bool = typer.Option(True, "--center/--no-center", help="Subtract the mean vector before cosines."),
    min_silhouette: float = typer.Option(0.03, "--min-silhouette", help="Homogeneity threshold: mean silhouette."),
    max_outlier_share: float = typer.Option(0.2, "--max-outlier-share"),
    min_size: int = typer.Option(10, "--min-size"),
    min_cohesion: Optional[float] = typer.Option(None, "--min-cohesion", help="Optional: mean cosine to centroid."),
    map_method: str = typer.Option("pca", "--map", help="pca, or umap (needs umap-learn)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the report summary as JSON."),
):
    """Pool homogeneity report (HTML + JSON + PNG): per laari size, cohesion, silhouette, nearest pool,
    keywords, representative and outlying projects, assessment metric and a verdict; a map and a heat map."""
    from classifier.taxonomy import load_taxonomy

    from .batch import Columns
    from .pool_report import (PoolData, Thresholds, compute_report, embed_documents, is_batch_output,
                              load_batch_output, load_labelled_rows, write_report)

    from . import pipeline

    source = source or pipeline.DEFAULT_TRAIN
    out_dir = out_dir or Path("reports") / f"pools-{source.stem}"
    columns = Columns(id=id_col, title=title_col, description=text_col)
    try:
        predictor = _factory(model)()
        taxonomy = getattr(predictor, "taxonomy", None) or load_taxonomy()
        if not source.exists():
            fail(f"{source}: file not found")
        if is_batch_output(source):
            rows = load_batch_output(source, input, None if input is None and id_col == "id" and title_col == "title"
                                     and text_col == "description" else columns)
            kind = "batch output"
            note = f"{rows['errors']} error rows left out"
            if rows["missing_texts"]:
                note += f", {rows['missing_texts']} predicted rows without their text in {rows['input']}"
            console.print(f"[dim]{len(rows['ids'])} classified projects from {source} ({note})[/]")
            version = rows["model_version"]
            extra = {"batch_input": rows["input"], "error_rows": rows["errors"],
                     "missing_texts": rows["missing_texts"]}
        else:
            rows = load_labelled_rows(source, columns, label_col)
            kind = "labelled data"
            version = predictor.version
            extra = {"skipped_rows": rows["skipped"]}
            console.print(f"[dim]{len(rows['ids'])} labelled projects from {source}[/]")
        if not rows["ids"]:
            fail(f"{source}: no classified projects to report on")
        with _progress_bar("embedding") as bar:
            task = bar.add_task("docs", total=len(rows["ids"]), start_done=0)
            X, space_name = embed_documents(predictor, rows["titles"], rows["texts"], space=space, seed=seed,
                                            progress=lambda d, t: bar.update(task, completed=d))
        data = PoolData(ids=rows["ids"], titles=rows["titles"], texts=rows["texts"], labels=rows["labels"],
                        vectors=X, space=space_name, source=str(source), kind=kind, model_version=version,
                        extra=extra)
        th = Thresholds(min_silhouette=min_silhouette, max_outlier_share=max_outlier_share, min_size=min_size,
                        min_cohesion=min_cohesion)
        rep = compute_report(data, pools=taxonomy.laari_ids + sorted(set(rows["labels"]) - set(taxonomy.verdict_ids)),
                             out_id=taxonomy.out_of_theme.id, taxonomy=taxonomy, thresholds=th, center=center,
                             map_method=map_method, seed=seed)
        paths = write_report(rep, out_dir, title=f"Pool homogeneity: {source.name}")
    except _errors() as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps({"paths": paths, "summary": rep["summary"],
                                     "pools": [{k: b[k] for k in ("id", "size", "cohesion", "silhouette", "nearest",
                                                                  "separation", "outlier_share", "verdict")}
                                               for b in rep["pools"]]}, ensure_ascii=False, indent=2) + "\n")
        return
    t = Table(title=f"{source.name}: {rep['n']} projects ({rep['space']})")
    for col in ("pool", "size", "cohesion", "silhouette", "nearest", "separation", "outliers", "verdict"):
        t.add_column(col, justify="left" if col in ("pool", "nearest", "verdict") else "right")
    for b in rep["pools"]:
        t.add_row(b["id"], str(b["size"]), f"{b['cohesion']:.3f}±{b['cohesion_std']:.3f}",
                  "-" if b["silhouette"] is None else f"{b['silhouette']:.3f}", b["nearest"] or "-",
                  "-" if b["separation"] is None else f"{b['separation']:.3f}",
                  f"{b['outlier_count']} ({100 * b['outlier_share']:.0f}%)",
                  ("[green]" if b["verdict"] == "homogeneous" else "[yellow]") + b["verdict"])
    out.print(t)
    out.print(f"report: {paths['html']}")


# --------------------------------------------------------------------------- discover
def discover(
    corpus: Optional[List[Path]] = typer.Argument(None, help="File(s) of descriptions (default: the bundled "
                                                  "training and held-out splits)."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="Number of pools (default: chosen)."),
    k_min: int = typer.Option(2, "--k-min"),
    k_max: int = typer.Option(10, "--k-max"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(5, help="Subsample clusterings per k for the stability."),
    min_stability: float = typer.Option(0.8, "--min-stability"),
    features: str = typer.Option("both", help="both, embedding or lexical."),
    id_col: str = typer.Option("id", "--id-col"),
    title_col: str = typer.Option("title", "--title-col"),
    text_col: str = typer.Option("description", "--text-col"),
    label_col: str = typer.Option("laari", "--label-col", help="Labels for the agreement (never for clustering)."),
    no_labels: bool = typer.Option(False, "--no-labels", help="Ignore labels even when the files have them."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: reports/discover)."),
    write_taxonomy: Optional[Path] = typer.Option(None, "--write-taxonomy", help="Write a draft taxonomy YAML."),
    taxonomy: Optional[Path] = typer.Option(None, help="Taxonomy whose out-of-theme verdict and tags the draft "
                                            "copies (default: the bundled one)."),
    map_method: str = typer.Option("pca", "--map"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Cluster descriptions into candidate pools: k chosen by silhouette and stability, pools named by keywords,
    homogeneity figures, agreement with existing labels, and optionally a draft taxonomy."""
    from classifier.taxonomy import load_taxonomy

    from . import pipeline
    from .batch import Columns
    from .discover import DiscoverSettings, discover as run_discover, load_corpus, write_discovery, \
        write_taxonomy_draft

    paths = corpus or [pipeline.DEFAULT_TRAIN, pipeline.DEFAULT_HELDOUT]
    out_dir = out_dir or Path("reports") / "discover"
    settings = DiscoverSettings(k=k, k_min=k_min, k_max=k_max, seed=seed, bootstrap=bootstrap,
                                min_stability=min_stability, features=features)
    try:
        base = load_taxonomy(taxonomy)
        data = load_corpus(paths, Columns(id=id_col, title=title_col, description=text_col),
                           None if no_labels else label_col)
        console.print(f"[dim]{len(data)} projects from {', '.join(map(str, paths))}"
                      + (f" ({data.skipped} rows skipped)" if data.skipped else "") + "[/]")
        embedder = _embedder() if features in ("both", "embedding") else None
        result = run_discover(data, embedder, settings, log=lambda m: console.print(f"[dim]{m}[/]"),
                              map_method=map_method)
        files = write_discovery(result, out_dir)
        if write_taxonomy:
            files["taxonomy"] = str(write_taxonomy_draft(result, write_taxonomy, base))
    except _errors() as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps({"k": result["k"], "k_selection": result["k_selection"],
                                     "agreement": {k: v for k, v in (result.get("agreement") or {}).items()
                                                   if k in ("ari", "nmi")} or None,
                                     "pools": [{"id": b["id"], "name": b["name"], "size": b["size"],
                                                "silhouette": b["silhouette"], "verdict": b["verdict"]}
                                               for b in result["report"]["pools"]],
                                     "files": files}, ensure_ascii=False, indent=2) + "\n")
        return
    t = Table(title=f"{len(data)} projects -> {result['k']} pools")
    for col in ("pool", "size", "keywords", "silhouette", "verdict"):
        t.add_column(col)
    for b in result["report"]["pools"]:
        t.add_row(b["id"], str(b["size"]), ", ".join(x["term"] for x in b["keywords"][:5]),
                  "-" if b["silhouette"] is None else f"{b['silhouette']:.3f}", b["verdict"])
    out.print(t)
    if result.get("agreement"):
        a = result["agreement"]
        out.print(f"agreement with the labels: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}")
    out.print(f"report: {files['html']}")
    if write_taxonomy:
        out.print(f"draft taxonomy: {files['taxonomy']} (check it with `laari taxonomy check`)")


def register(app: typer.Typer) -> None:
    """Add ``batch``, ``report`` and ``discover`` to the ``laari`` app."""
    app.command("batch")(batch)
    app.command("report")(report)
    app.command("discover")(discover)


def main():  # `python -m training.cli_batch ...`: the three commands on their own (until training/cli.py has them)
    app = typer.Typer(help="laari batch, report and discover.", no_args_is_help=True, add_completion=False)
    register(app)
    app()


if __name__ == "__main__":
    main()
