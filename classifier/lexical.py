"""The lexical channel: Finnish-aware TF-IDF features behind one small interface, analyzers chosen by name.

Analyzers (``ANALYZERS``):
- ``char``: character 3-5-grams inside word boundaries. Needs nothing, and catches inflected forms and the parts of
  compounds (``työterveyshuollon`` shares ``terve``, ``huoll`` with ``työterveyshuolto``).
- ``lemma``: words lemmatised with simplemma (``työterveyshuollon`` -> ``työterveyshuolto``), hyphenated compounds also
  split into their parts (``pk-yrityksissä`` -> ``pk-yritys``, ``yritys``), stop words dropped. Readable terms for
  explanations.
- ``lemma+char`` (default): both, side by side.

The fitted vectorizer is plain data (vocabulary + idf weights), saved to JSON and arrays, never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from .text import words

FINNISH_STOPWORDS = frozenset("""
ja tai sekä että on ovat oli olla ei myös kuin kun jos niin se ne sen niiden sitä tämä nämä tämän näiden joka jotka
jonka joiden jossa joissa johon joihin josta mikä mitä ole olisi ollut ollaan mm esim ns noin jne yms tms eri kanssa
avulla kautta mukaan lisäksi osana sekä vain jo vielä nyt hyvin kaikki kaikkien muut muiden muu muun he hän me te
sekä kuten siten sillä koska mutta vaan eli ym ko vrt ks kk v vuonna vuoden vuosina aikana välillä noin n s t
""".split())

LEMMA_PREFIX = "w:"
CHAR_PREFIX = "c:"


@lru_cache(maxsize=200_000)
def _lemma(word: str) -> str:
    import simplemma

    return simplemma.lemmatize(word, lang="fi")


def lemma_groups(text: str) -> list[tuple[str, list[str]]]:
    """For each content word of a text: its lemma and the lemma features it yields (the lemma itself, and the
    parts of a hyphenated compound)."""
    out = []
    for w in words(text.lower()):
        if w in FINNISH_STOPWORDS or len(w) < 2 or w.isdigit():
            continue
        lemma = _lemma(w)
        if lemma in FINNISH_STOPWORDS:
            continue
        parts = [p for p in lemma.split("-") if len(p) > 2 and p not in FINNISH_STOPWORDS] if "-" in lemma else []
        out.append((lemma, [lemma] + parts))
    return out


def lemma_terms(text: str) -> list[str]:
    """Lemmatised content words of a text, hyphenated compounds also as their parts."""
    return [term for _, terms in lemma_groups(text) for term in terms]


def _lemma_analyzer(text: str) -> list[str]:
    return [LEMMA_PREFIX + t for t in lemma_terms(text)]


_CHAR = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True).build_analyzer()


def _char_analyzer(text: str) -> list[str]:
    return [CHAR_PREFIX + g for g in _CHAR(text)]


ANALYZERS = {
    "char": (_char_analyzer,),
    "lemma": (_lemma_analyzer,),
    "lemma+char": (_lemma_analyzer, _char_analyzer),
}


def analyze(name: str, text: str) -> list[str]:
    if name not in ANALYZERS:
        raise ValueError(f"unknown analyzer {name!r}; choose one of {sorted(ANALYZERS)}")
    out: list[str] = []
    for fn in ANALYZERS[name]:
        out.extend(fn(text))
    return out


@dataclass
class LexicalVectorizer:
    """TF-IDF (sublinear tf, l2 rows) over the named analyzer's terms."""

    analyzer: str = "lemma+char"
    min_df: int = 2
    max_features: int = 60_000
    vocabulary: dict[str, int] = field(default_factory=dict)
    idf: np.ndarray | None = None

    def _sk(self) -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=lambda t: analyze(self.analyzer, t), sublinear_tf=True,
                               min_df=self.min_df, max_features=self.max_features, dtype=np.float32)

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        vec = self._sk()
        X = vec.fit_transform(texts)
        # sort the vocabulary so that the same data always gives the same column order
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
        self.vocabulary = {t: i for i, t in enumerate(terms)}
        self.idf = vec.idf_.astype(np.float32)
        return X.tocsr()

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        if self.idf is None:
            raise RuntimeError("LexicalVectorizer is not fitted")
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            counts: dict[int, int] = {}
            for term in analyze(self.analyzer, text):
                j = self.vocabulary.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            for j, c in counts.items():
                rows.append(r)
                cols.append(j)
                vals.append((1.0 + np.log(c)) * self.idf[j])
        X = sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(texts), len(self.vocabulary)))
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms).dot(X), dtype=np.float32)

    @property
    def terms(self) -> list[str]:
        return sorted(self.vocabulary, key=self.vocabulary.get)

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"analyzer": self.analyzer, "min_df": self.min_df, "max_features": self.max_features,
                "terms": self.terms}
        return meta, {"idf": self.idf}

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "LexicalVectorizer":
        if meta["analyzer"] not in ANALYZERS:
            raise ValueError(f"model uses unknown analyzer {meta['analyzer']!r}")
        vec = cls(analyzer=meta["analyzer"], min_df=meta["min_df"], max_features=meta["max_features"])
        vec.vocabulary = {t: i for i, t in enumerate(meta["terms"])}
        vec.idf = np.asarray(arrays["idf"], dtype=np.float32)
        return vec


def word_contributions(text: str, analyzer: str, vocabulary: dict[str, int], x_row: sp.csr_matrix,
                       weights: np.ndarray) -> dict[str, float]:
    """Spread each feature's contribution (tf-idf value x weight) over the words it comes from.

    A lemma feature belongs to its lemma (the parts of a hyphenated compound to the compound); a character n-gram
    is shared equally by the whitespace tokens containing it. Returns {lemma: contribution}; the contributions add
    up to the lexical part of the linear score, ``x_row @ weights``.
    """
    x = x_row.toarray().ravel()
    contrib: dict[str, float] = {}
    lemma_owner: dict[int, str] = {}
    char_owners: dict[int, list[str]] = {}
    if "lemma" in analyzer:
        for lemma, terms in lemma_groups(text):
            for term in terms:
                j = vocabulary.get(LEMMA_PREFIX + term)
                if j is not None:
                    lemma_owner.setdefault(j, lemma)
    if "char" in analyzer:
        for token in text.lower().split():
            ws = words(token)
            owner = _lemma(ws[0]) if ws else token
            for g in set(_CHAR(token)):
                j = vocabulary.get(CHAR_PREFIX + g)
                if j is not None:
                    char_owners.setdefault(j, []).append(owner)
    for j, lemma in lemma_owner.items():
        contrib[lemma] = contrib.get(lemma, 0.0) + float(x[j] * weights[j])
    for j, owners in char_owners.items():
        share = float(x[j] * weights[j]) / len(owners)
        for owner in owners:
            contrib[owner] = contrib.get(owner, 0.0) + share
    return contrib
