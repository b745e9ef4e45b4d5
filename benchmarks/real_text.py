"""Routing quality on real register text: every variant of the model, the same real-text figures.

    .venv/bin/python benchmarks/real_text.py [--variants NAME,...] [--learning-curve]

For each variant, trains in a temporary registry on the bundled training files (or the subset the variant names)
and reports:
- the model's own cross-validated figures over the register-derived training rows (every choice of the model is
  made on these: the channel mix, C, temperature, priors' strength, out-of-theme threshold, tag thresholds);
- the held-out part of the register-derived rows (``training/data/register_heldout.jsonl``);
- the written corpus's held-out split (``training/data/heldout.jsonl``);
- as an outside check, ``../shared/real-sample/projects.jsonl`` when it exists (never trained or tuned on):
  macro-F1 over all verdicts and over those with at least 5 projects.

``--learning-curve`` trains the default on 25, 50 and 100 % of the register-derived training rows (stratified,
seeded) and plots quality against the number of register rows (``reports/learning-curve.png``).
Writes ``benchmarks/results/real_text.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL_SAMPLE = ROOT.parent / "shared" / "real-sample" / "projects.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "real_text.json"


def variants(pipeline):
    """name -> (training files, keyword arguments of pipeline.train)."""
    R, W, O = pipeline.REGISTER_TRAIN, pipeline.WRITTEN_REGISTER_STYLE, pipeline.DEFAULT_TRAIN
    both = ("embedding", "lexical")
    return {
        "default": ((R, W, O), {}),  # both channels, written rows weighted pipeline.DEFAULT_WRITTEN_WEIGHT (1)
        "embedding channel alone": ((R, W, O), {"channels": ("embedding",)}),
        "lexical channel alone": ((R, W, O), {"channels": ("lexical",)}),
        "written rows weighted 0.3": ((R, W, O), {"written_weight": 0.3}),
        "written rows weighted 3": ((R, W, O), {"written_weight": 3.0}),
        "written rows weighted 10": ((R, W, O), {"written_weight": 10.0}),
        "uniform priors": ((R, W, O), {"priors": "uniform"}),
        "title counted 3 times in the lexical channel": ((R, W, O), {"title_weight": 3}),
        "title counted 5 times in the lexical channel": ((R, W, O), {"title_weight": 5}),
        "register rows only": ((R,), {}),
        "register + register-style written": ((R, W), {}),
        "lexical: lemmas only": ((R, W, O), {"channels": both, "analyzer": "lemma"}),
        "lexical: Voikko lemmas and compound parts": ((R, W, O), {"channels": both}),
        "before: written corpus only": ((O,), {}),
    }


def use_voikko():
    """Swap simplemma for Voikko in the lexical channel (in this process only): each word's base form, with a
    compound's members as parts (``työterveyshuollon`` -> ``työ-terveys-huolto``, which the analyzer also splits
    into ``työ``, ``terveys``, ``huolto``). Needs ``libvoikko1 voikko-fi`` (Debian) and ``libvoikko`` (PyPI)."""
    from functools import lru_cache

    import libvoikko

    import classifier.lexical as lexical

    voikko = libvoikko.Voikko("fi")

    def members(wordbases: str) -> list[str]:
        out: list[str] = []
        last_surface = ""
        for comp in wordbases.strip("+").split("+"):
            if "(" not in comp:
                continue
            surface, base = comp.split("(", 1)
            base = base.rstrip(")")
            if base.startswith("+") or not base:  # a derivational suffix: the member before it, derived
                if out:
                    last_surface += surface
                    out[-1] = last_surface
            else:
                out.append(base.replace("=", ""))
                last_surface = surface
        return out

    @lru_cache(maxsize=200_000)
    def lemma(word: str) -> str:
        analyses = voikko.analyze(word)
        if not analyses:
            return word
        a = analyses[0]
        base = a.get("BASEFORM", word).lower()
        parts = [m.lower() for m in members(a.get("WORDBASES", ""))]
        return "-".join(parts) if len(parts) > 1 and "-" not in base else base

    lexical._lemma = lemma


SETUP = {"lexical: Voikko lemmas and compound parts": use_voikko}


def figures(metrics: dict) -> dict:
    lab = metrics["laari"]
    return {"n": metrics["n"], "macro_f1": lab["macro_f1"], "macro_f1_supported": lab.get("macro_f1_supported"),
            "supported": lab.get("supported_labels"), "accuracy": lab["accuracy"],
            "out_of_theme_f1": metrics["out_of_theme"]["f1"], "tag_micro_f1": metrics["tags"]["micro_f1"],
            "ece": metrics.get("calibration", {}).get("ece"),
            "per_label_f1": {k: v["f1"] for k, v in lab["per_label"].items()}}


def run_variant(name, files, kwargs, tax, embedder, registry, sets, pipeline, subset=None):
    from classifier.predictor import Predictor
    from training.evaluate import evaluate_predictor

    data = pipeline.load_files([f for f in files if f.exists()], tax)
    if subset is not None:
        data = data.subset(subset(data))
    t0 = time.time()
    needs = "embedding" in kwargs.get("channels", ("embedding",))
    result = pipeline.train(data, tax, embedder if needs else None, registry=registry, version=f"v{time.time_ns()}",
                            promote=False, **kwargs)
    seconds = time.time() - t0
    predictor = Predictor.load(result.path, embedder=embedder if needs else None)
    cv = result.manifest["metrics"]["cv"]
    out = {"train_seconds": round(seconds, 1), "rows": len(data),
           "register_rows": int(sum(data.from_register)),
           "choices": {"channels": result.manifest["channels"], "priors": result.manifest.get("priors"),
                       "thresholds": result.manifest["thresholds"]},
           "cv": {k: cv[k] for k in ("rows_scored", "router_macro_f1", "router_accuracy", "out_of_theme_f1",
                                     "tag_micro_f1", "ece") if k in cv},
           "sets": {}}
    for set_name, labelled in sets.items():
        metrics, _ = evaluate_predictor(predictor, labelled)
        out["sets"][set_name] = figures(metrics)
    print(f"  {name}: {seconds:.0f} s, cv macro-F1 {cv['router_macro_f1']}", file=sys.stderr)
    return out


def stratified_fraction(fraction: float, seed: int = 0):
    """A subset picker: all non-register rows, and ``fraction`` of each laari's register rows."""
    def pick(data):
        rng = np.random.default_rng(seed)
        reg = np.asarray(data.from_register)
        labels = np.asarray(data.laari)
        keep = list(np.flatnonzero(~reg))
        for lab in sorted(set(labels[reg])):
            idx = np.flatnonzero(reg & (labels == lab))
            k = max(2, int(round(fraction * len(idx))))
            keep += list(rng.choice(idx, size=min(k, len(idx)), replace=False))
        return sorted(int(i) for i in keep)
    return pick


