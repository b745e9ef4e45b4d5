"""Load benchmark of `laari serve`: latency, throughput, memory and a model reload under load.

Starts the service as a separate process on a loopback port (the real `laari serve` command), then measures:

1. fresh 200-word descriptions one at a time (concurrency 1): latency p50/p95;
2. one repeated description (concurrency 1): latency p50/p95 (the prediction cache answers);
3. the batch throughput of the same work done in-process: ``Predictor.predict_many`` on batches of
   ``--batch`` fresh texts (with explanations unless ``--no-explain``, as the service is asked), and the
   embedder's raw document throughput;
4. ``--concurrency`` clients for ``--duration`` seconds with fresh texts: errors, throughput (compared with 3),
   latency, and the server's resident memory sampled every 2 s;
5. the same load for ``--reload-duration`` seconds while an admin reloads the model every ``--reload-every`` s
   (alternating between ``--model`` and ``--reload-model`` when given): failed requests.

The per-client limits are off: this measures what the service can do, and one benchmark client would otherwise
be refused after its first 30,000 characters a minute (``benchmarks/service_fairness.py`` measures the limits).
Every text is new to the service (sentences of the held-out split in a random order, cut to 200 words, with a
unique number), so the embedding cache cannot answer for it; the cache file is a temporary one.

    python benchmarks/service_load.py --models-dir models --json benchmarks/results/service_load.json

Requests only go to 127.0.0.1, and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_KEY = "bench-admin-" + os.urandom(8).hex()
PREDICT = "/v1/predict"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def summary(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_ms": round(1000 * percentile(latencies, 50), 1),
            "p95_ms": round(1000 * percentile(latencies, 95), 1),
            "mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
            "max_ms": round(1000 * max(latencies), 1) if latencies else None}


class TextMaker:
    """Unique ~200-word Finnish descriptions from the held-out split's sentences."""

    def __init__(self, seed: int = 0, words: int = 200):
        from classifier.text import split_sentences

        path = ROOT / "training" / "data" / "heldout.jsonl"
        self.sentences = [s for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                          for s in split_sentences(json.loads(line)["description"]) if len(s.split()) >= 5]
        self.rng = random.Random(seed)
        self.words = words
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        out: list[str] = []
        while len(out) < self.words:
            out.extend(self.rng.choice(self.sentences).split())
        text = " ".join(out[: self.words]).rstrip(".,;:") + "."
        return f"Hanke {self.n}-{self.rng.randrange(10**9)}. {text}"


def serve_command() -> list[str]:
    from laari.cli import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    if "serve" in names:
        return [sys.executable, "-c", "from laari.cli import main; main()", "serve"]
    return [sys.executable, "-m", "service"]


def start_server(args, tmp: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, LAARI_API_KEYS=f"{ADMIN_KEY}:admin", LAARI_FEEDBACK_URL=str(tmp / "feedback.sqlite"),
               LAARI_EMBEDDING_CACHE=str(tmp / "embedding-cache.sqlite"), LAARI_LOAD_IN_BACKGROUND="false",
               LAARI_BATCH_MAX_ITEMS=str(args.batch), LAARI_BATCH_WAIT_MS=str(args.wait_ms),
               # capacity, not sharing: the per-client limits (service_fairness.py measures them) are off
               LAARI_CLIENT_QUEUED_CHARS="0", LAARI_CLIENT_CHARS_PER_MINUTE="0", LAARI_CLIENT_REQUESTS_PER_MINUTE="0")
    if args.models_dir:
        env["LAARI_MODELS_DIR"] = str(Path(args.models_dir).resolve())
    cmd = serve_command() + ["--host", "127.0.0.1", "--port", str(args.port), "--log-level", "warning"]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp / "server.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server not ready in 300 s")


async def sequential(client: httpx.AsyncClient, texts: list[str]) -> tuple[list[float], int]:
    lat, errors = [], 0
    for t in texts:
        t0 = time.perf_counter()
        r = await client.post(PREDICT, json={"description": t})
        lat.append(time.perf_counter() - t0)
        errors += r.status_code != 200
    return lat, errors


