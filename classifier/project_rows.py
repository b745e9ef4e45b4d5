"""Projects of a table as rows to classify: an id, a title and a description from named columns, validated.

Every row of the file becomes one :class:`InputRow`, in order; a row that cannot be classified whatever the model
(unreadable, no id, a duplicate id, a description that is not text) carries ``error`` instead of being dropped.

Column names are matched after trimming and case-folding. A file whose header is a known register export's
(``classifier.register_layouts``, e.g. EURA 2021) is read with that export's id, title and description columns
unless other columns are named, each row carries the export's official columns (``InputRow.official``), and the
rows at the end of the file that are not projects (a totals row, the export date: no project code of the shape
the projects have, and no description) are skipped and listed in ``InputReader.skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .register_layouts import Layout, find_layout, fold, near_miss, official_value
from .tables import DataError, _shape, file_format, iter_rows


@dataclass(frozen=True)
class Columns:
    id: str = "id"
    title: str = "title"
    description: str = "description"


@dataclass
class InputRow:
    row: int  # 1-based, as classifier.tables counts
    id: str | None
    title: str
    description: str | None
    error: str | None = None  # set when the row cannot be classified whatever the model
    extra: dict | None = None  # the values of the reader's ``keep`` columns (labels for reports), when asked
    official: dict | None = None  # a known export's official columns (``Layout.kept``), as text


def normalize_id(value) -> str | None:
    """Ids as text: 1234.0 from a spreadsheet becomes '1234'; empty and blank become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _title_text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


class InputReader:
    """Rows of an input file as :class:`InputRow`, validated: the text column must exist, every row needs an id,
    and an id may appear once (the first occurrence keeps it; later ones become error rows)."""

    def __init__(self, path: str | Path, columns: Columns = Columns(), keep: Sequence[str] = ()):
        self.path = Path(path)
        self.asked = columns
        self.columns = columns  # the columns read: the asked ones, or a known export's (see ``resolve``)
        self.keep = tuple(keep)
        if not self.path.exists():
            raise DataError(f"{self.path}: file not found")
        self.format = file_format(self.path)
        self.first_seen: dict[str, int] = {}
        self.layout: Layout | None = None
        self.skipped: list[dict] = []  # rows at the end that are not projects: {"row", "reason"}
        self._names: dict[str, str] | None = None  # folded name -> the file's name

    def resolve(self, names=None) -> Columns:
        """Match the columns against the header (the first readable row's names, or ``names``): find a known
        export's layout, choose its columns when the asked ones are the defaults and the file lacks them, and
        check that the id and description columns exist (the error lists the columns found)."""
        if self._names is not None:
            return self.columns
        if names is None:
            rows = iter_rows(self.path)
            try:
                names = next((list(rec) for _, rec, bad in rows if rec is not None and bad is None), None)
            finally:
                rows.close()  # an Excel workbook is closed now, not when collected
            if names is None:
                self._names = {}
                return self.columns
        found = {}
        for n in names:
            found.setdefault(fold(n), str(n))
        self.layout = find_layout(found.values())
        cols = self.asked
        if self.layout is not None and cols == Columns() and not all(fold(c) in found for c in (cols.id,
                                                                                                  cols.description)):
            cols = Columns(id=self.layout.id, title=self.layout.title, description=self.layout.description)
        missing = [c for c in (cols.id, cols.description) if fold(c) not in found]
        if missing:
            near = near_miss(found.values())
            hint = f"; it looks like an {near[0].name} export without {', '.join(map(repr, near[1]))}" if near else ""
            raise DataError(
                f"{self.path}: no column {', '.join(map(repr, missing))}; the file has "
                f"{sorted(map(str, found.values()))}{hint} (choose columns with --id-col, --title-col, --text-col)")
        self.columns = Columns(*(found.get(fold(c), c) for c in (cols.id, cols.title, cols.description)))
        self._names = found
        return self.columns

    def _key(self, name: str) -> str:
        return (self._names or {}).get(fold(name), name)

    def _input_row(self, row: int, rec: dict | None, error: str | None) -> InputRow:
        cols = self.columns
        rec = rec or {}
        rid = normalize_id(rec.get(cols.id))
        title = _title_text(rec.get(cols.title))
        desc = rec.get(cols.description)
        if error is None:
            if rid is None:
                error = f"id: empty (column {cols.id!r})"
            elif cols.description not in rec:
                error = f"description: no field {cols.description!r} in this row"
            elif desc is not None and not isinstance(desc, str):
                error = f"description: expected text, got {type(desc).__name__}"
        if rid is not None:
            first = self.first_seen.get(rid)
            if first is None:
                self.first_seen[rid] = row
            elif error is None:
                error = f"id: duplicate id {rid!r} (first on row {first})"
        official = None
        if self.layout is not None:
            official = {c: official_value(self.layout, c, rec.get(self._key(c))) for c in self.layout.kept}
        return InputRow(row=row, id=rid, title=title, description=desc if isinstance(desc, str) else None,
                        error=error, extra={k: rec.get(self._key(k)) for k in self.keep} if self.keep else None,
                        official=official)

    def _footer_reason(self, rec: dict | None, bad, shapes: set[str]) -> str | None:
        """Why a row of a known export may be a footer (a totals row, the export date): it has no description and
        no project code of the shape the projects above have. None for a row that looks like a project."""
        if self.layout is None or rec is None or bad is not None:
            return None
        desc = rec.get(self.columns.description)
        if isinstance(desc, str) and desc.strip():
            return None
        rid = normalize_id(rec.get(self.columns.id))
        if rid is None:
            return "footer: no project code and no description"
        if shapes and _shape(rid) not in shapes:
            return f"footer: {rid[:40]!r} is not a project code"
        return None

    def __iter__(self) -> Iterator[InputRow]:
        checked = False
        shapes: set[str] = set()  # outlines of the project codes seen
        held: list[tuple[int, dict | None, object, str]] = []  # footer candidates, until a project follows
        for row, rec, bad in iter_rows(self.path):
            if rec is not None and bad is None and not checked:
                self.resolve(list(rec))
                checked = True
            reason = self._footer_reason(rec, bad, shapes) if checked else None
            if reason is not None:
                held.append((row, rec, bad, reason))
                continue
            for h_row, h_rec, h_bad, _ in held:  # not the end of the file: they were rows after all
                yield self._input_row(h_row, h_rec, None)
            held.clear()
            r = self._input_row(row, rec, None if bad is None else bad.describe())
            if r.error is None and r.id is not None and self.layout is not None:
                shapes.add(_shape(r.id))
            yield r
        self.skipped = [{"row": h_row, "reason": reason} for h_row, _, _, reason in held]
