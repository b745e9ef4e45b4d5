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


# the header of an EURA 2021 export, exactly as the export writes it (note the trailing space of the first)
EURA_2021_HEADER = ["Hankekoodi ", "Ryhmähanketunnus", "Rahasto", "Tl", "Et", "Hankkeen nimi", "Toteuttajan nimi",
                    "Toteuttajan Y-tunnus", "Rahoittava viranomainen", "Toiminnan tila", "Aloituspvm", "Päättymispvm",
                    "Suunniteltu rahoitus yhteensä", "Tukitoimen ala", "Sijainti", "Toissijainen teema, vain ESR+",
                    "Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta", "Hankekuvauksen osoite"]
EURA_2021_ETS = ("4.1", "4.4", "4.6", "4.11")
EURA_2021_THEMES = ("Työelämän kehittäminen", "", "Sosiaalinen innovointi")


def eura_2021_projects(corpus, n: int, *, empty_summary_at: int | None = 4) -> list[dict]:
    """``n`` projects as an EURA 2021 export lists them (keys: the header names, trimmed), cycling through the
    corpus; project ``empty_summary_at`` (1-based) has a project code but no summary."""
    import datetime as dt

    out = []
    for i in range(n):
        j = i % len(corpus.titles)
        out.append({
            "Hankekoodi": f"S3{i + 1:04d}", "Ryhmähanketunnus": "R30001" if i % 7 == 0 else None,
            "Rahasto": "ESR+", "Tl": "4", "Et": EURA_2021_ETS[i % len(EURA_2021_ETS)],
            "Hankkeen nimi": corpus.titles[j], "Toteuttajan nimi": f"Toteuttaja {i % 5} ry",
            "Toteuttajan Y-tunnus": f"{1234560 + i % 5}-{i % 10}", "Rahoittava viranomainen": "Hämeen ELY-keskus",
            "Toiminnan tila": "Käynnissä", "Aloituspvm": dt.datetime(2023, 1 + i % 12, 1),
            "Päättymispvm": dt.datetime(2025, 1 + i % 12, 28), "Suunniteltu rahoitus yhteensä": 100000 + 1250.5 * i,
            "Tukitoimen ala": "146 Työntekijöiden ... sopeutumisen tukeminen", "Sijainti": "Kanta-Häme",
            "Toissijainen teema, vain ESR+": EURA_2021_THEMES[i % len(EURA_2021_THEMES)] or None,
            "Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta": corpus.descriptions[j],
            "Hankekuvauksen osoite": f"https://eura2021.fi/hankkeet/S3{i + 1:04d}",
        })
    if empty_summary_at is not None and n >= empty_summary_at:
        out[empty_summary_at - 1]["Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta"] = None
    return out


def write_eura_2021_export(projects: list[dict], path: Path, *, header: list[str] | None = None) -> Path:
    """An .xlsx as EURA 2021 exports it: a title row and a blank row above the header, the projects, then two
    rows that are not projects (the totals, and the date of the export); money with a custom number format, dates
    with a Finnish date format, odd fonts and fills, and a style sheet without the default cell style (which
    openpyxl warns about)."""
    import re
    import shutil
    import tempfile
    import zipfile

    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    header = header or EURA_2021_HEADER
    wb = Workbook()
    ws = wb.active
    ws.title = "Hankkeet"
    ws.append(["Hankkeet, EURA 2021 - hakutulos"])
    ws["A1"].font = Font(name="Calibri Light", size=14.5, bold=True, color="FF1F4E79")
    ws.append([])
    ws.append(header)
    for cell in ws[3]:
        cell.fill = PatternFill("gray125", fgColor="FFDDEBF7")
    keys = [h.strip() for h in header]
    for p in projects:
        ws.append([p.get(k) for k in keys])
        r = ws.max_row
        ws.cell(r, 13).number_format = r'#,##0.00\ "€";[Red]\-#,##0.00\ "€"'
        ws.cell(r, 11).number_format = ws.cell(r, 12).number_format = r"d\.m\.yyyy;@"
    total = sum(p["Suunniteltu rahoitus yhteensä"] for p in projects)
    ws.append(["Yhteensä"] + [None] * 11 + [total])
    ws.cell(ws.max_row, 13).number_format = r'[$€-40B]\ #,##0.00'
    ws.append(["Raportti luotu 08.12.2026 klo 10.15, EURA 2021"])
    tmp = Path(tempfile.mkdtemp()) / "export.xlsx"
    wb.save(tmp)
    with zipfile.ZipFile(tmp) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/styles.xml":  # no named cell styles: "Workbook contains no default style"
                data = re.sub(rb"<cellStyles.*?</cellStyles>", b"", data, flags=re.S)
            zout.writestr(item, data)
    shutil.rmtree(tmp.parent)
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
