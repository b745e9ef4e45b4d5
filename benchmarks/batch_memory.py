#!/usr/bin/env python3
"""Batch memory on a 100,000-row register: the whole `laari batch` process (peak RSS) stays bounded.

    LAARI_HOME=/tmp/laarihome LAARI_MODELS_DIR=/tmp/laarimodels \
        .venv/bin/python benchmarks/batch_memory.py [--rows 100000] [--explain] [--workers 1] \
            [--input csv|eura-xlsx] [--output jsonl|csv|parquet|xlsx] [--workdir /tmp/laari-bench-mem]

Builds a register of ``--rows`` rows from the bundled corpus (cycled, new ids, a few error rows: empty texts and
duplicate ids): a CSV, or (``--input eura-xlsx``) an Excel file as EURA 2021 exports it (a title row above the
header, the export's column names, two footer rows; read with no column options); runs ``python -m batch.cli batch IN OUT`` (the `laari batch` command) as a child process
and samples its RSS (with its children) every second with psutil, alongside the rows done (from the chunk records).
The peak is also read from ``getrusage(RUSAGE_CHILDREN)`` (the largest single process). By default explanations
are off (``--no-explain``); ``--explain`` measures with them on, ``--workers`` with worker processes (their RSS is
added to the parent's; they share the parent's pages, so that sum overstates what they take: the proportional set
size, PSS, counting each shared page once, is sampled too).

``--output`` chooses the output format (``xlsx``: the streamed Excel sheet).

Writes ``benchmarks/results/batch_memory.json`` (or ``--out``; peak, RSS at 10/50/90 % of the rows, rows/s, samples).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def register_rows(n: int):
    """``(i, id, title, description)`` of ``n`` register rows cycled from the corpus, with an empty description
    (row 17 of every 5,000) and a duplicate id (row 29) now and then, as real registers have."""
    recs = [json.loads(line) for f in ("train.jsonl", "heldout.jsonl")
            for line in (REPO / "training" / "data" / f).read_text(encoding="utf-8").splitlines() if line.strip()]
    for i in range(n):
        r = recs[i % len(recs)]
        rid = f"S{300000 + i - (1 if i % 5000 == 29 else 0)}"
        yield i, rid, r["title"], "" if i % 5000 == 17 else r["description"]


def build_register(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "description"])
        for _, rid, title, desc in register_rows(n):
            w.writerow([rid, title, desc])


def build_eura_export(path: Path, n: int) -> None:
    """The same rows as ``build_register``, as an EURA 2021 export (streamed, so building it stays small too)."""
    import datetime as dt

    from openpyxl import Workbook

    sys.path.insert(0, str(REPO))
    from classifier.register_layouts import EURA_2021

    header = [c + " " if c == "Hankekoodi" else c for c in EURA_2021.columns]  # the export's trailing space
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Hankkeet")
    ws.append(["Hankkeet, EURA 2021 - hakutulos"])
    ws.append([])
    ws.append(header)
    for i, rid, title, desc in register_rows(n):
        values = {"Hankekoodi": rid, "Rahasto": "ESR+", "Tl": "4", "Et": ("4.1", "4.4", "4.6", "4.11")[i % 4],
                  "Hankkeen nimi": title, "Toteuttajan nimi": f"Toteuttaja {i % 97}",
                  "Aloituspvm": dt.datetime(2023, 1 + i % 12, 1), "Päättymispvm": dt.datetime(2025, 1 + i % 12, 28),
                  "Suunniteltu rahoitus yhteensä": 100000 + i, "Sijainti": "Kanta-Häme",
                  EURA_2021.description: desc, "Hankekuvauksen osoite": f"https://eura2021.fi/hankkeet/{rid}"}
        ws.append([values.get(c) for c in EURA_2021.columns])
    ws.append(["Yhteensä"])
    ws.append(["Raportti luotu 08.12.2026"])
    wb.save(path)


def main():
    import psutil

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--input", choices=["csv", "eura-xlsx"], default="csv", help="the register's format")
    ap.add_argument("--output", choices=["jsonl", "csv", "parquet", "xlsx"], default="jsonl",
                    help="the output's format")
    ap.add_argument("--model", default=None, help="model version (default: the registry's current one)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/laari-bench-mem"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_memory.json")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.input == "csv":
        inp = args.workdir / f"register-{args.rows}.csv"
        build = build_register
    else:
        inp = args.workdir / f"eura2021-export-{args.rows}.xlsx"
        build = build_eura_export
    if not inp.exists():
        print(f"building {inp}", file=sys.stderr)
        build(inp, args.rows)
    out = args.workdir / f"results-{args.rows}.{args.output}"
    for p in (out, out.with_name(out.name + ".manifest.json")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "batch.cli", "batch", str(inp), str(out), "--quiet", "--restart",
           "--chunk-size", str(args.chunk_size), "--explain" if args.explain else "--no-explain",
           "--workers", str(args.workers)]
    if args.model:
        cmd += ["--model", args.model]
    print(" ".join(cmd), file=sys.stderr)
    t0 = time.time()
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    journal = out.with_name(out.name + ".partial") / "journal.jsonl"  # one line per finished chunk
    samples = []
    while child.poll() is None:
        try:
            family = [proc] + proc.children(recursive=True)
            rss = sum(p.memory_info().rss for p in family)
            # PSS: each shared page counted once across the processes (forked workers share the model's pages)
            pss = sum(getattr(p.memory_full_info(), "pss", 0) for p in family) if len(family) > 1 else rss
        except psutil.Error:
            break
        rows = 0
        try:
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    rows += json.loads(line).get("chunk", {}).get("rows", 0)
                except ValueError:  # a line being written
                    pass
        except OSError:
            pass
        samples.append({"t": round(time.time() - t0, 1), "rows": rows, "rss_mb": round(rss / 2**20, 1),
                        "pss_mb": round(pss / 2**20, 1)})
        if len(samples) % 60 == 0:
            print(f"{samples[-1]}", file=sys.stderr)
        time.sleep(1.0)
    stdout, stderr = child.communicate()
    wall = time.time() - t0
    if child.returncode != 0:
        print(stderr, file=sys.stderr)
        raise SystemExit(f"batch failed: {child.returncode}")
    peak_rusage_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())

    def rss_at(share):
        target = share * args.rows
        cands = [s for s in samples if s["rows"] >= target]
        return cands[0]["rss_mb"] if cands else None

    result = {
        "benchmark": "batch_memory", "command": "python benchmarks/batch_memory.py " + " ".join(sys.argv[1:]),
        "batch_command": " ".join(cmd[1:]), "rows": args.rows, "input": args.input, "output": args.output,
        "input_mb": round(inp.stat().st_size / 2**20, 1),
        "output_mb": round(out.stat().st_size / 2**20, 1), "explain": args.explain, "model": manifest["model"]["version"],
        "seconds": round(wall, 1), "rows_per_s": round(args.rows / wall, 1),
        "peak_rss_mb_sampled": max(s["rss_mb"] for s in samples) if samples else None,
        "peak_rss_mb_rusage": round(peak_rusage_mb, 1),
        "peak_pss_mb_sampled": max(s["pss_mb"] for s in samples) if samples else None,
        "rss_mb_at": {"10%": rss_at(0.1), "50%": rss_at(0.5), "90%": rss_at(0.9)},
        "counts": {k: manifest["counts"][k] for k in ("rows", "predicted", "errors")},
        "skipped_rows": len(manifest["input"].get("skipped_rows") or []),
        "embedding_cache": manifest["embedding_cache"], "cpus": os.cpu_count(),
        "samples": samples[:: max(1, len(samples) // 200)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
