"""Reading project tables (JSONL, CSV, TSV, Parquet, Excel) and labelled training sets, with errors that say where.

Every reader yields ``(row_number, record)``; row numbers are 1-based lines for JSONL and 1-based data rows (header
excluded, so row 1 is the first project) for the tabular formats, as a spreadsheet user counts them after the header.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from classifier.taxonomy import Taxonomy

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv",
           ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xlsm": "excel"}


class DataError(ValueError):
    """A data file cannot be read as asked; the message names the file, the line/row and the field."""


@dataclass
class RowError:
    row: int
    message: str
    raw: str | None = None

    def to_dict(self) -> dict:
        return {"row": self.row, "error": self.message, "raw": self.raw}


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use one of {sorted(set(FORMATS))}")
    return fmt


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def iter_records(path: str | Path, *, skip_invalid: bool = False,
                 rejects: list[RowError] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(row, record)`` from any supported file. Invalid rows raise DataError, or with ``skip_invalid``
    are appended to ``rejects`` and skipped."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    fmt = file_format(path)

    def bad(row: int, message: str, raw: str | None = None):
        if not skip_invalid:
            raise DataError(f"{path}: line {row}: {message}")
        if rejects is not None:
            rejects.append(RowError(row, message, raw))

    if fmt == "jsonl":
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad(n, f"not UTF-8 (byte {exc.start})", raw.decode("utf-8", "replace"))
                    continue
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    bad(n, f"invalid JSON: {exc.msg} at column {exc.colno}", line.rstrip("\n"))
                    continue
                if not isinstance(rec, dict):
                    bad(n, f"expected a JSON object, got {type(rec).__name__}", line.rstrip("\n"))
                    continue
                yield n, rec
    elif fmt in ("csv", "tsv"):
        layout = delimited_layout(path, fmt)
        try:
            text = path.read_text(encoding=layout["encoding"])
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte offset {exc.start}); save it as UTF-8") from exc
        delimiter = layout["delimiter"]
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        for n, rec in enumerate(reader, 1):
            if None in rec:
                bad(n, f"more fields than the header has ({len(reader.fieldnames or [])})")
                continue
            yield n, {k: ("" if v is None else v) for k, v in rec.items()}
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            for rec in batch.to_pylist():
                n += 1
                yield n, rec
    else:
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if not header:
            raise DataError(f"{path}: the first sheet is empty")
        names = [str(h).strip() if h is not None else "" for h in header]
        for n, values in enumerate(rows, 1):
            if values is None or all(v is None for v in values):
                continue
            yield n, {k: v for k, v in zip(names, values) if k}
        wb.close()


ENCODING_SAMPLE_BYTES = 1 << 20
# a multi-byte UTF-8 sequence: a lead byte and its continuation bytes
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def detect_encoding(sample: bytes) -> str:
    """The text encoding (a Python codec name) of a delimited file from its first bytes: ``utf-8-sig`` (with a
    byte-order mark, which the codec drops), ``utf-8``, or ``cp1252`` (Windows-1252, as Finnish Excel saves "CSV
    (semicolon separated)"): a sample that is not valid UTF-8 and holds no multi-byte UTF-8 sequence at all. A file that mixes valid UTF-8 with bad lines
    stays ``utf-8``, so that its bad lines are reported one by one."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"  # the sample cut a character in two
    return "utf-8" if _UTF8_MULTIBYTE.search(sample) else "cp1252"


def read_sample(path: Path, n: int = ENCODING_SAMPLE_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def sniff_delimiter(text: str) -> str:
    """``;`` or ``,``: whichever the first line (the header) holds more of."""
    first = text.split("\n", 1)[0]
    return ";" if first.count(";") > first.count(",") else ","


def delimited_layout(path: Path, fmt: str) -> dict:
    """What a CSV/TSV file was read as: its encoding and its delimiter (for the run's summary)."""
    sample = read_sample(path)
    encoding = detect_encoding(sample)
    if fmt == "tsv":
        return {"encoding": encoding, "delimiter": "\t"}
    return {"encoding": encoding, "delimiter": sniff_delimiter(sample.decode(encoding, "replace"))}


def parse_tags(value, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: tags: invalid JSON list: {exc.msg}") from exc
        else:
            value = [v for v in (p.strip() for p in value.replace(";", ",").replace("|", ",").split(",")) if v]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: tags: expected a list of tag ids")
    return list(value)


@dataclass
class LabelledSet:
    """A labelled training or evaluation set, validated against a taxonomy."""

    ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    laari: list[str] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    source: str = ""
    # where each row comes from: its `source` field ("EURA2014:S21234" for a register-derived row, "written", or
    # "" when the file has none)
    origins: list[str] = field(default_factory=list)

    def __len__(self):
        return len(self.ids)

    @property
    def from_register(self) -> list[bool]:
        """Per row: derived from a public register page (the kind of text the model is judged on)."""
        return [i < len(self.origins) and self.origins[i].startswith("EURA") for i in range(len(self))]

    def subset(self, idx) -> "LabelledSet":
        out = LabelledSet(source=self.source)
        for i in idx:
            out.ids.append(self.ids[i])
            out.titles.append(self.titles[i])
            out.descriptions.append(self.descriptions[i])
            out.laari.append(self.laari[i])
            out.tags.append(self.tags[i])
            out.origins.append(self.origins[i])
        return out

    def extend(self, other: "LabelledSet") -> "LabelledSet":
        seen = set(self.ids)
        for i in range(len(other)):
            if other.ids[i] in seen:
                continue
            self.ids.append(other.ids[i])
            self.titles.append(other.titles[i])
            self.descriptions.append(other.descriptions[i])
            self.laari.append(other.laari[i])
            self.tags.append(other.tags[i])
            self.origins.append(other.origins[i] if i < len(other.origins) else "")
        return self


def load_labelled(path: str | Path, taxonomy: Taxonomy, *, id_col: str = "id", title_col: str = "title",
                  text_col: str = "description", laari_col: str = "laari", tags_col: str = "tags",
                  require_tags: bool = True) -> LabelledSet:
    """Read and validate a labelled file; one DataError lists every problem found (up to 20)."""
    path = Path(path)
    out = LabelledSet(source=str(path))
    problems: list[str] = []
    unknown_laari: dict[str, list[int]] = {}
    unknown_tags: dict[str, list[int]] = {}
    seen: dict[str, int] = {}
    verdicts = set(taxonomy.verdict_ids)
    tag_ids = set(taxonomy.tag_ids)
    required = [id_col, text_col, laari_col] + ([tags_col] if require_tags else [])
    for row, rec in iter_records(path):
        missing = [c for c in required if c not in rec]
        if missing:
            raise DataError(f"{path}: line {row}: missing column(s) {missing}; the file has {sorted(rec)}")
        rid = str(rec[id_col]).strip()
        text = rec.get(text_col)
        if not rid:
            problems.append(f"line {row}: {id_col}: empty")
        elif rid in seen:
            problems.append(f"line {row}: {id_col}: duplicate id {rid!r} (first on line {seen[rid]})")
        seen.setdefault(rid, row)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"line {row}: {text_col}: empty")
        label = str(rec.get(laari_col) or "").strip()
        if label not in verdicts:
            unknown_laari.setdefault(label, []).append(row)
        try:
            tags = parse_tags(rec.get(tags_col), f"line {row}")
        except DataError as exc:
            problems.append(str(exc))
            tags = []
        for t in tags:
            if t not in tag_ids:
                unknown_tags.setdefault(t, []).append(row)
        out.ids.append(rid)
        out.titles.append(str(rec.get(title_col) or ""))
        out.descriptions.append(text if isinstance(text, str) else "")
        out.laari.append(label)
        out.tags.append(tags)
        out.origins.append(str(rec.get("source") or ""))
    for label, rows in unknown_laari.items():
        problems.append(f"{laari_col}: unknown label {label!r} on line(s) {rows[:10]}; known: {sorted(verdicts)}")
    for tag, rows in unknown_tags.items():
        problems.append(f"{tags_col}: unknown tag {tag!r} on line(s) {rows[:10]}; known: {sorted(tag_ids)}")
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise DataError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]) + more)
    if not out.ids:
        raise DataError(f"{path}: no rows")
    return out
