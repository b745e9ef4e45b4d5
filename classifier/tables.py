"""Reading project tables: JSONL, CSV/TSV, Parquet and Excel, streamed, with errors that say where.

One reader, :func:`iter_rows`, yields ``(row, record, error)`` for every supported format: ``error`` is ``None``,
or a :class:`RowError` for a row that cannot be read (a line that is not UTF-8, invalid JSON, more fields than the
header), whose ``record`` is then as much of the row as could be recovered (to name its id). :func:`iter_records`
is the strict form: it raises :class:`DataError` on the first bad row, or skips bad rows into a list.

Row numbers are 1-based lines for JSONL and 1-based data rows (header excluded, blank lines skipped, so row 1 is
the first project) for the tabular formats, as a spreadsheet user counts them after the header.

CSV files are UTF-8, or Windows-1252 as Finnish Excel saves them (detected from the first megabyte); the delimiter
is ``;`` or ``,``, whichever the header holds more of (TSV and ``.txt``: tab).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv",
           ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xlsm": "excel"}
CSV_FIELD_LIMIT = 10_000_000  # characters; a longer field means a broken quote, reported as a bad row
ENCODING_SAMPLE_BYTES = 1 << 20
# a multi-byte UTF-8 sequence: a lead byte and its continuation bytes
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


class DataError(ValueError):
    """A data file cannot be read as asked; the message names the file, the line/row and the field."""


@dataclass
class RowError:
    """A row that cannot be read: ``kind`` is ``encoding`` (not UTF-8), ``line`` (cannot be parsed) or ``quote`` (a
    quote left open swallowed the lines after it)."""

    row: int
    message: str
    raw: str | None = None
    kind: str = "line"

    def to_dict(self) -> dict:
        return {"row": self.row, "error": self.message, "raw": self.raw}

    def describe(self) -> str:
        """``kind: message``, with what to do about an encoding error."""
        return f"{self.kind}: {self.message}" + ("; save the file as UTF-8" if self.kind == "encoding" else "")


def file_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {Path(path).suffix!r}; use one of {sorted(set(FORMATS))}")
    return fmt


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# =====================================================================================================  encoding
def detect_encoding(sample: bytes) -> str:
    """The text encoding (a Python codec name) of a delimited file from its first bytes: ``utf-8-sig`` (with a
    byte-order mark, which the codec drops), ``utf-8``, or ``cp1252`` (Windows-1252, as Finnish Excel saves "CSV
    (semicolon separated)"): a sample that is not valid UTF-8 and holds no multi-byte UTF-8 sequence at all. A
    file that mixes valid UTF-8 with bad lines stays ``utf-8``, so that its bad lines are reported one by one."""
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
    """What a CSV/TSV file is read as: its encoding and its delimiter (named in a batch run's summary)."""
    sample = read_sample(path)
    encoding = detect_encoding(sample)
    if fmt == "tsv":
        return {"encoding": encoding, "delimiter": "\t"}
    return {"encoding": encoding, "delimiter": sniff_delimiter(sample.decode(encoding, "replace"))}


# =====================================================================================================  formats
def _recover_json(raw: str | None) -> dict | None:
    """A rejected JSONL line, parsed as far as possible, to name the row's id."""
    if not raw:
        return None
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict | None, RowError | None]]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                text = raw.decode("utf-8", "replace")
                yield n, _recover_json(text), RowError(n, f"not UTF-8 (byte {exc.start})", text, "encoding")
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, None, RowError(n, f"invalid JSON: {exc.msg} at column {exc.colno}", line.rstrip("\n"))
                continue
            if not isinstance(rec, dict):
                yield n, None, RowError(n, f"expected a JSON object, got {type(rec).__name__}", line.rstrip("\n"))
                continue
            yield n, rec, None


