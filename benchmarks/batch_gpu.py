#!/usr/bin/env python3
"""A cold ``laari batch`` on a GPU (or on the CPU): N synthetic register rows, no embedding cache, the command
as a user runs it, timed from process start to exit.

On a machine with a CUDA GPU (torch with CUDA, the default embedding model built by ``laari setup``, a trained
model in the registry, e.g. by ``make setup``, or ``LAARI_MODELS_DIR`` pointing at one):

    .venv/bin/python benchmarks/batch_gpu.py --device cuda              # 20,000 rows: the figure for BENCHMARKS.md
    .venv/bin/python benchmarks/batch_gpu.py --device cpu --rows 2000   # the CPU of the same machine, to compare

A quick check anywhere (do not run 20,000 rows on a CPU: the embedder reads about 5 texts/s on two cores):

    .venv/bin/python benchmarks/batch_gpu.py --rows 200 --device cpu

1. Builds N rows from the bundled texts (``training/data/*.jsonl``, about 1,600 projects): row i takes a title and
   the first half of one project's sentences followed by the second half of another's, so rows are as long and as
   Finnish as register texts and no two are identical (checked).
2. Runs ``python -m laari batch register.jsonl results.jsonl --device D --json -q`` in a child process of this
   script (so that it can read torch's peak GPU memory at the end) with ``LAARI_EMBEDDING_CACHE=off``: every text
   is embedded; imports, model loading and the first CUDA kernels are part of the time, as for a user.
3. Prints and writes ``benchmarks/results/batch_gpu_<device>.json``: device, card (``torch.cuda.get_device_name``),
   rows, seconds, rows/s, the run's own seconds from the manifest (after start-up), peak GPU memory (allocated and
   reserved by torch) on CUDA, the embedder id and device the manifest records, and the command.

``--explain`` chooses the explanation (``fast``, the batch default; ``none`` = ``--no-explain``; ``full`` =
``--explain-sentences``); ``--model`` a model version or folder (default: the registry's current one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXPLAIN_FLAGS = {"fast": [], "none": ["--no-explain"], "full": ["--explain-sentences"]}


def bundled_projects() -> list[dict]:
    """Every project of the bundled corpus files with a title and a description."""
    out = []
    for path in sorted((REPO / "training" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("description") and rec.get("title"):
                    out.append({"title": rec["title"], "description": rec["description"]})
    return out


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` register rows, no two descriptions alike: the first half of one project's sentences, then the second
    half of another's (a third project's sentence added where a pair repeats)."""
    from classifier.text import split_sentences

    projects = bundled_projects()
    sentences = [split_sentences(p["description"]) or [p["description"]] for p in projects]
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        a, b = rng.randrange(len(projects)), rng.randrange(len(projects))
        head, tail = sentences[a], sentences[b]
        parts = head[: (len(head) + 1) // 2] + tail[len(tail) // 2:]
        text = " ".join(parts)
        while text in seen:
            extra = sentences[rng.randrange(len(projects))]
            text += " " + extra[rng.randrange(len(extra))]
        seen.add(text)
        rows.append({"id": f"S9{len(rows) + 1:06d}", "title": projects[a]["title"], "description": text})
    return rows


def child(result_path: str, args: list[str]) -> int:
    """In the child process: the ``laari`` command with ``args``, then torch's GPU figures into ``result_path``."""
    from laari.cli import app

    try:
        code = app(args=args, prog_name="laari", standalone_mode=False) or 0
    except SystemExit as exc:  # typer.Exit and click's own exits
        code = exc.code or 0
    info: dict = {"exit_code": code}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        info.update(card=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                    peak_allocated_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                    peak_reserved_mb=round(torch.cuda.max_memory_reserved() / 2**20, 1))
    if torch is not None:
        info["torch"] = torch.__version__
    Path(result_path).write_text(json.dumps(info))
    return int(code)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    from classifier.config import cuda_batch_size
    from classifier.result_rows import manifest_path

    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        raise SystemExit(child(sys.argv[2], sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--explain", choices=sorted(EXPLAIN_FLAGS), default="fast")
    ap.add_argument("--model", default=None, help="model version or folder (default: the current one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="where the register and results go (default: a "
                    "temporary folder, removed afterwards)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/batch_gpu_<device>.json")
    args = ap.parse_args()

    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="laari-batch-gpu-")
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        rows = synthetic_rows(args.rows, args.seed)
        assert len({r["description"] for r in rows}) == len(rows)
        register = work / "register.jsonl"
        register.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        built = time.perf_counter() - t
        output = work / "results.jsonl"
        for stale in (output, manifest_path(output)):
            stale.unlink(missing_ok=True)
        laari_args = ["batch", str(register), str(output), "--device", args.device, "--json", "-q",
                      *EXPLAIN_FLAGS[args.explain], *(["--model", args.model] if args.model else [])]
        info_path = work / "child.json"
        env = {**os.environ, "LAARI_EMBEDDING_CACHE": "off", "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        t = time.perf_counter()
        res = subprocess.run([sys.executable, __file__, "--child", str(info_path), "--", *laari_args], cwd=REPO,
                             env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if res.returncode != 0:
            raise SystemExit(f"laari {' '.join(laari_args)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n"
                             f"{res.stderr[-4000:]}")
        info = json.loads(info_path.read_text())
        manifest = json.loads(manifest_path(output).read_text())
    finally:
        if tmp is not None:
            tmp.cleanup()

    if manifest["counts"]["rows"] != args.rows or manifest["embedding_cache"]["hits"]:
        raise SystemExit(f"not a cold run of {args.rows} rows: {manifest['counts']['rows']} rows, "
                         f"{manifest['embedding_cache']['hits']} cache hits")
    devices = manifest["embedding"]["devices"]
    device = devices[0] if len(devices) == 1 else args.device
    result = {
        "device": device,
        "card": info.get("card") if device == "cuda" else None,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "rows": args.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(args.rows / seconds, 2),
        "run_seconds": manifest["seconds"],
        "run_rows_per_s": round(args.rows / manifest["seconds"], 2) if manifest["seconds"] else None,
        "startup_seconds": round(seconds - manifest["seconds"], 2),
        "peak_gpu_allocated_mb": info.get("peak_allocated_mb"),
        "peak_gpu_reserved_mb": info.get("peak_reserved_mb"),
        "embedding": manifest["embedding"],
        "embedding_cache": manifest["embedding_cache"],
        "errors": manifest["counts"]["errors"],
        "explain": args.explain,
        "model": manifest["model"]["version"],
        "cuda_batch_size": cuda_batch_size() if device == "cuda" else None,
        "torch": info.get("torch"),
        "cuda": info.get("cuda"),
        "build_register_seconds": round(built, 2),
        "command": "LAARI_EMBEDDING_CACHE=off laari " + " ".join(
            a if a not in (str(register), str(output)) else Path(a).name for a in laari_args),
        "python": platform.python_version(),
    }
    out = args.out or REPO / "benchmarks" / "results" / f"batch_gpu_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