SEEDS = (0, 1, 2)  # subsets drawn per fraction of the register rows (their figures are averaged)


def mean_run(runs: list[dict]) -> dict:
    """The average of several runs' figures (same keys); counts and choices from the first."""
    def avg(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 4) if values else None

    first = runs[0]
    out = {"rows": first["rows"], "register_rows": first["register_rows"], "runs": len(runs),
           "train_seconds": avg([r["train_seconds"] for r in runs]),
           "cv": {k: avg([r["cv"].get(k) for r in runs]) for k in first["cv"]}, "sets": {}}
    for name, fig in first["sets"].items():
        out["sets"][name] = {k: avg([r["sets"][name][k] for r in runs]) for k in
                             ("macro_f1", "macro_f1_supported", "accuracy", "out_of_theme_f1", "tag_micro_f1", "ece")}
    return out


def table(results: dict) -> str:
    lines = ["| variant | CV register: macro-F1 / out-of-theme F1 / tag micro-F1 / ECE | register held-out: "
             "macro-F1 / OOT F1 / tags | real sample: macro-F1 (>= 5) / all 6 / OOT F1 / tags / ECE | written "
             "held-out: macro-F1 / tags | train s |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        cv = r["cv"]
        s = r["sets"]
        rh = s.get("register held-out")
        rs = s.get("real sample")
        wh = s.get("written held-out")
        cells = [f"{cv['router_macro_f1']:.3f} / {cv['out_of_theme_f1']:.3f} / {cv['tag_micro_f1']:.3f} / "
                 f"{cv.get('ece', float('nan')):.3f}",
                 f"{rh['macro_f1']:.3f} / {rh['out_of_theme_f1']:.3f} / {rh['tag_micro_f1']:.3f}" if rh else "-",
                 f"{rs['macro_f1_supported']:.3f} / {rs['macro_f1']:.3f} / {rs['out_of_theme_f1']:.3f} / "
                 f"{rs['tag_micro_f1']:.3f} / {rs['ece']:.3f}" if rs else "-",
                 f"{wh['macro_f1']:.3f} / {wh['tag_micro_f1']:.3f}" if wh else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    parser.add_argument("--learning-curve", action="store_true", help="the learning curve (alone, unless "
                        "--variants names variants too)")
    args = parser.parse_args()

    from classifier.embedders import load_embedder
    from classifier.registry import Registry
    from classifier.taxonomy import load_taxonomy
    from training import pipeline
    from training.datasets import load_labelled

    tax = load_taxonomy()
    embedder = load_embedder()
    registry = Registry(Path(tempfile.mkdtemp(prefix="laari-real-text-")))
    sets = {"register held-out": load_labelled(pipeline.REGISTER_HELDOUT, tax),
            "written held-out": load_labelled(pipeline.DEFAULT_HELDOUT, tax)}
    if REAL_SAMPLE.exists():
        sets["real sample"] = load_labelled(REAL_SAMPLE, tax)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    only_curve = args.learning_curve and not args.variants
    results = previous.get("variants", {}) if (args.variants or only_curve) else {}
    chosen = {} if only_curve else variants(pipeline)
    if args.variants:
        names = [n.strip() for n in args.variants.split(",")]
        unknown = [n for n in names if n not in chosen]
        if unknown:
            parser.error(f"unknown variant(s) {unknown}; known: {list(chosen)}")
        chosen = {n: chosen[n] for n in names}
    for name, (files, kwargs) in chosen.items():
        if name in SETUP:
            if len(chosen) > 1:
                parser.error(f"{name!r} changes the analyzer of this process: run it on its own")
            SETUP[name]()
        results[name] = run_variant(name, files, kwargs, tax, embedder, registry, sets, pipeline)
    out = {"variants": results, "learning_curve": previous.get("learning_curve")}
    if args.learning_curve:
        files, kwargs = variants(pipeline)["default"]
        curve = {}
        for fraction in (0.0, 0.25, 0.5, 1.0):
            runs = []
            for seed in (SEEDS if 0 < fraction < 1 else (0,)):
                if fraction == 0.0:  # no register rows: the written rows alone, as before the register rows came
                    w_files, w_kwargs = variants(pipeline)["before: written corpus only"]
                    runs.append(run_variant("0 register rows", w_files, w_kwargs, tax, embedder, registry, sets,
                                            pipeline))
                else:
                    runs.append(run_variant(f"{fraction:.0%} of the register rows (seed {seed})", files, kwargs,
                                            tax, embedder, registry, sets, pipeline,
                                            subset=stratified_fraction(fraction, seed)))
            curve[str(fraction)] = {"runs": runs, "mean": mean_run(runs)}
        out["learning_curve"] = curve
        plot_learning_curve(curve, ROOT / "reports" / "learning-curve.png")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(table(results))
    if out.get("learning_curve"):
        print()
        print(curve_table(out["learning_curve"]))


def curve_table(curve: dict) -> str:
    lines = ["| register rows in training | subsets | CV macro-F1 (on those rows) | register held-out: macro-F1 / "
             "tags | real sample: macro-F1 (>= 5) / OOT F1 / tags |", "|---|---|---|---|---|"]
    for v in curve.values():
        m = v["mean"]
        rh, rs = m["sets"]["register held-out"], m["sets"].get("real sample")
        cv = "-" if m["register_rows"] == 0 else f"{m['cv']['router_macro_f1']:.3f}"
        lines.append(f"| {m['register_rows']} | {m['runs']} | {cv} | {rh['macro_f1']:.3f} / {rh['tag_micro_f1']:.3f} | "
                     + (f"{rs['macro_f1_supported']:.3f} / {rs['out_of_theme_f1']:.3f} / {rs['tag_micro_f1']:.3f} |"
                        if rs else "- |"))
    return "\n".join(lines)


def plot_learning_curve(curve: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [v["mean"] for v in curve.values()]
    xs = [p["register_rows"] for p in points]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series = [("register held-out: laari macro-F1", lambda p: p["sets"]["register held-out"]["macro_f1"]),
              ("register held-out: tag micro-F1", lambda p: p["sets"]["register held-out"]["tag_micro_f1"]),
              ("register held-out: out-of-theme F1", lambda p: p["sets"]["register held-out"]["out_of_theme_f1"])]
    if all("real sample" in p["sets"] for p in points):
        series.append(("real sample: laari macro-F1 (>= 5)",
                       lambda p: p["sets"]["real sample"]["macro_f1_supported"]))
    for label, get in series:
        ax.plot(xs, [get(p) for p in points], marker="o", label=label)
    ax.set_xlabel("register-derived training rows")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Quality against the number of labelled register projects")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
