"""Pool (laari) statistics on vectors, computed one way for every consumer: ``laari report``, ``laari discover``
and the service's ``/v1/laarit`` all call these functions, so they agree on the same data.

All figures use cosine similarity on unit vectors, *centred* by default (:func:`prepare_space`: the mean vector of
the whole set is subtracted first, because sentence embeddings share a large common component that makes every
pair look alike).

- :func:`pool_geometry`: per row its similarity to its own pool's centroid and its silhouette; per pair of pools the
  mean member-to-member similarity. Exact and in linear time: for unit vectors the mean cosine from x to the
  members of pool C is ``x . sum(C) / |C|``, so no n x n matrix is built (a 100,000-project register fits).
- :func:`nearest_pools`: each pool's nearest other pool (the highest mean member-to-member similarity) and its
  separation (within-pool mean pairwise similarity minus that between-pool similarity).
- :func:`class_keywords`: class-based TF-IDF keywords over lemmatized content words.
- :func:`map_2d`: a 2D map of the rows (PCA, or UMAP when installed and asked for).
- :func:`passage_vectors`: the documents' embeddings, in chunks, for all of the above.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

import numpy as np

KEYWORD_MAX_DOCS = 3000  # per pool, a fixed-seed sample beyond that


def passage_vectors(embedder, docs: Sequence[str], chunk: int = 256,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The embedder's passage vectors of ``docs`` [n, dim], ``chunk`` documents at a time (``progress(done,
    total)`` after each); through the embedder's cache, so documents a batch run embedded cost nothing."""
    from .embedders import TextKind

    parts = []
    for start in range(0, len(docs), chunk):
        parts.append(np.asarray(embedder.encode(list(docs[start:start + chunk]), TextKind.PASSAGE), dtype=np.float32))
        if progress:
            progress(min(start + chunk, len(docs)), len(docs))
    dim = getattr(embedder, "dim", 0) or 0
    return np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)


def unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)


def prepare_space(X: np.ndarray, center: bool = True) -> np.ndarray:
    X = unit_rows(X)
    if center:
        X = unit_rows(X - X.mean(axis=0, keepdims=True))
    return X


def pool_geometry(Z: np.ndarray, labels: Sequence[str], pools: Sequence[str]) -> dict:
    """Exact per-row and per-pool figures on unit rows ``Z``; rows whose label is not in ``pools`` (the
    out-of-theme group) get a centroid similarity to their own group but no silhouette.

    Returns: ``centroids`` {group: unit vector}, ``sim`` [n] (cosine to the own group's centroid), ``silhouette``
    [n] (NaN outside the pools), ``nearest`` [n] (index into pools of the nearest other pool, -1 outside),
    ``pairwise`` [k, k] (mean cosine between members of two pools; diagonal: within, self-pairs excluded)."""
    labels = np.asarray(labels, dtype=object)
    pools = list(pools)
    groups = list(dict.fromkeys(list(pools) + sorted(set(labels) - set(pools))))
    sums, counts, centroids = {}, {}, {}
    for g in groups:
        m = labels == g
        counts[g] = int(m.sum())
        if counts[g]:
            sums[g] = Z[m].sum(axis=0)
            centroids[g] = sums[g] / max(np.linalg.norm(sums[g]), 1e-12)
    sim = np.full(len(Z), np.nan)
    for g in groups:
        m = labels == g
        if counts[g]:
            sim[m] = Z[m] @ centroids[g]
    k = len(pools)
    silhouette = np.full(len(Z), np.nan)
    nearest = np.full(len(Z), -1, dtype=int)
    pairwise = np.full((k, k), np.nan)
    present = [p for p in pools if counts.get(p)]
    if present:
        S = np.stack([sums[p] for p in present])  # [k', d]
        n = np.array([counts[p] for p in present], dtype=np.float64)
        dots = Z @ S.T  # [N, k']: x . sum(C)
        mean_dist = 1.0 - dots / n  # mean cosine distance to each pool (self included for its own pool)
        idx = {p: i for i, p in enumerate(present)}
        for p in present:
            i = idx[p]
            m = labels == p
            if len(present) < 2:
                continue
            own_n = n[i]
            a = 1.0 - (dots[m, i] - 1.0) / max(own_n - 1.0, 1.0)
            other = mean_dist[m].copy()
            other[:, i] = np.inf
            b = other.min(axis=1)
            s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
            if own_n < 2:
                s = np.zeros_like(s)
            silhouette[m] = s
            nearest[m] = [pools.index(present[j]) for j in other.argmin(axis=1)]
        G = S @ S.T
        for a_i, a in enumerate(present):
            for b_i, b in enumerate(present):
                ia, ib = pools.index(a), pools.index(b)
                if a_i == b_i:
                    na = n[a_i]
                    pairwise[ia, ib] = (G[a_i, a_i] - na) / (na * (na - 1)) if na > 1 else np.nan
                else:
                    pairwise[ia, ib] = G[a_i, b_i] / (n[a_i] * n[b_i])
    return {"centroids": centroids, "counts": counts, "sim": sim, "silhouette": silhouette, "nearest": nearest,
            "pairwise": pairwise}


