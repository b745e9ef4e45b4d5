"""Rows into one Excel sheet, streamed: openpyxl's write-only mode (each row goes to a temporary file as it is
written, so memory does not grow with the rows), the header frozen and a filter on every column. The batch output
and the comparison report's moved-projects table use it, inside ``classifier.atomic.atomic_file``."""

from __future__ import annotations

import json
from typing import BinaryIO, Sequence

EXCEL_CELL_CHARS = 32_767  # the most characters an Excel cell holds
CUT_MARK = " …"


def _cell_text(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    if len(text) > EXCEL_CELL_CHARS:
        text = text[:EXCEL_CELL_CHARS - len(CUT_MARK)] + CUT_MARK
    return text


class XlsxRows:
    """``write(rows)`` any number of times, then ``close()``; ``fields`` are the columns, in order. Nested values
    (scores, tags, explanation, warnings) are JSON text and null an empty cell; the ``numbers`` columns are
    written as numbers where their text is one. A text longer than an Excel cell holds is cut, ending in ``…``
    (the JSONL and Parquet outputs keep it whole)."""

    def __init__(self, f: BinaryIO, fields: Sequence[str], *, sheet: str = "laari", numbers: Sequence[str] = ()):
        from openpyxl import Workbook

        self.f = f
        self.fields = tuple(fields)
        self.numbers = {i for i, k in enumerate(self.fields) if k in set(numbers)}
        self.wb = Workbook(write_only=True)
        self.ws = self.wb.create_sheet(sheet[:31])
        self.ws.freeze_panes = "A2"
        self.ws.append(list(self.fields))
        self.rows = 0

    def _value(self, i: int, v):
        if v is None:
            return None
        if isinstance(v, (dict, list, tuple)):
            return _cell_text(json.dumps(v, ensure_ascii=False))
        if i in self.numbers:
            from classifier.register_layouts import as_number

            n = as_number(v)
            if n is not None:
                return int(n) if n.is_integer() else n
        if isinstance(v, str):
            return _cell_text(v)
        return v

    def write(self, rows: list[dict]):
        for r in rows:
            self.ws.append([self._value(i, r.get(k)) for i, k in enumerate(self.fields)])
        self.rows += len(rows)

    def close(self):
        from openpyxl.utils import get_column_letter

        self.ws.auto_filter.ref = f"A1:{get_column_letter(max(1, len(self.fields)))}{self.rows + 1}"
        try:
            self.wb.save(self.f)
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Give up the sheet: end its row stream and remove the temporary file openpyxl streams the rows into
        (which it would otherwise remove only when the process exits)."""
        try:
            if not self.ws.closed:
                self.ws.close()
        except Exception:  # noqa: BLE001 - already broken; only tidying up
            pass
        writer = getattr(self.ws, "_writer", None)
        if writer is not None and isinstance(getattr(writer, "out", None), str):
            try:
                writer.cleanup()
            except (OSError, ValueError):
                pass
