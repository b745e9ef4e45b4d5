#!/usr/bin/env python3
"""Pool discovery on the bundled corpus (training/data/train.jsonl + heldout.jsonl) without labels.

    LAARI_HOME=/tmp/laarihome .venv/bin/python benchmarks/batch_discover.py [--seeds 0,1,2] [--features both]

Clusters the 779 descriptions with ``training.discover.discover`` (k chosen in 2..10 by silhouette and stability;
labels are never read by the clustering), then scores the pools against the true laarit (5 laarit + ei_teemassa):
adjusted Rand index (target >= 0.5) and NMI. Repeated for several seeds, and once for each feature set.
Writes ``benchmarks/results/batch_discover.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--features", default="both,embedding,lexical")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_discover.json")
    args = ap.parse_args()

    from classifier.embedders import load_embedder
    from training.discover import Corpus, DiscoverSettings, agreement, discover, load_corpus
    from training.pipeline import DEFAULT_HELDOUT, DEFAULT_TRAIN

    labelled = load_corpus([DEFAULT_TRAIN, DEFAULT_HELDOUT])
    truth = labelled.labels
    unlabelled = Corpus(labelled.ids, labelled.titles, labelled.texts, None, labelled.sources)  # no labels
    embedder = load_embedder()
    runs = []
    for features in args.features.split(","):
        seeds = [int(s) for s in args.seeds.split(",")] if features == "both" else [0]
        for seed in seeds:
            t = time.time()
            res = discover(unlabelled, embedder, DiscoverSettings(seed=seed, features=features))
            secs = time.time() - t
            pred = [a["pool"] for a in res["assignments"]]
            ag = agreement(truth, pred, [p["id"] for p in res["report"]["pools"]])
            run = {"features": features, "seed": seed, "k": res["k"], "ari": ag["ari"], "nmi": ag["nmi"],
                   "seconds": round(secs, 1), "k_selection": res["k_selection"],
                   "pools": [{"id": p["id"], "size": p["size"], "majority_label": a["majority_label"],
                              "purity": a["purity"], "silhouette": p["silhouette"], "verdict": p["verdict"]}
                             for p, a in zip(res["report"]["pools"], ag["per_pool"])],
                   "contingency": ag["contingency"]}
            runs.append(run)
            print(f"{features} seed {seed}: k={res['k']} ARI {ag['ari']:.3f} NMI {ag['nmi']:.3f} ({secs:.0f} s)",
                  file=sys.stderr)
    result = {"benchmark": "batch_discover", "command": "python benchmarks/batch_discover.py " + " ".join(sys.argv[1:]),
              "corpus": {"files": labelled.sources, "projects": len(labelled), "labels_used_for_clustering": False,
                         "true_labels": sorted(set(truth))},
              "embedder": embedder.id, "target_ari": 0.5, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("| features | seed | k | ARI | NMI | seconds |\n|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['features']} | {r['seed']} | {r['k']} | {r['ari']:.3f} | {r['nmi']:.3f} | {r['seconds']} |")


if __name__ == "__main__":
    main()
