#!/usr/bin/env python3
"""Batch throughput: the batch machinery alone, warm embedding cache, cold cache against the embedder's own speed.

    LAARI_HOME=/tmp/laarihome LAARI_MODELS_DIR=/tmp/laarimodels \
        .venv/bin/python benchmarks/batch_throughput.py [--warm-rows 20000] [--workers 1,2] [--modes none,fast]
            [--cold-rows 96] [--machinery-rows 20000]

1. machinery: ``run_batch`` over a CSV with a stub predictor that returns one precomputed Prediction for every row
   (reading, validation, chunk files, checkpoints, final assembly, manifest): what the batch itself costs.
2. warm: the current model on rows whose texts are all in the embedding cache (the bundled corpus, cycled, with
   new ids), for each explanation mode (none; fast = terms + tag terms + similar projects, the batch default;
   full = + sentences) and each worker count (1 = in process, the default; 2 = ``laari batch --workers 2``). Each
   run starts from a freshly loaded Predictor, as a ``laari batch`` command does. Rows/s end to end (hashing the
   input, counting its rows, the first chunks with empty word tables included), and rows/s after the first quarter
   of the file (the steady rate on a long register).
3. cold: a fresh, empty embedding cache. The embedder alone (``SentenceTransformerEmbedder.encode`` on the same
   documents, no cache) against the whole batch on them (every text a cache miss).

Writes ``benchmarks/results/batch_throughput.json``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def corpus_rows(n: int, prefix: str, extra: str = "") -> list[dict]:
    recs = [json.loads(line) for f in ("train.jsonl", "heldout.jsonl")
            for line in (REPO / "training" / "data" / f).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"id": f"{prefix}-{i:06d}", "title": recs[i % len(recs)]["title"],
             "description": recs[i % len(recs)]["description"] + (extra.format(i=i) if extra else "")}
            for i in range(n)]


def write_csv(rows: list[dict], path: Path) -> Path:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "title", "description"])
        w.writeheader()
        w.writerows(rows)
    return path


class StubPredictor:
    """Returns the same finished Prediction for every valid row: the batch without the model."""

    def __init__(self, prediction, version: str):
        self.p = prediction
        self.version = version
        self.embedder = None

    def predict_many(self, items, explain=True, sentences=True, remember=True):
        return [self.p for _ in items]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warm-rows", type=int, default=20000)
    ap.add_argument("--workers", default="1,2", help="worker counts to measure the warm batch with")
    ap.add_argument("--cold-rows", type=int, default=96)
    ap.add_argument("--machinery-rows", type=int, default=20000)
    ap.add_argument("--modes", default="none,fast")
    ap.add_argument("--model", default=None, help="model version (default: the registry's current one)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_throughput.json")
    args = ap.parse_args()

    import torch

    from classifier.predictor import Predictor
    from classifier.text import document_text
    from batch.local_engine import LocalEngine
    from batch.run import run_batch
    from batch.settings import BatchSettings

    tmp = Path(tempfile.mkdtemp(prefix="laari-bench-"))
    results: dict = {"benchmark": "batch_throughput", "command": "python benchmarks/batch_throughput.py " +
                     " ".join(sys.argv[1:]), "machine": {"cpus": os.cpu_count(), "torch_threads":
                     torch.get_num_threads(), "python": platform.python_version(), "platform": platform.platform()}}

    predictor = Predictor.load(args.model)
    results["model"] = predictor.version
    print(f"model {predictor.version}, {os.cpu_count()} CPUs", file=sys.stderr)

    # 1. machinery
    rows = corpus_rows(args.machinery_rows, "M")
    inp = write_csv(rows, tmp / "machinery.csv")
    stub = StubPredictor(predictor.predict_one(rows[0]["description"], rows[0]["title"], explain=True), "stub")
    t = time.perf_counter()
    run_batch(inp, tmp / "machinery.jsonl", predictor=stub, settings=BatchSettings(chunk_size=256))
    dt = time.perf_counter() - t
    results["machinery"] = {"rows": len(rows), "seconds": round(dt, 2), "rows_per_s": round(len(rows) / dt, 1)}
    print(f"machinery: {len(rows) / dt:,.0f} rows/s", file=sys.stderr)

    # 2. warm cache: a fresh Predictor per run (as a `laari batch` command starts), in this process or workers
    rows = corpus_rows(args.warm_rows, "W")
    inp = write_csv(rows, tmp / "warm.csv")
    results["warm"] = {}
    for workers in [int(w) for w in args.workers.split(",")]:
        for mode in args.modes.split(","):
            fresh = Predictor.load(args.model)
            fresh.warm_up()
            marks: list[tuple[int, float]] = []
            t = time.perf_counter()
            res = run_batch(inp, tmp / f"warm-{workers}-{mode}.jsonl", predictor=fresh,
                            engine=LocalEngine(fresh, workers=workers),
                            settings=BatchSettings(chunk_size=256, explain=mode), restart=True,
                            progress=lambda done, total: marks.append((done, time.perf_counter())))
            dt = time.perf_counter() - t
            q = len(marks) // 4
            steady = (marks[-1][0] - marks[q][0]) / (marks[-1][1] - marks[q][1]) if len(marks) > 4 else None
            m = res.manifest
            key = f"{mode}, {workers} worker{'s' if workers > 1 else ''}"
            results["warm"][key] = {
                "explain": mode, "workers": workers, "rows": len(rows), "seconds": round(dt, 2),
                "rows_per_s": round(len(rows) / dt, 1),
                "rows_per_s_after_first_quarter": round(steady, 1) if steady else None,
                "cache_hits": m["embedding_cache"]["hits"], "cache_misses": m["embedding_cache"]["misses"]}
            print(f"warm {key}: {len(rows) / dt:,.1f} rows/s ({steady or 0:,.0f} after the first quarter; "
                  f"{m['embedding_cache']})", file=sys.stderr)

    # 3. cold cache: embedder alone vs the batch, on the same documents
    from classifier.embedders import CachedEmbedder, EmbeddingCache, TextKind
    from classifier.bundle import load_bundle

    rows = corpus_rows(args.cold_rows, "C")
    docs = [document_text(r["title"], r["description"]) for r in rows]
    inner = predictor.embedder.inner
    inner.encode(["lämmittely: mallin painot muistiin"], TextKind.PASSAGE)
    t = time.perf_counter()
    inner.encode(docs, TextKind.PASSAGE)
    emb_dt = time.perf_counter() - t
    results["cold"] = {"rows": len(rows), "embedder_alone": {"seconds": round(emb_dt, 2),
                                                             "rows_per_s": round(len(rows) / emb_dt, 2)}}
    print(f"cold: embedder alone {len(rows) / emb_dt:.2f} rows/s", file=sys.stderr)
    inp = write_csv(rows, tmp / "cold.csv")
    for mode in ("none", "fast"):
        cold = Predictor(load_bundle(predictor.bundle.path),
                         CachedEmbedder(inner, EmbeddingCache(tmp / f"cold-{mode}.sqlite")))
        t = time.perf_counter()
        res = run_batch(inp, tmp / f"cold-{mode}.jsonl", predictor=cold,
                        settings=BatchSettings(chunk_size=256, explain=mode))
        dt = time.perf_counter() - t
        cache = res.manifest["embedding_cache"]
        results["cold"][mode] = {"seconds": round(dt, 2), "rows_per_s": round(len(rows) / dt, 2),
                                 "share_of_embedder_throughput": round(emb_dt / dt, 4),
                                 "cache_misses": cache["misses"], "cache_hits": cache["hits"]}
        print(f"cold {mode}: {len(rows) / dt:.2f} rows/s = {100 * emb_dt / dt:.1f} % of the embedder "
              f"({cache})", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("| measurement | rows | rows/s | note |\n|---|---|---|---|")
    print(f"| batch machinery (stub predictor) | {results['machinery']['rows']} | "
          f"{results['machinery']['rows_per_s']:,} | reading, checkpoints, assembly, manifest |")
    for key, r in results["warm"].items():
        print(f"| warm cache, explain {key} | {r['rows']} | {r['rows_per_s']:,} | "
              f"{r['rows_per_s_after_first_quarter']:,} rows/s after the first quarter; "
              f"cache {r['cache_hits']} hits / {r['cache_misses']} misses |")
    c = results["cold"]
    print(f"| cold, embedder alone | {c['rows']} | {c['embedder_alone']['rows_per_s']} | |")
    for mode in ("none", "fast"):
        print(f"| cold, batch explain {mode} | {c['rows']} | {c[mode]['rows_per_s']} | "
              f"{100 * c[mode]['share_of_embedder_throughput']:.1f} % of the embedder's throughput |")


if __name__ == "__main__":
    main()
