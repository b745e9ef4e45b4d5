"""The lexical channel: Finnish-aware TF-IDF features behind one small interface, analyzers chosen by name.

Analyzers (``ANALYZERS``):
- ``char``: character 3-5-grams inside word boundaries. Needs nothing, and catches inflected forms and the parts of
  compounds (``työterveyshuollon`` shares ``terve``, ``huoll`` with ``työterveyshuolto``).
- ``lemma``: words lemmatised with simplemma (``työterveyshuollon`` -> ``työterveyshuolto``), hyphenated compounds also
  split into their parts (``pk-yrityksissä`` -> ``pk-yritys``, ``yritys``), stop words dropped. Readable terms for
  explanations.
- ``lemma+char`` (default): both, side by side.

The fitted vectorizer is plain data (vocabulary + idf weights), saved to JSON and arrays, never pickled.

Training fits through scikit-learn on ``analyze``. Prediction (``LexicalVectorizer.analyse``) gives the same
features for a whole batch at once, and fast, through ``classifier.lexical_index``; its result (``Analysis``) also
says which word each feature belongs to, for the explanations. Tests check both paths give the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from .text import words

if TYPE_CHECKING:
    from .lexical_index import Analysis, VocabularyIndex

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
    _index: "VocabularyIndex | None" = field(default=None, repr=False, compare=False)

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
        self._index = None
        return X.tocsr()

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        return self.analyse(texts).X

    def analyse(self, texts: Sequence[str]) -> "Analysis":
        """TF-IDF rows of ``texts`` and where each feature came from (see :class:`Analysis`).

        The same features as :func:`analyze` (the training path) gives, computed for the whole batch at once:
        character n-grams by rolling hashes over the batch's code points, looked up in a hash table of the
        vocabulary; lemma features by a per-word cache. Tested to equal the training path."""
        if self.idf is None:
            raise RuntimeError("LexicalVectorizer is not fitted")
        if self._index is None:
            from .lexical_index import VocabularyIndex

            self._index = VocabularyIndex(self.vocabulary)
        return self._index.analyse(list(texts), self.analyzer, self.idf)

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


def word_contributions(text: str, vectorizer: LexicalVectorizer, weights: np.ndarray) -> dict[str, float]:
    """{word: its share of ``x @ weights``} for one text (see :class:`Analysis`); the shares add up to the score."""
    analysis = vectorizer.analyse([text])
    shares = analysis.per_word(np.asarray(weights, dtype=np.float64))
    lo, hi = analysis.word_range(0)
    return {analysis.word_names[analysis.word_ids[g]]: float(shares[g]) for g in range(lo, hi)}
