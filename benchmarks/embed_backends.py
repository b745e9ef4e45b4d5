"""The embedding backends side by side: torch (sentence-transformers) against the ONNX builds (int8 and fp32, ONNX
Runtime). Measured in one run on the same machine:

1. throughput of the embedder alone on fresh texts (no cache): the documents of the real sample and of the
   register held-out split, in batches of ``--batch``; the backends alternate batch by batch (the first one
   rotates), so a change in the machine's load hits all of them alike; texts/s over all batches and the median
   per-batch speed-up against torch;
2. cosine of each document's vector to the torch vector (min / 5th percentile / median);
3. routing on the real sample (``--sample``) with the default model's heads (trained on torch vectors): the share
   of projects whose laari is the same as with torch vectors, and macro-F1 (verdicts with >= 5 projects, and all
   six) for each backend; the ONNX backend is accepted when the same laari >= 95 % and macro-F1 within 0.01;
4. memory: resident set of a fresh process after loading each backend and embedding 16 documents;
5. end to end: ``laari predict --input SAMPLE --output ...`` as a user runs it (cache off, a fresh process each
   time), ``--e2e-repeats`` times per backend, alternating; median wall time and the speed-up.

    python benchmarks/embed_backends.py --json benchmarks/results/embed_backends.json

``--heads-model VERSION`` scores the routing with another model too (e.g. one trained with
``LAARI_EMBED_BACKEND=onnx laari train --no-promote``), against the same torch-vector baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SAMPLE = ROOT.parent / "shared" / "real-sample" / "projects.jsonl"
SUPPORTED_MIN = 5  # verdicts with at least this many projects in the sample count in the "supported" macro-F1


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_embedders(names: list[str]):
    from classifier.embedders import ensure_default_model, ensure_onnx_model
    from classifier.embedders.onnx_build import QUANTISATIONS
    from classifier.embedders.onnx_runtime import OnnxEmbedder
    from classifier.embedders.sentence_transformer import SentenceTransformerEmbedder

    source = ensure_default_model()
    out = {}
    for name in names:
        if name == "torch":
            out[name] = SentenceTransformerEmbedder(source, device="cpu")
        elif name.startswith("onnx-") and name[5:] in QUANTISATIONS:
            out[name] = OnnxEmbedder(ensure_onnx_model(source, name[5:]))  # built here on first use
        else:
            raise SystemExit(f"unknown backend {name}")
    return out


def documents(paths: list[Path]) -> list[str]:
    from classifier.text import join_document, normalize

    docs = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                docs.append(join_document(normalize(row.get("title") or ""), normalize(row["description"])))
    return docs


def throughput(embedders: dict, docs: list[str], batch: int) -> tuple[dict, dict]:
    names = list(embedders)
    for emb in embedders.values():  # load the models and tokenizers before any clock runs
        emb.encode(["Hankkeessa kehitetään työhyvinvointia."])
    seconds = {n: 0.0 for n in names}
    per_batch = {n: [] for n in names}
    vectors = {n: [] for n in names}
    batches = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    for b, texts in enumerate(batches):
        order = names[b % len(names):] + names[: b % len(names)]
        for n in order:
            t = time.perf_counter()
            v = embedders[n].encode(texts)
            dt = time.perf_counter() - t
            seconds[n] += dt
            per_batch[n].append(dt)
            vectors[n].append(v)
    vectors = {n: np.concatenate(v) for n, v in vectors.items()}
    result = {}
    for n in names:
        speedups = [t / s for t, s in zip(per_batch["torch"], per_batch[n])]
        cos = np.sum(vectors[n] * vectors["torch"], axis=1)
        result[n] = {"texts": len(docs), "seconds": round(seconds[n], 2),
                     "texts_per_s": round(len(docs) / seconds[n], 2),
                     "median_batch_speedup_vs_torch": round(statistics.median(speedups), 3),
                     "cosine_to_torch": {"min": round(float(cos.min()), 4),
                                         "p5": round(float(np.percentile(cos, 5)), 4),
                                         "median": round(float(np.median(cos)), 4)}}
    return result, vectors


def routing(embedders: dict, sample: Path, heads_models: list[str | None], known: dict[str, dict]) -> dict:
    """Real-sample routing per backend, each scored with the given models' heads, against torch vectors with the
    default model's heads."""
    from classifier.bundle import load_bundle
    from classifier.embedders import CachedEmbedder, EmbeddingCache, TextKind
    from classifier.predictor import Predictor
    from classifier.registry import Registry
    from training.datasets import load_labelled
    from training.evaluate import evaluate_predictor

    out: dict = {}
    baseline = None
    cached = {n: CachedEmbedder(e, EmbeddingCache(None, memory_items=100_000)) for n, e in embedders.items()}
    for n, vectors in known.items():  # the throughput part's vectors of the same documents: not embedded twice
        cached[n].cache.put_many({cached[n].cache.key(cached[n].id, TextKind.PASSAGE, d): v for d, v in vectors.items()})
    for model in heads_models:
        bundle = load_bundle(Registry().resolve(model))
        for n, emb in cached.items():
            predictor = Predictor(bundle, emb)
            labelled = load_labelled(sample, predictor.taxonomy)
            metrics, rows = evaluate_predictor(predictor, labelled)
            laari = [r["laari"] for r in rows]
            confidence = np.array([r["confidence"] for r in rows])
            if baseline is None:  # torch vectors, the default model's heads: the first pair
                baseline, baseline_confidence = laari, confidence
            counts = {v: sum(g == v for g in labelled.laari) for v in set(labelled.laari)}
            out[f"{bundle.version} heads ({bundle.manifest.get('embedder_id')}) / {n} vectors"] = {
                "same_laari_as_torch": round(float(np.mean([a == b for a, b in zip(laari, baseline)])), 3),
                "verdict_probability_change_vs_torch": {
                    "mean": round(float(np.abs(confidence - baseline_confidence).mean()), 4),
                    "max": round(float(np.abs(confidence - baseline_confidence).max()), 4)},
                "macro_f1_supported": metrics["laari"].get("macro_f1_supported"),
                "macro_f1_all": metrics["laari"]["macro_f1"],
                "supported_labels": metrics["laari"].get("supported_labels"),
                "tag_micro_f1": metrics["tags"]["micro_f1"],
                "n": len(rows), "label_counts": counts,
            }
    return out


