"""Provenance of register-derived corpus rows: their schema, their source, and that their wording is new.

A register-derived row is a paraphrase of the summary on a public register page (EURA 2014 or EURA 2007). Its
wording must be the project's own: no run of ``RUN_WORDS`` or more consecutive words may be shared with the
original summary, nor with the real register projects kept apart for evaluation. The project's name is a fact
and may be repeated as it is.

Pure standard library plus PyYAML, so it runs before the rest of laari is installed::

    python3 -m training.provenance check training/data/register_train.jsonl [--originals DIR] [--shared ../shared]
    python3 -m training.provenance merge PARTS... --train register_train.jsonl --heldout register_heldout.jsonl

``check`` checks every row (register-derived and register-style written ones); with ``--originals`` (a folder of ``<code>.txt`` copies of the visible register summaries, kept
outside the repository) it also checks each paraphrase against its original. Exit status 1 on any problem.
``merge`` adds new rows to a train/held-out pair, split stably by id (``heldout_ids``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from classifier.atomic import atomic_write_text

RUN_WORDS = 6
HELDOUT_FRACTION = 0.2
SOURCE_RE = re.compile(r"^EURA(2014|2007):(S\d{5})$")
OBJECTIVE_RE = re.compile(r"^\d{1,2}\.\d$")  # a specific objective code such as 7.1 or 12.4
CONFIDENCE = {"high", "medium", "low"}
REQUIRED = ("id", "source", "title", "description", "erityistavoite_code", "applicant_orgtype", "laari", "tags",
            "confidence")
WRITTEN_REQUIRED = ("id", "source", "title", "description", "laari", "tags", "confidence")
WRITTEN_ID_RE = re.compile(r"^LW-\d{4}$")
_WORD = re.compile(r"\w+", re.UNICODE)
_TAXONOMY = Path(__file__).resolve().parent.parent / "classifier" / "taxonomy" / "default.yaml"


def words(text: str) -> list[str]:
    """Lower-cased word tokens: runs of letters and digits (hyphens and punctuation separate words)."""
    return _WORD.findall(text.lower())


def runs(text: str, n: int = RUN_WORDS) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``text``."""
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def shared_runs(text: str, original: str, n: int = RUN_WORDS, allowed: str = "") -> list[str]:
    """Runs of ``n`` words that ``text`` shares with ``original``, less those inside ``allowed`` (e.g. the name)."""
    common = runs(text, n) & runs(original, n)
    if allowed:
        common -= runs(allowed, n)
    return sorted(" ".join(r) for r in common)


def reserved_codes(path: Path) -> set[str]:
    """Project codes listed one a line in ``path`` (``#`` starts a comment)."""
    codes = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            codes.add(line)
    return codes


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each non-empty line; a line that is not a JSON object raises with file and line."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON: {e}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            yield lineno, row