async def load(client: httpx.AsyncClient, make_text, concurrency: int, duration: float, proc: psutil.Process,
               reload_every: float | None = None, versions: list[str | None] | None = None) -> dict:
    stop = time.perf_counter() + duration
    lat: list[float] = []
    errors: list[str] = []
    rss: list[tuple[float, int]] = []
    reloads: list[dict] = []
    seen_versions: dict[str, int] = {}
    started = time.perf_counter()

    async def worker():
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await client.post(PREDICT, json={"description": make_text()})
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t0)
                    v = r.json()["model_version"]
                    seen_versions[v] = seen_versions.get(v, 0) + 1
                else:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    async def sampler():
        while time.perf_counter() < stop:
            rss.append((round(time.perf_counter() - started, 1), proc.memory_info().rss))
            await asyncio.sleep(2)

    async def reloader():
        i = 0
        while time.perf_counter() + reload_every < stop:
            await asyncio.sleep(reload_every)
            version = versions[i % len(versions)]
            i += 1
            t0 = time.perf_counter()
            r = await client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY},
                                  json={"model": version} if version else {})
            reloads.append({"status": r.status_code, "seconds": round(time.perf_counter() - t0, 2),
                            "to": r.json().get("model_version") if r.status_code == 200 else r.text[:200]})

    tasks = [worker() for _ in range(concurrency)] + [sampler()]
    if reload_every:
        tasks.append(reloader())
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    mb = [m / 2**20 for _, m in rss]
    half = len(mb) // 2
    return {"concurrency": concurrency, "seconds": round(elapsed, 1), "ok": len(lat), "errors": len(errors),
            "error_samples": errors[:5], "throughput_per_s": round(len(lat) / elapsed, 2), "latency": summary(lat),
            "rss_mb": {"start": round(mb[0], 1) if mb else None, "end": round(mb[-1], 1) if mb else None,
                       "max": round(max(mb), 1) if mb else None,
                       "first_half_mean": round(statistics.fmean(mb[:half]), 1) if half else None,
                       "second_half_mean": round(statistics.fmean(mb[half:]), 1) if half else None},
            "reloads": reloads, "versions_seen": seen_versions}


def baseline(args, make_text) -> dict:
    """The same work in-process: predict_many on batches (explanations on), and the embedder alone."""
    from classifier.embedders import CachedEmbedder, TextKind, load_embedder
    from classifier.prediction import ProjectInput
    from classifier.predictor import Predictor
    from classifier.registry import Registry
    from classifier.text import document_text

    registry = Registry(args.models_dir) if args.models_dir else None
    emb = load_embedder(cache=False)
    predictor = Predictor.load(args.model, registry=registry, embedder=emb)
    predictor.predict_many([ProjectInput(make_text())])  # warm-up

    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.baseline_seconds:
        predictor.predict_many([ProjectInput(make_text()) for _ in range(args.batch)], explain=args.explain)
        n += args.batch
    predict_rate = n / (time.perf_counter() - t0)
    inner = emb.inner if isinstance(emb, CachedEmbedder) else emb
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.baseline_seconds / 2:
        inner.encode([document_text("", make_text()) for _ in range(args.batch)], TextKind.PASSAGE)
        n += args.batch
    embed_rate = n / (time.perf_counter() - t0)
    return {"batch": args.batch, "explain": args.explain, "predict_many_per_s": round(predict_rate, 2),
            "embed_documents_per_s": round(embed_rate, 2), "model": predictor.version,
            "embedder": predictor.bundle.manifest.get("embedder_id"),
            "channel_choice": predictor.bundle.manifest.get("channel_choice")}


