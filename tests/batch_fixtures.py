"""Helpers for the batch, report and discover tests: a picklable predictor factory over the session's small model
with the hashing embedder, synthetic registers in every input format, and a command-line entry point that the
kill-and-resume test runs as a subprocess:

    python -m tests.batch_fixtures run IN OUT BUNDLE_DIR [--resume] [--delay SECONDS] [--chunk-size N]
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HashingFactory:
    """Builds ``Predictor(load_bundle(path), HashingEmbedder())``; picklable, so Ray workers can call it."""

    bundle_path: str
    delay: float = 0.0  # seconds per predict_many call (to make a run slow enough to kill)

    def __call__(self, device: str | None = None):
        from classifier.bundle import load_bundle
        from classifier.predictor import Predictor
        from tests.conftest import HashingEmbedder

        p = Predictor(load_bundle(self.bundle_path), HashingEmbedder())
        if self.delay:
            original = p.predict_many

            def slow(items, explain=True, sentences=True, remember=True):
                time.sleep(self.delay)
                return original(items, explain=explain, sentences=sentences, remember=remember)

            p.predict_many = slow
        return p


FIELDS = ("id", "title", "description")


def register_rows(corpus, n: int, *, prefix: str = "R", with_errors: bool = True) -> list[dict]:
    """``n`` rows cycling through the corpus with new ids; with ``with_errors`` a few rows that must come out
    as error rows: an empty description (row 3), a duplicate id (row 5 repeats row 2's id), a missing id (row 7)."""
    rows = []
    for i in range(n):
        j = i % len(corpus)
        rows.append({"id": f"{prefix}-{i + 1:05d}", "title": corpus.titles[j], "description": corpus.descriptions[j]})
    if with_errors and n >= 8:
        rows[2]["description"] = "   "
        rows[4]["id"] = rows[1]["id"]
        rows[6]["id"] = ""
    return rows


def write_rows(rows: list[dict], path: Path) -> Path:
    """Write rows as .jsonl, .csv, .tsv, .parquet or .xlsx (by extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif suffix in (".csv", ".tsv"):
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, delimiter="\t" if suffix == ".tsv" else ",")
            w.writeheader()
            w.writerows(rows)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif suffix == ".xlsx":
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("register")
        ws.append(list(FIELDS))
        for r in rows:
            ws.append([r.get(k) for k in FIELDS])
        wb.save(path)
    else:
        raise ValueError(suffix)
    return path


def main(argv: list[str]) -> int:
    import argparse

    from batch.local_engine import LocalEngine
    from batch.run import run_batch
    from batch.settings import BatchSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("bundle")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--chunk-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    predictor = HashingFactory(args.bundle, args.delay)()

    def after_chunk(index: int):
        print(f"chunk {index} recorded", flush=True)

    result = run_batch(args.input, args.output, predictor=predictor, engine=LocalEngine(predictor, workers=args.workers),
                       settings=BatchSettings(chunk_size=args.chunk_size), resume=args.resume,
                       after_chunk=after_chunk)
    print(json.dumps(result.manifest["counts"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