def taxonomy_ids(path: Path = _TAXONOMY) -> tuple[set[str], set[str]]:
    """(laari ids including the out-of-theme verdict, tag ids) of a taxonomy file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    laarit = {item["id"] for item in data["laarit"]}
    laarit.add(data.get("out_of_theme", {}).get("id", "ei_teemassa"))
    tags = {item["id"] for item in data["tags"]}
    return laarit, tags


def schema_problems(row: dict, laarit: set[str], tags: set[str]) -> list[str]:
    """What is wrong with one corpus row's fields (empty when nothing is).

    A register-derived row (``source`` EURA2014:/EURA2007:) carries the page's official facts; a row written in
    the register's style (``source`` ``written``, id ``LW-nnnn``) carries none, since it has no page.
    """
    written = row.get("source") == "written"
    problems = [f"{name}: missing" for name in (WRITTEN_REQUIRED if written else REQUIRED) if name not in row]
    if problems:
        return problems
    if written:
        if not WRITTEN_ID_RE.match(str(row["id"])):
            problems.append(f"id: {row['id']!r} is not LW-nnnn")
    else:
        m = SOURCE_RE.match(str(row["source"]))
        if not m:
            problems.append(f"source: {row['source']!r} is not EURA2014:S2xxxx, EURA2007:S1xxxx or written")
        elif row["id"] != m.group(2):
            problems.append(f"id: {row['id']!r} differs from the code in source {row['source']!r}")
        if not isinstance(row["applicant_orgtype"], str) or not row["applicant_orgtype"].strip():
            problems.append("applicant_orgtype: empty")
        if not OBJECTIVE_RE.match(str(row["erityistavoite_code"])):
            problems.append(f"erityistavoite_code: {row['erityistavoite_code']!r} unknown")
    for name in ("title", "description"):
        if not isinstance(row[name], str) or not row[name].strip():
            problems.append(f"{name}: empty")
    if row["laari"] not in laarit:
        problems.append(f"laari: {row['laari']!r} not in the taxonomy")
    if not isinstance(row["tags"], list) or len(set(row["tags"])) != len(row["tags"]):
        problems.append("tags: not a list of distinct ids")
    else:
        problems += [f"tags: {t!r} not in the taxonomy" for t in row["tags"] if t not in tags]
    if row["confidence"] not in CONFIDENCE:
        problems.append(f"confidence: {row['confidence']!r} is not high, medium or low")
    if row["confidence"] != "high" and not str(row.get("note", "")).strip():
        problems.append("note: a medium or low confidence label needs a note")
    return problems


def check_rows(rows: Iterable[tuple[str, int, dict]], reserved: set[str], reference: list[str],
               originals: Path | None = None) -> list[str]:
    """Every problem of ``rows`` ((file, line, row) triples) as ``file:line: id: what`` lines."""
    laarit, tags = taxonomy_ids()
    reference_runs: set[tuple[str, ...]] = set()
    for text in reference:
        reference_runs |= runs(text)
    seen: dict[str, str] = {}
    out = []
    for path, lineno, row in rows:
        where = f"{path}:{lineno}: {row.get('id', '?')}"
        out += [f"{where}: {p}" for p in schema_problems(row, laarit, tags)]
        code = str(row.get("id", ""))
        if code in seen:
            out.append(f"{where}: duplicate project, first at {seen[code]}")
        seen.setdefault(code, f"{path}:{lineno}")
        if code in reserved:
            out.append(f"{where}: reserved for evaluation, must not be used")
        near = sorted(" ".join(r) for r in runs(str(row.get("description", ""))) & reference_runs)
        if near:
            out.append(f"{where}: shares {len(near)} {RUN_WORDS}-word run(s) with the real sample: {near[0]!r}")
        if originals is not None and row.get("source") != "written":
            source = originals / f"{code}.txt"
            if not source.exists():
                out.append(f"{where}: no original {source} to check against")
            else:
                common = shared_runs(str(row.get("description", "")), source.read_text(encoding="utf-8"),
                                     allowed=str(row.get("title", "")))
                if common:
                    out.append(f"{where}: shares {len(common)} {RUN_WORDS}-word run(s) with its original: "
                               + "; ".join(repr(c) for c in common[:3]))
    return out


def heldout_ids(rows: list[dict], fraction: float = HELDOUT_FRACTION) -> set[str]:
    """The held-out part of ``rows``: per laari, the ``ceil(fraction * n)`` rows whose sha256(id) is smallest.
    Stratified, stable, and independent of row order."""
    by_laari: dict[str, list[str]] = {}
    for r in rows:
        by_laari.setdefault(r["laari"], []).append(r["id"])
    out: set[str] = set()
    for ids in by_laari.values():
        k = math.ceil(fraction * len(ids))
        out.update(sorted(ids, key=lambda i: hashlib.sha256(i.encode("utf-8")).hexdigest())[:k])
    return out


def merge(parts: list[Path], train: Path, heldout: Path) -> tuple[int, int]:
    """Add the rows of ``parts`` that are not yet in ``train`` or ``heldout``. Rows already there keep their side;
    the new ones are split among themselves by ``heldout_ids``. Both files are rewritten sorted by id."""
    old = {p: [r for _, r in read_jsonl(p)] if p.exists() else [] for p in (train, heldout)}
    known = {r["id"] for rows in old.values() for r in rows}
    new = [r for p in parts for _, r in read_jsonl(p) if r["id"] not in known]
    held = heldout_ids(new)
    old[train] += [r for r in new if r["id"] not in held]
    old[heldout] += [r for r in new if r["id"] in held]
    for path, rows in old.items():
        rows.sort(key=lambda r: r["id"])
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(new) - len(held), len(held)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m training.provenance", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check register-derived rows")
    check.add_argument("files", nargs="+", type=Path)
    check.add_argument("--originals", type=Path, help="folder of <code>.txt original summaries (not in the repo)")
    check.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                       help="the shared folder with real-sample/ (default: ../shared beside the repository)")
    mrg = sub.add_parser("merge", help="add rows to a train/held-out pair of files, split stably by id")
    mrg.add_argument("parts", nargs="+", type=Path)
    mrg.add_argument("--train", type=Path, required=True)
    mrg.add_argument("--heldout", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "merge":
        n_train, n_held = merge(args.parts, args.train, args.heldout)
        print(f"added {n_train} rows to {args.train} and {n_held} to {args.heldout}", file=sys.stderr)
        return 0
    reserved_file = args.shared / "real-sample" / "reserved-codes.txt"
    sample_file = args.shared / "real-sample" / "projects.jsonl"
    if not reserved_file.exists():
        print(f"error: {reserved_file} not found; pass --shared", file=sys.stderr)
        return 2
    reserved = reserved_codes(reserved_file)
    reference = [r["description"] for _, r in read_jsonl(sample_file)] if sample_file.exists() else []
    rows = [(str(p), ln, r) for p in args.files for ln, r in read_jsonl(p)]
    problems = check_rows(rows, reserved, reference, args.originals)
    for line in problems:
        print(line)
    print(f"{len(rows)} rows checked, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
