#!/usr/bin/env python3
"""The Ray engine with the real model: same output as the local engine, and its throughput on this machine.

    LAARI_HOME=/tmp/laarihome LAARI_MODELS_DIR=/tmp/laarimodels .venv/bin/python benchmarks/batch_ray.py \
        [--rows 1000] [--workers 2] [--model VERSION] [--explain none]

Runs the same warm-cache register (the bundled corpus cycled with new ids) through the local engine and through
``--engine ray`` (a local Ray instance with ``--workers`` actors, each loading the model once), checks that the two
outputs are byte-identical, and reports rows/s of each (the Ray figure includes starting Ray and the actors).
Writes ``benchmarks/results/batch_ray.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default=None)
    ap.add_argument("--explain", choices=["none", "fast"], default="none")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_ray.json")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from batch_throughput import corpus_rows, write_csv

    tmp = Path(tempfile.mkdtemp(prefix="laari-bench-ray-"))
    inp = write_csv(corpus_rows(args.rows, "RAY"), tmp / "register.csv")
    common = ["--chunk-size", "128", "-q", "--json"] + (["--model", args.model] if args.model else []) + \
        (["--no-explain"] if args.explain == "none" else [])
    result = {"benchmark": "batch_ray", "command": "python benchmarks/batch_ray.py " + " ".join(sys.argv[1:]),
              "rows": args.rows, "cpus": os.cpu_count(), "explain": args.explain}
    for engine, extra in (("local", []), ("ray", ["--engine", "ray", "--workers", str(args.workers),
                                                  "--num-cpus", str(os.cpu_count())])):
        out = tmp / f"{engine}.jsonl"
        t = time.time()
        res = subprocess.run([sys.executable, "-m", "batch.cli", "batch", str(inp), str(out), *common,
                              *extra], cwd=REPO, capture_output=True, text=True)
        secs = time.time() - t
        if res.returncode != 0:
            raise SystemExit(res.stderr[-3000:])
        m = json.loads(res.stdout[res.stdout.index("{"):])
        result[engine] = {"seconds_with_startup": round(secs, 1), "rows_per_s": round(args.rows / secs, 1),
                          "prediction_seconds": m["prediction_seconds"], "model": m["model"]["version"],
                          "cache": m["embedding_cache"]}
        print(f"{engine}: {secs:.1f} s, {args.rows / secs:.1f} rows/s", file=sys.stderr)
    result["identical_outputs"] = (tmp / "local.jsonl").read_bytes() == (tmp / "ray.jsonl").read_bytes()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
