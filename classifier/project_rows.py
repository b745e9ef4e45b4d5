"""Projects of a table as rows to classify: an id, a title and a description from named columns, validated.

Every row of the file becomes one :class:`InputRow`, in order; a row that cannot be classified whatever the model
(unreadable, no id, a duplicate id, a description that is not text) carries ``error`` instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .tables import DataError, file_format, iter_rows


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
        self.columns = columns
        self.keep = tuple(keep)
        if not self.path.exists():
            raise DataError(f"{self.path}: file not found")
        self.format = file_format(self.path)
        self.first_seen: dict[str, int] = {}

    def __iter__(self) -> Iterator[InputRow]:
        cols = self.columns
        checked = False
        for row, rec, bad in iter_rows(self.path):
            error = None if bad is None else bad.describe()
            if rec is not None and error is None and not checked:
                missing = [c for c in (cols.id, cols.description) if c not in rec]
                if missing:
                    raise DataError(
                        f"{self.path}: row {row}: no column {', '.join(map(repr, missing))}; the file has "
                        f"{sorted(map(str, rec))} (choose columns with --id-col, --title-col, --text-col)")
                checked = True
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
            yield InputRow(row=row, id=rid, title=title,
                           description=desc if isinstance(desc, str) else None, error=error,
                           extra={k: rec.get(k) for k in self.keep} if self.keep else None)
