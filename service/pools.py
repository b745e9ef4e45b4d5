"""Pool (laari) statistics, computed once per loaded model from its reference set and weights.

- size: training projects in the pool;
- keywords: the lemmas with the largest lexical-router weight for the pool against the other verdicts (what the
  model itself uses); a model without a lexical channel falls back to class TF-IDF over the training titles;
- cohesion: mean cosine similarity of the members to the pool's centroid (and the lowest one);
- nearest other pool (by centroid similarity) and the separation: the members' mean similarity to their own
  centroid minus their mean similarity to the nearest pool's centroid;
- representatives (closest to the centroid) and outliers (furthest; with the laari they are closer to, if any);
- a 2D map of every training project: PCA of the reference vectors (via the Gram matrix, so any dimension works),
  with each pool's mean position on the map.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from classifier.lexical import LEMMA_PREFIX, lemma_terms
from classifier.model import LEXICAL
from classifier.predictor import Predictor

N_KEYWORDS = 12


@dataclass
class PoolStats:
    model_version: str
    space: str
    laarit: dict[str, dict]  # laari id -> statistics (full lists of representatives/outliers)
    out_of_theme: dict
    map: dict

    def summary(self, laari_id: str, members: int = 5) -> dict:
        d = dict(self.laarit[laari_id])
        d["representatives"] = d["representatives"][:members]
        d["outliers"] = d["outliers"][:members]
        return d


def _keywords_from_router(model, n: int) -> dict[str, list[dict]] | None:
    head = model.router.get(LEXICAL)
    vec = model.vectorizer
    if head is None or vec is None:
        return None
    terms = vec.terms
    lemma_cols = np.array([i for i, t in enumerate(terms) if t.startswith(LEMMA_PREFIX)], dtype=int)
    if lemma_cols.size == 0:
        return None
    coef = head.coef[:, lemma_cols].astype(np.float64)
    out = {}
    for col, verdict in enumerate(model.verdicts):
        w = coef[col] - np.delete(coef, col, axis=0).mean(axis=0)
        order = np.argsort(-w, kind="stable")[:n]
        out[verdict] = [{"term": terms[lemma_cols[j]][len(LEMMA_PREFIX):], "weight": round(float(w[j]), 4)}
                        for j in order if w[j] > 0]
    return out


def _keywords_from_titles(titles: list[str], labels: list[str], verdicts: list[str], n: int) -> dict[str, list[dict]]:
    """Class TF-IDF: term frequency within the pool's titles times log(pools / pools using the term)."""
    counts = {v: Counter() for v in verdicts}
    for title, label in zip(titles, labels):
        if label in counts:
            counts[label].update(set(lemma_terms(title)))
    df = Counter()
    for c in counts.values():
        df.update(c.keys())
    out = {}
    for v, c in counts.items():
        total = sum(c.values()) or 1
        scored = sorted(((t, k / total * math.log(1 + len(verdicts) / df[t])) for t, k in c.items()),
                        key=lambda kv: -kv[1])[:n]
        out[v] = [{"term": t, "weight": round(s, 4)} for t, s in scored]
    return out


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float], np.ndarray]:
    """(coordinates [n, 2], mean, explained variance ratios, projection [d, 2]) of rows X."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    Xc = X - mean
    if len(X) < 3:
        proj = np.zeros((X.shape[1], 2))
        return np.zeros((len(X), 2)), mean, [0.0, 0.0], proj
    G = Xc @ Xc.T
    vals, vecs = np.linalg.eigh(G)
    order = np.argsort(-vals)[:2]
    vals = np.clip(vals[order], 1e-12, None)
    vecs = vecs[:, order]
    proj = (Xc.T @ vecs) / np.sqrt(vals)  # [d, 2] unit principal axes
    for j in range(2):  # a deterministic sign: the largest loading is positive
        if proj[np.argmax(np.abs(proj[:, j])), j] < 0:
            proj[:, j] = -proj[:, j]
    coords = Xc @ proj
    total = float(np.trace(G)) or 1.0
    return coords, mean, [round(float(v / total), 4) for v in vals], proj


def compute_pools(predictor: Predictor, n_members: int = 15) -> PoolStats:
    ref = predictor.reference
    model = predictor.model
    tax = predictor.taxonomy
    labels = np.asarray(ref.labels)
    V = np.asarray(ref.vectors, dtype=np.float32)
    cids = list(ref.centroid_ids)
    C = np.asarray(ref.centroids, dtype=np.float32)
    sims_all = V @ C.T if len(cids) else np.zeros((len(V), 0), dtype=np.float32)  # [n, k]
    laari_cols = [cids.index(lid) for lid in tax.laari_ids if lid in cids]

    keywords = _keywords_from_router(model, N_KEYWORDS)
    keyword_source = "lexical router weights"
    if keywords is None:
        keywords = _keywords_from_titles(ref.titles, ref.labels, model.verdicts, N_KEYWORDS)
        keyword_source = "class TF-IDF of training titles"

    laarit: dict[str, dict] = {}
    for laari in tax.laarit:
        lid = laari.id
        members = np.flatnonzero(labels == lid)
        base = {"id": lid, "name_fi": laari.name_fi, "name_en": laari.name_en, "assessment": list(laari.assessment),
                "size": int(members.size), "keywords": keywords.get(lid, []), "keyword_source": keyword_source}
        if lid not in cids or members.size == 0:
            laarit[lid] = {**base, "cohesion": None, "min_similarity": None, "closer_to_other": 0, "nearest": None,
                           "representatives": [], "outliers": []}
            continue
        col = cids.index(lid)
        own = sims_all[members, col]
        others = [c for c in laari_cols if c != col]
        nearest = None
        closer = [None] * members.size
        if others:
            csims = C[others] @ C[col]
            j = int(np.argmax(csims))
            nc = others[j]
            nearest = {"laari": cids[nc], "centroid_similarity": round(float(csims[j]), 4),
                       "separation": round(float(own.mean() - sims_all[members, nc].mean()), 4)}
            other_best = sims_all[np.ix_(members, others)]
            best_idx = other_best.argmax(axis=1)
            for m in range(members.size):
                if other_best[m, best_idx[m]] > own[m]:
                    closer[m] = cids[others[best_idx[m]]]

        def member(m: int) -> dict:
            i = int(members[m])
            return {"id": ref.ids[i], "title": ref.titles[i], "similarity": round(float(own[m]), 4),
                    "percentile": round(ref.percentile(lid, float(own[m])), 1), "closer_to": closer[m]}

        order = np.argsort(-own, kind="stable")
        laarit[lid] = {**base, "cohesion": round(float(own.mean()), 4), "min_similarity": round(float(own.min()), 4),
                       "closer_to_other": int(sum(c is not None for c in closer)), "nearest": nearest,
                       "representatives": [member(m) for m in order[:n_members]],
                       "outliers": [member(m) for m in order[::-1][:n_members]]}

    out_id = tax.out_of_theme.id
    out_members = np.flatnonzero(labels == out_id)
    out_of_theme = {"id": out_id, "name_fi": tax.out_of_theme.name_fi, "name_en": tax.out_of_theme.name_en,
                    "size": int(out_members.size), "keywords": keywords.get(out_id, [])}

    coords, mean, explained, proj = pca_2d(V) if len(V) else (np.zeros((0, 2)), None, [0.0, 0.0], None)
    scale = float(np.abs(coords).max()) if coords.size else 1.0
    scale = scale or 1.0
    points = [{"id": ref.ids[i], "title": ref.titles[i], "laari": ref.labels[i],
               "x": round(float(coords[i, 0] / scale), 4), "y": round(float(coords[i, 1] / scale), 4)}
              for i in range(len(V))]
    centroids = []  # the mean of each pool's points on the map (where its members are drawn)
    for cid in cids:
        members = np.flatnonzero(labels == cid)
        if members.size and coords.size:
            cx, cy = coords[members].mean(axis=0) / scale
            centroids.append({"id": cid, "title": tax.laari(cid).name_fi, "laari": cid, "x": round(float(cx), 4),
                              "y": round(float(cy), 4)})
    return PoolStats(model_version=predictor.version, space=ref.space, laarit=laarit, out_of_theme=out_of_theme,
                     map={"model_version": predictor.version, "method": "PCA of the reference vectors",
                          "explained_variance": explained, "points": points, "centroids": centroids})