def iter_delimited(path: Path, fmt: str) -> Iterator[tuple[int, dict | None, RowError | None]]:
    """Stream a CSV/TSV file. A line that is not UTF-8 is an error on its own row (decoded with replacement
    characters so that its id can still be named), and a row with more fields than the header is reported;
    missing trailing fields are empty."""
    path = Path(path)
    bad_lines: dict[int, int] = {}
    layout = delimited_layout(path, fmt)
    encoding = layout["encoding"]

    def lines() -> Iterator[str]:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if n == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                if encoding == "cp1252":
                    yield raw.decode("cp1252", "replace")  # five byte values are unassigned in Windows-1252
                    continue
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad_lines[n] = exc.start
                    yield raw.decode("utf-8", "replace")

    recent: dict[int, str] = {}  # the physical lines of the record being read, by file line number

    def kept(lines_in: Iterator[str]) -> Iterator[str]:
        for number, text in enumerate(lines_in, 1):
            recent[number] = text
            yield text

    source = kept(lines())
    first = next(source, None)
    if first is None:
        return
    old_limit = csv.field_size_limit()
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(itertools.chain([first], source), delimiter=layout["delimiter"])
        try:
            header = next(reader)
        except csv.Error as exc:
            raise DataError(f"{path}: the header line cannot be read: {exc}") from exc
        if 1 in bad_lines:
            raise DataError(f"{path}: the header line is not UTF-8 (byte {bad_lines[1]}); save the file as UTF-8")
        names = [h.strip() for h in header]
        n = 0
        prev_line = reader.line_num
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                n += 1
                prev_line = reader.line_num
                yield n, None, RowError(n, f"cannot be parsed ({exc})")
                continue
            start, end = prev_line + 1, reader.line_num
            prev_line = end
            if not values:
                continue
            record_lines = [recent.pop(ln, "") for ln in range(start, end + 1)]
            recent.clear()
            swallowed = _swallowed_records(values[0], record_lines, len(names), layout["delimiter"]) \
                if end > start else []
            if swallowed:
                n += 1
                first_line = start + 1 + swallowed[0][0]
                yield n, {k: v.split("\n", 1)[0] for k, v in zip(names, values) if k}, RowError(
                    n, f"a quote opened on file line {start} is not closed: this record swallowed "
                       f"{len(swallowed)} line(s) that read as records of their own (file lines {first_line}-{end}); "
                       f"close the quote and run again", kind="quote")
                for offset, parsed in swallowed:
                    n += 1
                    yield n, {k: v for k, v in zip(names, parsed) if k}, RowError(
                        n, f"file line {start + 1 + offset} was swallowed by the quote left open on file line {start}",
                        kind="quote")
                continue
            n += 1
            rec = {k: v for k, v in zip(names, values) if k}
            bad = [ln for ln in range(start, end + 1) if ln in bad_lines]
            if bad:
                for ln in bad:
                    bad_lines.pop(ln, None)
                yield n, rec, RowError(n, f"not UTF-8 (file line {bad[0]})", kind="encoding")
            elif len(values) > len(names):
                yield n, rec, RowError(n, f"{len(values)} fields, more than the header has ({len(names)})")
            else:
                for k in names[len(values):]:
                    if k:
                        rec[k] = ""
                yield n, rec, None
    finally:
        csv.field_size_limit(old_limit)


def _shape(value: str) -> str:
    """A value's outline: letters -> ``a``, digits -> ``9``, runs collapsed (``S20021`` -> ``a9``)."""
    out = []
    for ch in value.strip():
        c = "a" if ch.isalpha() else "9" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def _swallowed_records(first_value: str, record_lines: list[str], width: int,
                       delimiter: str) -> list[tuple[int, list[str]]]:
    """The physical lines after the first of a multi-line record that read as whole records of their own: each
    parses into exactly ``width`` fields and begins with a value of the same outline as the record's own first
    value (an id). What a quote left open produces; prose paragraphs inside a description do not look like that.
    Returns ``(line offset after the record's first line, fields)`` for each."""
    key = _shape(first_value)
    if not key or "9" not in key:  # no id-like first value to compare with
        return []
    found = []
    for offset, line in enumerate(record_lines[1:]):
        line = line.rstrip("\r\n")
        try:
            parsed = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            continue
        if len(parsed) == width and _shape(parsed[0]) == key:
            found.append((offset, parsed))
    return found


def _not_a(path: Path, what: str, exc: Exception) -> DataError:
    return DataError(f"{path}: not a readable {what} file ({type(exc).__name__}: {exc}); check that the file is "
                     f"what its name {path.suffix!r} says")


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict, None]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=2048)
    except (pa.ArrowException, OSError) as exc:
        raise _not_a(path, "Parquet", exc) from exc
    n = 0
    for batch in batches:
        for rec in batch.to_pylist():
            n += 1
            yield n, rec, None


