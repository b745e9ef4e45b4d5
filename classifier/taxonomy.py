"""The taxonomy: laarit (pools), the out-of-theme verdict, thematic tags and facets, loaded from YAML and validated.

A taxonomy is data: the default lives in ``classifier/taxonomy/default.yaml`` and a user may point to another
file. Every error names the file and the field (``laarit[2].assessment``) that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

DEFAULT_TAXONOMY_PATH = Path(__file__).parent / "taxonomy" / "default.yaml"
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the file and field."""


@dataclass(frozen=True)
class Laari:
    id: str
    name_fi: str
    name_en: str
    description: str
    assessment: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tag:
    id: str
    name_fi: str
    name_en: str
    description: str


@dataclass(frozen=True)
class FacetValue:
    id: str
    name_fi: str
    name_en: str
    description: str = ""


@dataclass(frozen=True)
class Facet:
    id: str
    name_fi: str
    name_en: str
    multi: bool
    values: tuple[FacetValue, ...]

    def value_ids(self) -> list[str]:
        return [v.id for v in self.values]


@dataclass(frozen=True)
class Taxonomy:
    version: str
    name: str
    laarit: tuple[Laari, ...]
    out_of_theme: Laari
    tags: tuple[Tag, ...]
    facets: tuple[Facet, ...] = ()
    source: str = field(default="", compare=False)

    @property
    def laari_ids(self) -> list[str]:
        return [laari.id for laari in self.laarit]

    @property
    def verdict_ids(self) -> list[str]:
        """Every label a project can get: the laarit and the out-of-theme verdict."""
        return self.laari_ids + [self.out_of_theme.id]

    @property
    def tag_ids(self) -> list[str]:
        return [t.id for t in self.tags]

    def laari(self, laari_id: str) -> Laari:
        for laari in (*self.laarit, self.out_of_theme):
            if laari.id == laari_id:
                return laari
        raise KeyError(laari_id)

    def tag(self, tag_id: str) -> Tag:
        for t in self.tags:
            if t.id == tag_id:
                return t
        raise KeyError(tag_id)

    def facet(self, facet_id: str) -> Facet:
        for f in self.facets:
            if f.id == facet_id:
                return f
        raise KeyError(facet_id)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("source")
        return data

    def content_hash(self) -> str:
        """sha256 of the taxonomy's content (not of the file's formatting)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def diff(self, other: "Taxonomy") -> dict[str, list[str]]:
        """Ids that differ between two taxonomies (used to refuse a model trained on another taxonomy)."""
        out = {}
        for kind, mine, theirs in (
            ("laarit", self.verdict_ids, other.verdict_ids),
            ("tags", self.tag_ids, other.tag_ids),
        ):
            only_mine = sorted(set(mine) - set(theirs))
            only_theirs = sorted(set(theirs) - set(mine))
            if only_mine or only_theirs:
                out[kind] = [f"+{i}" for i in only_mine] + [f"-{i}" for i in only_theirs]
        return out


class _Reader:
    """Field access with error messages that name the file and the path of the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str):
        raise TaxonomyError(f"{self.source}: {where}: {message}")

    def mapping(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def text(self, data: dict, key: str, where: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(f"{where}.{key}", "missing field")
            return ""
        if not isinstance(value, (str, int, float)):
            self.fail(f"{where}.{key}", f"expected text, got {type(value).__name__}")
        return str(value).strip()

    def ident(self, data: dict, where: str) -> str:
        value = self.text(data, "id", where)
        if not ID_PATTERN.match(value):
            self.fail(f"{where}.id", f"{value!r} is not a valid id (lowercase letters, digits, underscores)")
        return value

    def texts(self, data: dict, key: str, where: str, required: bool = False) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "missing field")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(f"{where}.{key}", "expected a list of texts")
        if required and not value:
            self.fail(f"{where}.{key}", "must not be empty")
        return tuple(v.strip() for v in value)

    def items(self, data: dict, key: str, where: str) -> list:
        value = data.get(key)
        if value is None:
            self.fail(f"{where}{key}", "missing field")
        if not isinstance(value, list) or not value:
            self.fail(f"{where}{key}", "expected a non-empty list")
        return value

    def unique(self, ids: list[str], where: str):
        seen = set()
        for i, value in enumerate(ids):
            if value in seen:
                self.fail(f"{where}[{i}].id", f"duplicate id {value!r}")
            seen.add(value)


KNOWN_TOP_KEYS = {"version", "name", "language", "laarit", "out_of_theme", "tags", "facets"}


def parse_taxonomy(data, source: str = "<taxonomy>") -> Taxonomy:
    r = _Reader(source)
    data = r.mapping(data, "top level")
    unknown = sorted(set(data) - KNOWN_TOP_KEYS)
    if unknown:
        r.fail("top level", f"unknown field(s) {unknown}; expected some of {sorted(KNOWN_TOP_KEYS)}")

    laarit = []
    for i, item in enumerate(r.items(data, "laarit", "")):
        where = f"laarit[{i}]"
        item = r.mapping(item, where)
        laarit.append(Laari(
            id=r.ident(item, where), name_fi=r.text(item, "name_fi", where), name_en=r.text(item, "name_en", where),
            description=r.text(item, "description", where),
            assessment=r.texts(item, "assessment", where, required=True),
            include=r.texts(item, "include", where), exclude=r.texts(item, "exclude", where),
        ))
    r.unique([laari.id for laari in laarit], "laarit")
    if len(laarit) < 2:
        r.fail("laarit", "at least two laarit are needed")

    oot = r.mapping(data.get("out_of_theme"), "out_of_theme")
    out_of_theme = Laari(id=r.ident(oot, "out_of_theme"), name_fi=r.text(oot, "name_fi", "out_of_theme"),
                         name_en=r.text(oot, "name_en", "out_of_theme"),
                         description=r.text(oot, "description", "out_of_theme"), assessment=())
    if out_of_theme.id in {laari.id for laari in laarit}:
        r.fail("out_of_theme.id", f"{out_of_theme.id!r} is also a laari id")

    tags = []
    for i, item in enumerate(r.items(data, "tags", "")):
        where = f"tags[{i}]"
        item = r.mapping(item, where)
        tags.append(Tag(id=r.ident(item, where), name_fi=r.text(item, "name_fi", where),
                        name_en=r.text(item, "name_en", where), description=r.text(item, "description", where)))
    r.unique([t.id for t in tags], "tags")

    facets = []
    for i, item in enumerate(data.get("facets") or []):
        where = f"facets[{i}]"
        item = r.mapping(item, where)
        values = []
        for j, v in enumerate(r.items(item, "values", where + ".")):
            vw = f"{where}.values[{j}]"
            v = r.mapping(v, vw)
            values.append(FacetValue(id=r.ident(v, vw), name_fi=r.text(v, "name_fi", vw),
                                     name_en=r.text(v, "name_en", vw),
                                     description=r.text(v, "description", vw, required=False)))
        r.unique([v.id for v in values], f"{where}.values")
        multi = item.get("multi", True)
        if not isinstance(multi, bool):
            r.fail(f"{where}.multi", "expected true or false")
        facets.append(Facet(id=r.ident(item, where), name_fi=r.text(item, "name_fi", where),
                            name_en=r.text(item, "name_en", where), multi=multi, values=tuple(values)))
    r.unique([f.id for f in facets], "facets")

    return Taxonomy(version=r.text(data, "version", "top level"), name=r.text(data, "name", "top level"),
                    laarit=tuple(laarit), out_of_theme=out_of_theme, tags=tuple(tags), facets=tuple(facets),
                    source=source)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (the default one when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_TAXONOMY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise TaxonomyError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return parse_taxonomy(data, source=str(path))


def taxonomy_from_dict(data: dict) -> Taxonomy:
    """Rebuild a taxonomy stored inside a model bundle."""
    return parse_taxonomy({
        "version": data["version"], "name": data["name"], "laarit": data["laarit"],
        "out_of_theme": data["out_of_theme"], "tags": data["tags"], "facets": data.get("facets", []),
    }, source="<model bundle>")
