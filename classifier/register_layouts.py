"""Known register exports: their header names, which columns are the id, title and description, which official
columns a batch keeps beside laari's fields, and which of them a pool report cross-tabulates.

Header names are compared after trimming and case-folding (``Hankekoodi `` with the export's trailing space is
``hankekoodi``). A file whose header holds every required column of a layout is read with that layout's columns
when the caller did not name its own.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Iterable, Sequence


def fold(name) -> str:
    """A header name as layouts compare it: trimmed, case-folded, inner runs of whitespace as one space."""
    return " ".join(str(name).split()).casefold() if name is not None else ""


@dataclass(frozen=True)
class Layout:
    name: str
    columns: tuple[str, ...]  # the export's header names, as the export spells them (trimmed)
    id: str
    title: str
    description: str
    numbers: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    crosstab: tuple[str, ...] = ()  # official columns a pool report cross-tabulates laari against

    @property
    def kept(self) -> tuple[str, ...]:
        """The official columns a batch output keeps: all but the description (the input's long text)."""
        return tuple(c for c in self.columns if c != self.description)

    def matches(self, names: Iterable) -> bool:
        """Whether a header row is this export's: it has every column of the layout (others may be added)."""
        have = {fold(n) for n in names}
        return all(fold(c) in have for c in self.columns)


EURA_2021 = Layout(
    name="EURA 2021",
    columns=("Hankekoodi", "Ryhmähanketunnus", "Rahasto", "Tl", "Et", "Hankkeen nimi", "Toteuttajan nimi",
             "Toteuttajan Y-tunnus", "Rahoittava viranomainen", "Toiminnan tila", "Aloituspvm", "Päättymispvm",
             "Suunniteltu rahoitus yhteensä", "Tukitoimen ala", "Sijainti", "Toissijainen teema, vain ESR+",
             "Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta", "Hankekuvauksen osoite"),
    id="Hankekoodi",
    title="Hankkeen nimi",
    description="Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta",
    numbers=("Suunniteltu rahoitus yhteensä",),
    dates=("Aloituspvm", "Päättymispvm"),
    crosstab=("Et", "Toissijainen teema, vain ESR+"),
)

LAYOUTS: tuple[Layout, ...] = (EURA_2021,)
ALL_NAMES = frozenset(fold(c) for layout in LAYOUTS for c in layout.columns)
CROSSTAB_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(c for layout in LAYOUTS for c in layout.crosstab))


def find_layout(names: Iterable) -> Layout | None:
    names = list(names)
    return next((layout for layout in LAYOUTS if layout.matches(names)), None)


def near_miss(names: Iterable) -> tuple[Layout, list[str]] | None:
    """A layout the header almost matches (at least half of its columns, not all): the layout and the columns it
    lacks, to name in an error."""
    have = {fold(n) for n in names}
    for layout in LAYOUTS:
        missing = [c for c in layout.columns if fold(c) not in have]
        if missing and len(missing) <= len(layout.columns) // 2:
            return layout, missing
    return None


def by_name(name: str | None) -> Layout | None:
    return next((layout for layout in LAYOUTS if layout.name == name), None)


def header_score(values: Sequence) -> int:
    """How many cells of a row are header names of a known layout (to find the header row below a title)."""
    return sum(1 for v in values if isinstance(v, str) and fold(v) in ALL_NAMES)


def official_value(layout: Layout, column: str, value) -> str | None:
    """An official cell as the output keeps it: text (so that every output format holds it as it was), dates as
    ISO dates, whole numbers without ``.0``; ``None`` for an empty cell."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, _dt.datetime):
        return value.date().isoformat() if column in layout.dates or value.time() == _dt.time() else \
            value.isoformat(sep=" ")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def as_number(text) -> float | None:
    """A number column's text as a number (``125 000,50`` too), for the Excel output; None when it is not one."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    cleaned = str(text).strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        return float(cleaned) if cleaned else None
    except ValueError:
        return None
