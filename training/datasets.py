"""Labelled training and evaluation sets (JSONL, CSV, TSV, Parquet, Excel, read by ``classifier.tables``),
validated against a taxonomy, with errors that say where (file, line, field)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from classifier.tables import DataError, iter_records
from classifier.taxonomy import Taxonomy


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