def class_keywords(texts: Sequence[str], labels: Sequence[str], groups: Sequence[str], n: int = 10,
                   max_docs: int = KEYWORD_MAX_DOCS, seed: int = 0, analyzer: Callable[[str], list[str]] | None = None,
                   max_df: float | None = None) -> dict[str, list[dict]]:
    """Class-based TF-IDF (c-TF-IDF): each group's lemma counts as one document; weight = term frequency in the
    group (normalised by the group's length) x log(1 + A / f), A = mean number of terms per group, f = the term's
    frequency over all groups. Terms that occur in more than ``max_df`` of all projects (default: 30 %, or
    1.5 / number of groups when that is more) say nothing about a pool and are left out ("hanke", "työntekijä");
    a keyword must occur in at least two of the group's projects and contain a letter, so single-project names and
    numbers do not become keywords."""
    if analyzer is None:
        from .lexical import lemma_terms as analyzer
    labels = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(seed)
    tf: dict[str, Counter] = {}
    df: dict[str, Counter] = {}
    overall_df: Counter = Counter()
    n_docs = 0
    for g in groups:
        idx = np.flatnonzero(labels == g)
        if len(idx) > max_docs:
            idx = np.sort(rng.choice(idx, max_docs, replace=False))
        tf[g], df[g] = Counter(), Counter()
        for i in idx:
            terms = [t for t in analyzer(texts[i]) if any(ch.isalpha() for ch in t) and len(t) > 2]
            tf[g].update(terms)
            unique = set(terms)
            df[g].update(unique)
            overall_df.update(unique)
            n_docs += 1
    if max_df is None:
        max_df = max(0.3, 1.5 / max(len(groups), 1))
    too_common = {t for t, c in overall_df.items() if c > max_df * n_docs} if n_docs >= 10 else set()
    total = Counter()
    for g in groups:
        total.update(tf[g])
    lengths = [sum(tf[g].values()) for g in groups]
    A = float(np.mean(lengths)) if lengths else 0.0
    out = {}
    for g in groups:
        size = sum(tf[g].values())
        min_df = 2 if sum(labels == g) >= 2 else 1
        scored = [(t, (c / max(size, 1)) * np.log(1 + A / total[t])) for t, c in tf[g].items()
                  if df[g][t] >= min_df and t not in too_common]
        scored.sort(key=lambda kv: (-kv[1], kv[0]))
        out[g] = [{"term": t, "weight": round(float(w), 5)} for t, w in scored[:n]]
    return out


def nearest_pools(geo: dict, pools: Sequence[str]) -> dict[str, dict]:
    """Per pool (of ``pool_geometry``'s ``pools``): ``within_similarity`` (mean pairwise similarity of its
    members, None for a single member), and when another pool has members, ``nearest`` (the pool with the highest
    mean member-to-member similarity), ``between_similarity`` (that similarity), ``separation`` (within minus
    between) and ``centroid_similarity`` (cosine of the two centroids); None where there is no other pool."""
    pools = list(pools)
    out = {}
    for pi, p in enumerate(pools):
        row = geo["pairwise"][pi]
        within = None if np.isnan(row[pi]) else round(float(row[pi]), 4)
        others = [(pools[j], float(row[j])) for j in range(len(pools)) if j != pi and not np.isnan(row[j])]
        block = {"within_similarity": within, "nearest": None, "between_similarity": None, "separation": None,
                 "centroid_similarity": None}
        if others:
            near, between = max(others, key=lambda kv: kv[1])
            cents = geo["centroids"]
            block.update(nearest=near, between_similarity=round(between, 4),
                         separation=None if within is None else round(within - between, 4),
                         centroid_similarity=round(float(cents[p] @ cents[near]), 4))
        out[p] = block
    return out


def map_2d(Z: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str, dict]:
    """2D coordinates of every row: PCA (deterministic), or UMAP when installed and asked for."""
    if method == "umap":
        try:
            import umap  # type: ignore

            coords = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(Z)
            return np.asarray(coords), "umap", {}
        except ImportError:
            method = "pca"
    from sklearn.decomposition import PCA

    if len(Z) < 3:
        return np.zeros((len(Z), 2)), "pca", {"explained_variance": [0.0, 0.0]}
    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(Z)
    return coords, "pca", {"explained_variance": [round(float(v), 4) for v in pca.explained_variance_ratio_]}