async def run(args) -> dict:
    make_text = TextMaker(seed=args.seed)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                 "load_average_at_start": os.getloadavg()}, "explain": args.explain}
    if not args.skip_baseline:
        print("baseline: predict_many in-process ...", file=sys.stderr)
        results["baseline"] = baseline(args, make_text)
        print(json.dumps(results["baseline"]), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="laari-bench-") as tmp:
        proc, url = start_server(args, Path(tmp))
        ps = psutil.Process(proc.pid)
        try:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
                info = (await client.get("/v1/model")).json()
                results["model"] = {k: info.get(k) for k in ("version", "embedder_id", "channel_choice")}
                await sequential(client, [make_text() for _ in range(3)])  # warm-up
                print("fresh texts, concurrency 1 ...", file=sys.stderr)
                lat, err = await sequential(client, [make_text() for _ in range(args.fresh)])
                results["fresh_c1"] = {**summary(lat), "errors": err}
                print(json.dumps(results["fresh_c1"]), file=sys.stderr)
                print("repeated text, concurrency 1 ...", file=sys.stderr)
                same = make_text()
                await sequential(client, [same])
                lat, err = await sequential(client, [same] * args.repeat)
                results["repeated_c1"] = {**summary(lat), "errors": err}
                print(json.dumps(results["repeated_c1"]), file=sys.stderr)
                print(f"load: concurrency {args.concurrency} for {args.duration} s ...", file=sys.stderr)
                results["load"] = await load(client, make_text, args.concurrency, args.duration, ps)
                print(json.dumps(results["load"]), file=sys.stderr)
                if args.reload_duration > 0:
                    print(f"reload under load for {args.reload_duration} s ...", file=sys.stderr)
                    versions = [args.reload_model, args.model] if args.reload_model else [args.model]
                    results["reload_under_load"] = await load(client, make_text, args.concurrency,
                                                              args.reload_duration, ps, args.reload_every, versions)
                    print(json.dumps(results["reload_under_load"]), file=sys.stderr)
                results["server_batching"] = (await client.get("/ready")).json().get("batching")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if "baseline" in results:
        base = results["baseline"]["predict_many_per_s"]
        results["load"]["throughput_vs_batch_baseline"] = round(results["load"]["throughput_per_s"] / base, 3)
    results["targets"] = targets(results)
    return results


def targets(r: dict) -> dict:
    out = {"fresh_p95_le_500ms": r["fresh_c1"]["p95_ms"] <= 500,
           "repeated_p95_le_20ms": r["repeated_c1"]["p95_ms"] <= 20,
           "load_zero_errors": r["load"]["errors"] == 0}
    if "throughput_vs_batch_baseline" in r["load"]:
        out["load_throughput_within_20pct"] = r["load"]["throughput_vs_batch_baseline"] >= 0.8
    rss = r["load"]["rss_mb"]
    if rss["first_half_mean"]:
        out["rss_stable_within_10pct"] = rss["second_half_mean"] <= 1.10 * rss["first_half_mean"]
    if "reload_under_load" in r:
        rl = r["reload_under_load"]
        out["reload_zero_failed_requests"] = rl["errors"] == 0 and all(x["status"] == 200 for x in rl["reloads"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", help="Model registry (default: LAARI_MODELS_DIR or models/).")
    ap.add_argument("--model", help="Version to serve (default: the registry's current).")
    ap.add_argument("--reload-model", help="Second version to alternate with during the reload phase.")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--fresh", type=int, default=40, help="Fresh requests at concurrency 1.")
    ap.add_argument("--repeat", type=int, default=200, help="Repeated requests at concurrency 1.")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--reload-duration", type=float, default=40.0)
    ap.add_argument("--reload-every", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=8, help="Micro-batch size (server) and baseline batch size.")
    ap.add_argument("--wait-ms", type=float, default=5.0, help="Micro-batcher window (server).")
    ap.add_argument("--baseline-seconds", type=float, default=30.0)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-explain", dest="explain", action="store_false",
                    help="Ask for predictions without the explanation (?explain=false), in the baseline too.")
    ap.add_argument("--json", type=Path, help="Write the results here.")
    args = ap.parse_args()
    global PREDICT
    PREDICT = "/v1/predict" if args.explain else "/v1/predict?explain=false"
    results = asyncio.run(run(args))
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
