"""Pool (laari) statistics, computed once per loaded model from its reference set and weights.

- size: training projects in the pool;
- keywords: the lemmas with the largest lexical-router weight for the pool against the other verdicts (what the
  model itself uses); a model without a lexical channel falls back to the class TF-IDF of ``classifier.pools``
  over the training titles;
- cohesion: mean cosine similarity of the members to the model's centroid of the pool (and the lowest one), the
  similarity the fit verdict uses;
- nearest other pool and separation: ``classifier.pools.nearest_pools`` on the reference vectors, the same figures
  ``laari report`` gives for the same projects and vectors (centred; nearest = highest mean member-to-member
  similarity; separation = within-pool minus that between-pool similarity), with the cosine of the two centroids;
- representatives (closest to the centroid) and outliers (furthest; with the laari they are closer to, if any);
- a 2D map of every training project: ``classifier.pools.map_2d`` (PCA) of the centred reference vectors, with
  each pool's mean position on the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from classifier.lexical import LEMMA_PREFIX, lemma_terms
from classifier.model import LEXICAL
from classifier.pools import class_keywords, map_2d, nearest_pools, pool_geometry, prepare_space
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
    pools = [lid for lid in tax.laari_ids if lid in set(ref.labels)]
    Z = prepare_space(V) if len(V) else V
    neighbours = nearest_pools(pool_geometry(Z, ref.labels, pools), pools) if len(V) else {}

    keywords = _keywords_from_router(model, N_KEYWORDS)
    keyword_source = "lexical router weights"
    if keywords is None:
        keywords = class_keywords(ref.titles, ref.labels, model.verdicts, n=N_KEYWORDS, analyzer=lemma_terms)
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
        near = neighbours.get(lid) or {}
        if near.get("separation") is not None:  # none for a pool of one project: no within-pool similarity
            nearest = {"laari": near["nearest"], "centroid_similarity": near["centroid_similarity"],
                       "separation": near["separation"]}
        if others:
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

    coords, _, map_info = map_2d(Z) if len(V) else (np.zeros((0, 2)), "pca", {})
    explained = map_info.get("explained_variance", [0.0, 0.0])
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
                     map={"model_version": predictor.version, "method": "PCA of the centred reference vectors",
                          "explained_variance": explained, "points": points, "centroids": centroids})
