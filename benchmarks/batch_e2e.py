#!/usr/bin/env python3
"""End to end on a 20,000-row synthetic register: run, kill -9, resume, compare with a previous run, report.

    LAARI_HOME=/tmp/laarihome LAARI_MODELS_DIR=/tmp/laarimodels .venv/bin/python benchmarks/batch_e2e.py \
        --previous-model 20261128-498174d9 --model 20261128-a51b8958 [--rows 20000] [--kill-at 0.4] [--workers 1]

1. Builds the register from the bundled corpus (train + held-out, cycled) with EURA-style ids (S3xxxxx), in Excel
   (.xlsx) and CSV, with a few rows that must become error rows (empty description, duplicate id, missing id).
2. "Previous" run: ``laari batch register.csv previous.jsonl --model PREVIOUS --no-explain``.
3. "Current" run: ``laari batch register.xlsx results.parquet --model MODEL`` (explanations on), killed with
   SIGKILL once ``--kill-at`` of the rows are done; checks that no results.parquet appeared; then the same command
   with ``--resume --compare-to previous.jsonl`` finishes it.
4. Checks: one output row per input row, rows 1..N once each in order, ids as in the input, the error rows where
   they were planted, and a random sample of rows predicted again in this process (same model, same settings)
   equal to the output rows (no row lost, none twice, none wrong).
5. ``laari report results.parquet``: the HTML report; checks it parses, its images decode, and that it opens in
   headless Chromium with every image drawn.

Writes ``benchmarks/results/batch_e2e.json``. Commands run as ``python -m laari ...`` (the
``laari`` command of this checkout).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(n: int, workdir: Path) -> tuple[Path, Path, dict]:
    from tests.batch_fixtures import write_rows

    recs = [json.loads(line) for f in ("train.jsonl", "heldout.jsonl")
            for line in (REPO / "training" / "data" / f).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [{"id": f"S{310000 + i}", "title": recs[i % len(recs)]["title"],
             "description": recs[i % len(recs)]["description"]} for i in range(n)]
    planted = {}
    for i in range(123, n, 2500):
        rows[i]["description"] = ""
        planted[i + 1] = "description: empty"
        rows[i + 7]["id"] = rows[i + 6]["id"]
        planted[i + 8] = "id: duplicate id"
        rows[i + 11]["id"] = None
        planted[i + 12] = "id: empty"
    xlsx = write_rows(rows, workdir / "register.xlsx")
    csv_path = write_rows(rows, workdir / "register.csv")
    return xlsx, csv_path, {"rows": rows, "planted": planted}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "laari", *args]


def run(cmd: list[str]) -> tuple[float, str]:
    t = time.time()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return time.time() - t, res.stdout


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []
        self.tags = 0

    def handle_starttag(self, tag, attrs):
        self.tags += 1
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))


def open_in_browser(page: Path) -> dict:
    """Open the report in headless Chromium (Debian's, driven by Playwright): every image must have loaded and been
    drawn with a size. Skipped (and said so) where Playwright or Chromium is missing."""
    chromium = os.environ.get("LAARI_CHROMIUM", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"opened": False, "why": "playwright is not installed"}
    if not Path(chromium).exists():
        return {"opened": False, "why": f"{chromium} not found"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            tab = browser.new_page()
            tab.goto(page.resolve().as_uri(), wait_until="load")
            images = tab.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, "
                                                     "e.getBoundingClientRect().width])")
            title = tab.title()
        finally:
            browser.close()
    assert images and all(done and natural > 0 and shown > 0 for done, natural, shown in images), images
    return {"opened": True, "browser": "chromium", "title": title, "images_drawn": len(images)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--previous-model", required=True)
    ap.add_argument("--kill-at", type=float, default=0.4)
    ap.add_argument("--workers", type=int, default=1, help="worker processes for the current run")
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/laari-bench-e2e"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "batch_e2e.json")
    args = ap.parse_args()
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    for p in w.glob("results*"):
        if p.is_file():
            p.unlink()
    result: dict = {"benchmark": "batch_e2e", "command": "python benchmarks/batch_e2e.py " + " ".join(sys.argv[1:]),
                    "rows": args.rows, "cpus": os.cpu_count()}
    t = time.time()
    xlsx, csv_path, truth = build(args.rows, w)
    result["build_seconds"] = round(time.time() - t, 1)
    result["input"] = {"xlsx_mb": round(xlsx.stat().st_size / 2**20, 1), "csv_mb": round(csv_path.stat().st_size / 2**20, 1)}
    print(f"built {xlsx} and {csv_path}", file=sys.stderr)

    # previous run
    prev = w / "previous.jsonl"
    secs, _ = run(cli("batch", str(csv_path), str(prev), "--model", args.previous_model, "--no-explain", "-q",
                      "--restart"))
    result["previous_run"] = {"model": args.previous_model, "seconds": round(secs, 1),
                              "rows_per_s": round(args.rows / secs, 1)}
    print(f"previous run: {secs:.0f} s", file=sys.stderr)

    # current run, killed
    out = w / "results.parquet"
    model_args = ["--model", args.model] if args.model else []
    cmd = cli("batch", str(xlsx), str(out), *model_args, "-q", "--workers", str(args.workers))
    from batch.workdir import WorkDir

    def recorded() -> int:
        try:
            state = WorkDir(out).load()
        except Exception:  # noqa: BLE001 - not there yet, or being written
            return 0
        return sum(c["rows"] for c in state["chunks"]) if state else 0
    t0 = time.time()
    child = subprocess.Popen(cmd + ["--restart"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    while child.poll() is None:
        done = recorded()
        if done >= args.kill_at * args.rows:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    child.wait()
    killed_after = time.time() - t0
    assert child.returncode == -signal.SIGKILL, f"not killed: {child.returncode}"
    assert not out.exists(), "a half-written output appeared"
    done = recorded()
    print(f"killed after {killed_after:.0f} s with {done} rows recorded", file=sys.stderr)
    secs, stdout = run(cmd + ["--resume", "--compare-to", str(prev), "--json"])
    manifest = json.loads(stdout[stdout.index("{"):])
    result["current_run"] = {"model": manifest["model"]["version"], "killed_after_seconds": round(killed_after, 1),
                             "rows_recorded_when_killed": done, "resume_seconds": round(secs, 1),
                             "rows_per_s_overall": round(args.rows / (killed_after + secs), 1),
                             "runs": manifest["runs"], "counts": manifest["counts"],
                             "embedding_cache": manifest["embedding_cache"]}
    result["compare"] = manifest["compare"]

    # checks
    from classifier.result_rows import iter_output

    rows = list(iter_output(out))
    assert len(rows) == args.rows, f"{len(rows)} rows out, {args.rows} in"
    assert [r["row"] for r in rows] == list(range(1, args.rows + 1)), "rows lost, repeated or out of order"
    for r, src in zip(rows, truth["rows"]):
        assert r["id"] == (src["id"] or None), (r["id"], src["id"])
    errors = {r["row"]: r["error"] for r in rows if r["error"]}
    assert set(errors) == set(truth["planted"]), (sorted(errors)[:10], sorted(truth["planted"])[:10])
    for row, prefix in truth["planted"].items():
        assert errors[row].startswith(prefix), (row, errors[row])
    from batch.cli import _factory
    from batch.predict import predict_rows
    from batch.settings import BatchSettings
    from classifier.project_rows import InputRow

    predictor = _factory(args.model)()
    rng = random.Random(0)
    sample = sorted(rng.sample([r["row"] for r in rows if r["error"] is None], args.sample))
    src = truth["rows"]
    again = predict_rows(predictor, [InputRow(row=i, id=src[i - 1]["id"], title=src[i - 1]["title"],
                                              description=src[i - 1]["description"]) for i in sample],
                         BatchSettings().explain)
    by_row = {r["row"]: r for r in rows}
    mismatched = [a["row"] for a in again if json.loads(json.dumps(a)) != by_row[a["row"]]]
    assert not mismatched, f"rows differ when predicted again: {mismatched[:10]}"
    result["checks"] = {"rows_out": len(rows), "rows_in_order_once": True, "ids_as_input": True,
                        "planted_error_rows": len(truth["planted"]), "error_rows": len(errors),
                        "resampled_rows_equal": len(sample)}
    print("checks passed", file=sys.stderr)

    # report
    rep = w / "report"
    secs, stdout = run(cli("report", str(out), "--out", str(rep), *model_args, "--json"))
    summary = json.loads(stdout[stdout.index("{"):])
    parser = _Html()
    html = (rep / "report.html").read_text(encoding="utf-8")
    parser.feed(html)
    import matplotlib.image as mpimg
    import io

    decoded = []
    for src_ in parser.images:
        assert src_.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src_.split(",", 1)[1])), format="png")
        decoded.append(list(img.shape))
    result["report"] = {"seconds": round(secs, 1), "html_kb": round(len(html.encode()) / 1024),
                        "html_tags": parser.tags, "images": decoded, "summary": summary["summary"],
                        "pools": summary["pools"], "path": str(rep / "report.html"),
                        "browser": open_in_browser(rep / "report.html")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("compare",)}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
