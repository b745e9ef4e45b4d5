"""The ``laari report`` (pool homogeneity) and ``laari discover`` (candidate pools) commands, added to the main app
by ``register``. Parse arguments, call ``training.pool_report`` / ``training.discover``, print. No logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .cli import _errors, console, fail, out


def _predictor(model: Optional[str]):
    """The model whose embedder (and taxonomy) the report uses (tests replace this)."""
    from classifier.predictor import Predictor
    from classifier.registry import Registry

    return Predictor.load(str(Registry().resolve(model).resolve()))


def _embedder():
    """The embedder for discovery (tests replace this)."""
    from classifier.embedders import load_embedder

    return load_embedder()


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

    from classifier.project_rows import Columns

    from .pool_report import (PoolData, Thresholds, compute_report, embed_documents, is_batch_output,
                              load_batch_output, load_labelled_rows)
    from .pool_report_page import write_report

    from . import pipeline

    source = source or pipeline.DEFAULT_TRAIN
    out_dir = out_dir or Path("reports") / f"pools-{source.stem}"
    columns = Columns(id=id_col, title=title_col, description=text_col)
    try:
        predictor = _predictor(model)
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
                     "missing_texts": rows["missing_texts"], "crosstabs": rows["crosstabs"]}
        else:
            rows = load_labelled_rows(source, columns, label_col)
            kind = "labelled data"
            version = predictor.version
            extra = {"skipped_rows": rows["skipped"]}
            console.print(f"[dim]{len(rows['ids'])} labelled projects from {source}[/]")
        if not rows["ids"]:
            fail(f"{source}: no classified projects to report on")
        with Progress(TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as bar:
            task = bar.add_task("docs", total=len(rows["ids"]))
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
    for ct in rep.get("crosstabs") or []:
        x = Table(title=f"laari x {ct['column']}")
        x.add_column("laari")
        for v in ct["values"]:
            x.add_column(v, justify="right")
        x.add_column("total", justify="right")
        for lab, row, tot in zip(ct["laari"], ct["counts"], ct["laari_totals"]):
            x.add_row(lab, *map(str, row), str(tot))
        out.print(x)
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

    from classifier.project_rows import Columns

    from . import pipeline
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
    """Add ``report`` and ``discover`` to the ``laari`` app."""
    app.command("report")(report)
    app.command("discover")(discover)
