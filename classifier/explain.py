"""Explanations: why a project got its laari and tags, and how well it fits the pool.

- terms: each word's share of the lexical channel's score for the chosen laari against the other verdicts (and
  for each tag), from the model's own weights, so the terms are what the model actually used;
  computed for a whole batch at once (``term_explanations``);
- sentences: the 1-3 sentences whose own score for the chosen laari is highest (the same router applied to each
  sentence on its own);
- neighbours: the most similar training projects (cosine of embeddings, or of TF-IDF vectors for a lexical model);
- runner-up laari and the margin;
- fit: similarity to the laari's centroid as a percentile among that laari's training members, with a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .lexical_index import Analysis
from .model import EMBEDDING, LEXICAL, Documents, LaariModel

TYPICAL_PERCENTILE = 20.0  # at or above: typical member of the pool
OUTLIER_PERCENTILE = 3.0  # below: outlier (further from the centroid than 97% of the pool's members)


@dataclass
class Reference:
    """The training projects as the explanations need them: vectors, labels, per-laari centroids and spreads."""

    ids: list[str]
    titles: list[str]
    labels: list[str]
    space: str  # "embedding" or "lexical"
    vectors: np.ndarray  # [n, d] unit rows (dense)
    centroid_ids: list[str]
    centroids: np.ndarray  # [k, d] unit rows
    member_sims: dict[str, np.ndarray]  # laari -> sorted similarities of its members to its centroid

    @classmethod
    def build(cls, ids, titles, labels, vectors: np.ndarray, space: str, laari_ids: list[str]) -> "Reference":
        vectors = _unit(np.asarray(vectors, dtype=np.float32))
        labels = list(labels)
        centroid_ids, centroids, member_sims = [], [], {}
        for lid in laari_ids:
            members = np.array([lab == lid for lab in labels])
            if not members.any():
                continue
            c = _unit(vectors[members].mean(axis=0, keepdims=True))[0]
            centroid_ids.append(lid)
            centroids.append(c)
            member_sims[lid] = np.sort(vectors[members] @ c).astype(np.float32)
        return cls(list(ids), list(titles), labels, space, vectors, centroid_ids,
                   np.asarray(centroids, dtype=np.float32), member_sims)

    def percentile(self, laari_id: str, similarity: float) -> float:
        sims = self.member_sims[laari_id]
        return float(100.0 * np.searchsorted(sims, similarity, side="right") / len(sims))

    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"ids": self.ids, "titles": self.titles, "labels": self.labels, "space": self.space,
                "centroid_ids": self.centroid_ids}
        arrays = {"reference.vectors": self.vectors, "reference.centroids": self.centroids}
        arrays.update({f"reference.sims.{k}": v for k, v in self.member_sims.items()})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "Reference":
        return cls(list(meta["ids"]), list(meta["titles"]), list(meta["labels"]), meta["space"],
                   arrays["reference.vectors"], list(meta["centroid_ids"]), arrays["reference.centroids"],
                   {k: arrays[f"reference.sims.{k}"] for k in meta["centroid_ids"]})

    def query_vectors(self, docs: Documents, model: LaariModel, lexical_X: sp.spmatrix | None = None) -> np.ndarray:
        """Unit vectors of ``docs`` in the reference's space (``lexical_X``: their TF-IDF rows, if already made)."""
        if self.space == EMBEDDING:
            return _unit(np.asarray(docs.embeddings, dtype=np.float32))
        X = lexical_X if lexical_X is not None else model.vectorizer.transform(model.lexical_texts(docs))
        return _unit(X.toarray())


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)


def fit_verdict(percentile: float, is_out_of_theme: bool) -> str:
    if is_out_of_theme or percentile < OUTLIER_PERCENTILE:
        return "outlier"
    return "typical" if percentile >= TYPICAL_PERCENTILE else "borderline"


def contrast_weights(coef: np.ndarray) -> np.ndarray:
    """Row v: what favours verdict v over the average of the others in a softmax (``coef[v]`` minus the others'
    mean), the weights whose per-word shares explain the choice of v."""
    coef = np.asarray(coef, dtype=np.float64)
    m = coef.shape[0]
    return coef - (coef.sum(axis=0, keepdims=True) - coef) / max(1, m - 1)


