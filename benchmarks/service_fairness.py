"""Fair sharing under load: do two clients sending 30,000-character texts slow everyone else down?

Starts `laari serve` (the real command, as a separate process on a loopback port) once per phase and runs:

- ``unloaded``: eight normal clients, each sending a fresh ~1,000-character description and then pausing
  (exponential think time, mean ``--think`` s), with nobody else;
- ``loaded, limits off``: the same eight clients plus two heavy clients that send fresh 30,000-character
  descriptions back to back (on a 429 they wait the Retry-After, at most ``--heavy-backoff`` s, and try again with a
  new text), with every per-client limit set to 0 (off); the batcher still takes turns between clients;
- ``loaded, default limits``: the same, with the service's default per-client limits;
- ``unloaded`` again at the end, because the machine is shared and its speed drifts.

Every client has its own API key (so the limits count each one separately); every text is new (sentences of the
held-out split in a random order with a unique number, cut to length) and the embedding cache is off, so each
request costs the embedder its full length. The figure of merit is the normal clients' p95 latency loaded
against unloaded (target: within 2x).

    python benchmarks/service_fairness.py --json benchmarks/results/service_fairness.json

Requests only go to 127.0.0.1, and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from service_load import percentile, serve_command  # noqa: E402

PREDICT = "/v1/predict"
KEYS = [f"bench-client-{i:02d}-" + os.urandom(6).hex() for i in range(10)]


class Texts:
    """Fresh Finnish descriptions of about ``chars`` characters from the held-out split's sentences."""

    def __init__(self, seed: int):
        from classifier.text import split_sentences

        path = ROOT / "training" / "data" / "heldout.jsonl"
        self.sentences = [s for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                          for s in split_sentences(json.loads(line)["description"]) if len(s.split()) >= 5]
        self.rng = random.Random(seed)
        self.n = 0

    def __call__(self, chars: int) -> str:
        self.n += 1
        parts = [f"Hanke {self.n}-{self.rng.randrange(10**9)}."]
        size = len(parts[0])
        while size < chars:
            s = self.rng.choice(self.sentences)
            parts.append(s)
            size += len(s) + 1
        return " ".join(parts)[:chars].rsplit(" ", 1)[0] + "."


def start_server(port: int, tmp: Path, models_dir: str | None, limits_off: bool) -> subprocess.Popen:
    env = dict(os.environ, LAARI_API_KEYS=",".join(f"{k}:reviewer" for k in KEYS),
               LAARI_FEEDBACK_URL=str(tmp / "feedback.sqlite"), LAARI_EMBEDDING_CACHE="off",
               LAARI_LOAD_IN_BACKGROUND="false", LAARI_PREDICTION_CACHE_ITEMS="0")
    if limits_off:
        env.update(LAARI_CLIENT_QUEUED_CHARS="0", LAARI_CLIENT_CHARS_PER_MINUTE="0",
                   LAARI_CLIENT_REQUESTS_PER_MINUTE="0")
    if models_dir:
        env["LAARI_MODELS_DIR"] = str(Path(models_dir).resolve())
    log = open(tmp / f"server-{port}.log", "wb")
    proc = subprocess.Popen(serve_command() + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(tmp / f'server-{port}.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server not ready in 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stats(latencies: list[float]) -> dict:
    return {"n": len(latencies), "p50_s": round(percentile(latencies, 50), 3),
            "p95_s": round(percentile(latencies, 95), 3), "max_s": round(max(latencies), 3) if latencies else None}


async def phase(url: str, args, heavy: bool, seed: int) -> dict:
    make = Texts(seed)
    rng = random.Random(seed + 1)
    stop = time.perf_counter() + args.duration
    normal_lat: list[float] = []
    normal_errors: list[str] = []
    heavy_done: list[float] = []
    heavy_refused: dict[str, int] = {}

    async def normal(client: httpx.AsyncClient, key: str):
        await asyncio.sleep(rng.uniform(0, args.think))  # spread the starts
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await client.post(PREDICT, json={"description": make(args.normal_chars)},
                                      headers={"X-API-Key": key})
                if r.status_code == 200:
                    normal_lat.append(time.perf_counter() - t0)
                else:
                    normal_errors.append(f"{r.status_code}: {r.text[:160]}")
            except httpx.HTTPError as exc:
                normal_errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(min(rng.expovariate(1 / args.think), 4 * args.think))

    async def hog(client: httpx.AsyncClient, key: str):
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                r = await client.post(PREDICT, json={"description": make(args.heavy_chars)},
                                      headers={"X-API-Key": key}, timeout=600)
            except httpx.HTTPError as exc:
                heavy_refused[type(exc).__name__] = heavy_refused.get(type(exc).__name__, 0) + 1
                continue
            if r.status_code == 200:
                heavy_done.append(time.perf_counter() - t0)
            else:
                heavy_refused[str(r.status_code)] = heavy_refused.get(str(r.status_code), 0) + 1
                wait = float(r.headers.get("Retry-After", "1"))
                await asyncio.sleep(min(wait, args.heavy_backoff))

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        tasks = [normal(client, KEYS[i]) for i in range(args.normal_clients)]
        if heavy:
            tasks += [hog(client, KEYS[8 + i]) for i in range(2)]
        await asyncio.gather(*tasks)
        ready = (await client.get("/ready")).json()
    return {"normal": {**stats(normal_lat), "errors": len(normal_errors), "error_samples": normal_errors[:3]},
            "heavy": {"answered": len(heavy_done), "latency": stats(heavy_done) if heavy_done else None,
                      "refused": heavy_refused},
            "server": {"batching": ready.get("batching"), "fairness": ready.get("fairness")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    ap.add_argument("--normal-clients", type=int, default=8)
    ap.add_argument("--normal-chars", type=int, default=1000)
    ap.add_argument("--heavy-chars", type=int, default=30000)
    ap.add_argument("--think", type=float, default=3.0, help="normal clients' mean pause between requests (s)")
    ap.add_argument("--heavy-backoff", type=float, default=2.0, help="longest wait of a heavy client after a 429")
    ap.add_argument("--port", type=int, default=8771)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "service_fairness.json")
    args = ap.parse_args()

    plan = [("unloaded", False, False), ("loaded, limits off", True, True),
            ("loaded, default limits", True, False), ("unloaded again", False, False)]
    out = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg())},
           "settings": {k: v for k, v in vars(args).items() if k not in ("json",)}, "phases": {}}
    out["settings"]["models_dir"] = str(args.models_dir)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, heavy, limits_off) in enumerate(plan):
            proc = start_server(args.port + i, Path(tmp), args.models_dir, limits_off)
            try:
                result = asyncio.run(phase(f"http://127.0.0.1:{args.port + i}", args, heavy, seed=i))
            finally:
                stop_server(proc)
            result["load_average_after"] = list(os.getloadavg())
            out["phases"][name] = result
            n = result["normal"]
            print(f"{name:24s} normal p50 {n['p50_s']:.2f} s  p95 {n['p95_s']:.2f} s  n {n['n']}  "
                  f"errors {n['errors']}  heavy answered {result['heavy']['answered']} "
                  f"refused {result['heavy']['refused']}", flush=True)
    base = max(out["phases"]["unloaded"]["normal"]["p95_s"], out["phases"]["unloaded again"]["normal"]["p95_s"])
    out["p95_ratio_vs_slower_unloaded"] = {
        name: round(out["phases"][name]["normal"]["p95_s"] / base, 2) for name, heavy, _ in plan if heavy}
    print("p95 loaded / unloaded:", out["p95_ratio_vs_slower_unloaded"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
