"""Routing quality of laari's channels on the held-out split and on the real register sample.

    .venv/bin/python benchmarks/quality.py

Trains, on the training split only and in a temporary registry, the default model (cross-validation picks the
channel mix), each channel alone, and the zero-shot prototype model; scores each on the held-out split and on
``../shared/real-sample/projects.jsonl`` (never trained on). Writes benchmarks/results/quality.json and prints a
Markdown table. The embedding cache makes reruns fast.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL_SAMPLE = ROOT.parent / "shared" / "real-sample" / "projects.jsonl"


def main():
    from classifier.embedders import load_embedder
    from classifier.predictor import Predictor
    from classifier.registry import Registry
    from classifier.taxonomy import load_taxonomy
    from training import pipeline
    from training.datasets import load_labelled
    from training.evaluate import evaluate_predictor

    tax = load_taxonomy()
    embedder = load_embedder()
    registry = Registry(Path(tempfile.mkdtemp(prefix="laari-quality-")))
    train = load_labelled(pipeline.DEFAULT_TRAIN, tax)
    sets = {"heldout": load_labelled(pipeline.DEFAULT_HELDOUT, tax)}
    if REAL_SAMPLE.exists():
        sets["real-sample"] = load_labelled(REAL_SAMPLE, tax)

    systems = {
        "laari (CV-chosen mix)": lambda: pipeline.train(train, tax, embedder, registry=registry, version="default"),
        "embedding channel alone": lambda: pipeline.train(train, tax, embedder, registry=registry,
                                                          version="embedding", channels=("embedding",)),
        "lexical channel alone": lambda: pipeline.train(train, tax, None, registry=registry, version="lexical",
                                                        channels=("lexical",)),
        "zero-shot (taxonomy only)": lambda: pipeline.zero_shot(tax, embedder, registry=registry, version="zeroshot"),
    }
    results = {}
    for name, build in systems.items():
        result = build()
        predictor = Predictor.load(result.path, embedder=embedder)
        results[name] = {"version": result.version, "channel_choice": result.manifest["channel_choice"],
                         "cv": result.manifest.get("metrics", {}).get("cv"), "sets": {}}
        for set_name, data in sets.items():
            metrics, _ = evaluate_predictor(predictor, data)
            results[name]["sets"][set_name] = metrics
    out = ROOT / "benchmarks" / "results" / "quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    print("| system | set | laari acc | laari macro-F1 | in-theme macro-F1 | ei_teemassa P / R / F1 | fit AUROC | "
          "tag micro-F1 | tag macro-F1 | ECE |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for set_name, m in r["sets"].items():
            o = m["out_of_theme"]
            print(f"| {name} | {set_name} | {m['laari']['accuracy']:.3f} | {m['laari']['macro_f1']:.3f} | "
                  f"{(m['laari']['in_theme_macro_f1'] or 0):.3f} | {o['precision']:.3f} / {o['recall']:.3f} / "
                  f"{o['f1']:.3f} | {o.get('fit_auroc', float('nan')):.3f} | {m['tags']['micro_f1']:.3f} | "
                  f"{m['tags']['macro_f1']:.3f} | {m['calibration']['ece']:.3f} |")


if __name__ == "__main__":
    main()
