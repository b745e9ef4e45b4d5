"""Explanations: why a project got its laari and tags, and how well it fits the pool.

- terms: each word's share of the lexical channel's score for the chosen laari against the other verdicts (and
  for each tag), from the model's own weights, so the terms are what the model actually used;
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

from .lexical import word_contributions
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

    def query_vectors(self, docs: Documents, model: LaariModel) -> np.ndarray:
        if self.space == EMBEDDING:
            return _unit(np.asarray(docs.embeddings, dtype=np.float32))
        X = model.vectorizer.transform(docs.texts)
        return _unit(X.toarray())


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)


def fit_verdict(percentile: float, is_out_of_theme: bool) -> str:
    if is_out_of_theme or percentile < OUTLIER_PERCENTILE:
        return "outlier"
    return "typical" if percentile >= TYPICAL_PERCENTILE else "borderline"


def top_terms(model: LaariModel, text: str, x_row: sp.csr_matrix | None, head_key: str, column: int,
              contrast: bool, n: int = 8) -> list[dict]:
    """Words pushing the lexical score of ``column`` up (and the strongest pushing it down), with weights."""
    head = getattr(model, head_key).get(LEXICAL)
    if head is None or x_row is None or model.vectorizer is None:
        return []
    w = head.coef[column].astype(np.float64)
    if contrast:  # softmax: what favours this verdict over the average of the others
        w = w - np.delete(head.coef, column, axis=0).mean(axis=0)
    contrib = word_contributions(text, model.vectorizer.analyzer, model.vectorizer.vocabulary, x_row, w)
    ranked = sorted(contrib.items(), key=lambda kv: -kv[1])
    pos = [{"term": t, "weight": round(v, 4)} for t, v in ranked[:n] if v > 0]
    neg = [{"term": t, "weight": round(v, 4)} for t, v in ranked[::-1][:3] if v < 0]
    return pos + neg


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


def neighbours(reference: Reference, query: np.ndarray, k: int = 3, exclude_id: str | None = None) -> list[dict]:
    sims = reference.vectors @ query
    out = []
    for i in np.argsort(-sims, kind="stable"):
        if exclude_id is not None and reference.ids[i] == exclude_id:
            continue
        out.append({"id": reference.ids[i], "title": reference.titles[i], "laari": reference.labels[i],
                    "similarity": round(float(sims[i]), 4)})
        if len(out) == k:
            break
    return out


def fit_of(reference: Reference, query: np.ndarray, laari_id: str, is_out_of_theme: bool) -> dict:
    """Similarity to the laari's centroid, its percentile among the laari's members, and the verdict."""
    if laari_id not in reference.centroid_ids:
        return {"laari": laari_id, "centroid_similarity": None, "percentile": None,
                "verdict": fit_verdict(0.0, True)}
    sim = float(reference.centroids[reference.centroid_ids.index(laari_id)] @ query)
    pct = reference.percentile(laari_id, sim)
    return {"laari": laari_id, "centroid_similarity": round(sim, 4), "percentile": round(pct, 1),
            "verdict": fit_verdict(pct, is_out_of_theme)}


def nearest_laari(reference: Reference, query: np.ndarray, laari_ids: list[str]) -> str:
    sims = {lid: float(reference.centroids[reference.centroid_ids.index(lid)] @ query)
            for lid in laari_ids if lid in reference.centroid_ids}
    return max(sims, key=sims.get)