def term_explanations(model: LaariModel, analysis: Analysis | None, verdict_columns: np.ndarray,
                      tags: list[list[str]], n_terms: int = 8, n_tag_terms: int = 5) -> list[tuple[list, dict]]:
    """For each row: the words behind its verdict (largest shares of the lexical router score for the verdict
    against the others, and the 3 most against) and behind each of its tags; empty where the model has no lexical
    channel. Shares come from the model's own weights (see ``Analysis``), so they are what the model used."""
    router = model.router.get(LEXICAL)
    tagger = model.tagger.get(LEXICAL)
    n = len(verdict_columns)
    if analysis is None or router is None:
        return [([], {t: [] for t in row_tags}) for row_tags in tags]
    weights = [contrast_weights(router.coef)] + ([tagger.coef] if tagger is not None else [])
    shares = analysis.per_word(np.vstack(weights))  # [groups, verdicts (+ tags)]
    verdict_share = shares[np.arange(shares.shape[0]), np.asarray(verdict_columns)[analysis.word_rows]]
    ranking = analysis.ranking(verdict_share)
    terms = [analysis.top_words(r, verdict_share, ranking, n_terms) for r in range(n)]
    tag_terms: list[dict] = [{} for _ in range(n)]
    n_verdicts = router.coef.shape[0]
    for j, tag in enumerate(model.tag_ids):
        rows = [r for r in range(n) if tag in tags[r]]
        if not rows or tagger is None:
            continue
        tag_share = shares[:, n_verdicts + j]
        has_tag = np.zeros(n, dtype=bool)
        has_tag[rows] = True
        tag_ranking = analysis.ranking(tag_share, has_tag)
        for r in rows:
            tag_terms[r][tag] = analysis.top_words(r, tag_share, tag_ranking, n_tag_terms)
    return [(terms[r], {t: tag_terms[r].get(t, []) for t in tags[r]}) for r in range(n)]


def sentence_support(model: LaariModel, sentences: list[str], sentence_embeddings: np.ndarray | None,
                     column: int, k: int = 3) -> list[dict]:
    """Score each sentence on its own with the router; keep the ``k`` that most support verdict ``column``."""
    if not sentences:
        return []
    P = model.scores(Documents(sentences, sentence_embeddings), router_only=True).verdict_proba
    support = P[:, column]
    order = np.argsort(-support, kind="stable")[:k]
    return [{"index": int(i), "text": sentences[i], "support": round(float(support[i]), 4)}
            for i in sorted(order) if support[i] > 0]


def neighbours(reference: Reference, queries: np.ndarray, k: int = 3,
               exclude_ids: list[str | None] | None = None) -> list[list[dict]]:
    """For each query row: the ``k`` most similar reference projects (leaving out a project's own id)."""
    Q = np.atleast_2d(queries)
    if not len(Q):
        return []
    sims = Q @ reference.vectors.T
    exclude_ids = exclude_ids or [None] * len(Q)
    take = min(sims.shape[1], k + 1)  # one more, in case the project itself is among them
    top = np.argpartition(-sims, take - 1, axis=1)[:, :take] if take < sims.shape[1] else \
        np.tile(np.arange(sims.shape[1]), (len(Q), 1))
    out = []
    for r in range(len(Q)):
        cand = top[r][np.lexsort((top[r], -sims[r, top[r]]))]  # by similarity, ties by reference order
        row = []
        for i in cand:
            if exclude_ids[r] is not None and reference.ids[i] == exclude_ids[r]:
                continue
            row.append({"id": reference.ids[i], "title": reference.titles[i], "laari": reference.labels[i],
                        "similarity": round(float(sims[r, i]), 4)})
            if len(row) == k:
                break
        out.append(row)
    return out


def fits(reference: Reference, queries: np.ndarray, laari_ids: list[str], out_of_theme: list[bool]) -> list[dict]:
    """For each query row: similarity to its laari's centroid, the percentile among the laari's members, verdict."""
    Q = np.atleast_2d(queries)
    sims = Q @ reference.centroids.T if len(reference.centroid_ids) else np.zeros((len(Q), 0))
    out = []
    for r, (lid, is_out) in enumerate(zip(laari_ids, out_of_theme)):
        if lid not in reference.centroid_ids:
            out.append({"laari": lid, "centroid_similarity": None, "percentile": None,
                        "verdict": fit_verdict(0.0, True)})
            continue
        sim = float(sims[r, reference.centroid_ids.index(lid)])
        pct = reference.percentile(lid, sim)
        out.append({"laari": lid, "centroid_similarity": round(sim, 4), "percentile": round(pct, 1),
                    "verdict": fit_verdict(pct, is_out)})
    return out