HEADER_SEARCH_ROWS = 30  # rows of a sheet searched for a known export's header (title and blank rows above it)
HEADER_MIN_KNOWN = 3  # cells that must be known header names for a row to be taken as the header


def find_header(rows: list[tuple]) -> int | None:
    """The index of the header among a sheet's first rows: the row with the most names of a known register
    export (``classifier.register_layouts``), when it has at least HEADER_MIN_KNOWN of them; else the first
    non-empty row (None when every row is empty)."""
    from .register_layouts import header_score

    scores = [header_score(r or ()) for r in rows]
    best = max(range(len(rows)), key=lambda i: (scores[i], -i), default=None)
    if best is not None and scores[best] >= HEADER_MIN_KNOWN:
        return best
    return next((i for i, r in enumerate(rows) if r and any(v is not None and str(v).strip() for v in r)), None)


def open_workbook(path: Path):
    """An .xlsx opened read-only for its values (openpyxl), quietly: an export's style sheet without a default
    style makes openpyxl warn, and styles are never used here."""
    import warnings

    from openpyxl import load_workbook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Workbook contains no default style": read values only
        try:
            return load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
            raise _not_a(path, "Excel (.xlsx)", exc) from exc


def _iter_excel(path: Path) -> Iterator[tuple[int, dict, None]]:
    """The first sheet, read only and values only (cell styles are never parsed into objects, so an export's
    odd number formats and styles do not matter). The header is the first row, or the row of a known export's
    column names below a title and blank rows."""
    wb = open_workbook(path)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        head = list(itertools.islice(rows, HEADER_SEARCH_ROWS))
        at = find_header(head)
        if at is None:
            raise DataError(f"{path}: the first sheet is empty")
        names = [str(h).strip() if h is not None else "" for h in head[at]]
        for n, values in enumerate(itertools.chain(head[at + 1:], rows), 1):
            if values is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            yield n, {k: v for k, v in zip(names, values) if k}, None
    finally:
        wb.close()


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict | None, RowError | None]]:
    """Every row of any supported file as ``(row, record, error)`` (see the module docstring)."""
    path = Path(path)
    fmt = file_format(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if fmt == "jsonl":
        return _iter_jsonl(path)
    if fmt in ("csv", "tsv"):
        return iter_delimited(path, fmt)
    if fmt == "parquet":
        return _iter_parquet(path)
    return _iter_excel(path)


def iter_records(path: str | Path, *, skip_invalid: bool = False,
                 rejects: list[RowError] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(row, record)`` from any supported file. A bad row raises DataError (``FILE: line N: why``), or
    with ``skip_invalid`` is appended to ``rejects`` and skipped."""
    path = Path(path)
    for row, rec, error in iter_rows(path):
        if error is not None:
            if not skip_invalid:
                raise DataError(f"{path}: line {row}: {error.message}")
            if rejects is not None:
                rejects.append(error)
            continue
        yield row, rec


def count_rows(path: str | Path) -> int | None:
    """Rows in a file, for a progress bar (cheap: one pass without parsing, or the file's metadata); None when
    the file cannot be counted."""
    path = Path(path)
    try:
        fmt = file_format(path)
        if fmt == "jsonl":
            n = 0
            with open(path, "rb") as f:
                for line in f:
                    if line.strip():
                        n += 1
            return n
        if fmt in ("csv", "tsv"):
            layout = delimited_layout(path, fmt)
            with open(path, encoding=layout["encoding"], errors="replace", newline="") as f:
                f.readline()
                old = csv.field_size_limit()
                csv.field_size_limit(CSV_FIELD_LIMIT)
                try:
                    return sum(1 for values in csv.reader(f, delimiter=layout["delimiter"]) if values)
                finally:
                    csv.field_size_limit(old)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        wb = open_workbook(path)
        try:
            rows = wb.worksheets[0].max_row
        finally:
            wb.close()
        return max(0, rows - 1) if rows else None
    except Exception:  # noqa: BLE001 - only a progress bar's total; the reader reports what is wrong
        return None