def memory_child(name: str, docs: list[str]) -> None:
    import psutil

    before = psutil.Process().memory_info().rss
    emb = make_embedders([name])[name]
    emb.encode(docs[:16])
    print(json.dumps({"rss_mb": round(psutil.Process().memory_info().rss / 2**20),
                      "rss_before_load_mb": round(before / 2**20)}))


def end_to_end(sample: Path, backends: list[str], repeats: int) -> dict:
    env = dict(os.environ, LAARI_EMBEDDING_CACHE="off", PYTHONPATH=str(ROOT))
    times: dict[str, list[float]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for b in backends if r % 2 == 0 else backends[::-1]:
                out = Path(tmp) / f"{b}-{r}.jsonl"
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "laari", "predict", "--input", str(sample), "--output",
                                str(out)], env=dict(env, LAARI_EMBED_BACKEND=b), check=True, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[b].append(time.perf_counter() - t)
        laari = {b: [json.loads(x)["laari"] for x in (Path(tmp) / f"{b}-0.jsonl").read_text().splitlines()]
                 for b in backends}
    med = {b: statistics.median(v) for b, v in times.items()}
    return {"command": "laari predict --input SAMPLE --output OUT (LAARI_EMBEDDING_CACHE=off)",
            "seconds": {b: [round(x, 2) for x in v] for b, v in times.items()},
            "median_s": {b: round(v, 2) for b, v in med.items()},
            "speedup_vs_torch": {b: round(med["torch"] / med[b], 3) for b in backends},
            "same_laari_as_torch": {b: round(float(np.mean([x == y for x, y in zip(laari[b], laari["torch"])])), 3)
                                    for b in backends}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="torch,onnx-int8pc,onnx-int8,onnx-fp32",
                    help="Which to compare (torch first).")
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="Time only the first N documents (the sample's come first).")
    ap.add_argument("--heads-model", action="append", default=[], help="Also score with this model's heads.")
    ap.add_argument("--e2e-repeats", type=int, default=3)
    ap.add_argument("--skip", default="", help="Comma-separated parts to leave out: throughput,routing,memory,e2e")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    from training.pipeline import REGISTER_HELDOUT

    docs = documents([args.sample, REGISTER_HELDOUT])
    if args.memory_child:
        memory_child(args.memory_child, docs)
        return
    names = [b for b in args.backends.split(",") if b]
    skip = set(args.skip.split(","))
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_average_start": load_average()},
                    "backends": names, "documents": len(docs), "batch": args.batch,
                    "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    embedders = make_embedders(names)
    known: dict[str, dict] = {}
    if "throughput" not in skip:
        timed = docs[: args.limit] if args.limit else docs
        result["throughput"], vectors = throughput(embedders, timed, args.batch)
        known = {n: dict(zip(timed, v)) for n, v in vectors.items()}
        print(json.dumps(result["throughput"], indent=1), flush=True)
    if "routing" not in skip:
        result["routing"] = routing(embedders, args.sample, [None] + args.heads_model, known)
        print(json.dumps(result["routing"], indent=1), flush=True)
    if "memory" not in skip:
        result["memory"] = {}
        for n in names:
            proc = subprocess.run([sys.executable, __file__, "--memory-child", n, "--sample", str(args.sample)],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
            result["memory"][n] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(result["memory"], indent=1), flush=True)
    if "e2e" not in skip:
        result["end_to_end"] = end_to_end(args.sample, ["torch", "onnx"], args.e2e_repeats)
        print(json.dumps(result["end_to_end"], indent=1), flush=True)
    result["machine"]["load_average_end"] = load_average()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
