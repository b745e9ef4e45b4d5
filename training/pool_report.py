"""Pool homogeneity reports: is each laari (pool) homogeneous enough for one uniform assessment metric?

Input: projects with a pool label and a text (a batch output joined with its input, labelled training data, or
clusters from ``laari discover``), embedded with the model's embedder (cached) or, for a lexical-only model, as
TF-IDF reduced by SVD.

Figures (all with cosine similarity on *centred* unit vectors by default: the mean vector of the whole set is
subtracted first, because sentence embeddings share a large common component that makes every pair look alike;
``center=False`` keeps the raw vectors):

- per pool: size; cohesion = mean cosine of the members to the pool centroid, with its spread (standard deviation
  and quantiles); mean silhouette (cosine distance; among pools only, the out-of-theme group is not a pool);
  nearest other pool = the pool with the highest mean member-to-member similarity, and separation = within-pool
  mean pairwise similarity minus that between-pool similarity; class-based TF-IDF keywords over lemmatized content
  words (``classifier.lexical.lemma_terms``); representative projects (closest to the centroid); outliers for
  review (silhouette below 0: closer to another pool; or similarity to the centroid below Q1 - 1.5 IQR of the
  pool); the pool's assessment metric from the taxonomy; a verdict against the thresholds.
- whole set: a 2D map (PCA, or UMAP when the ``umap-learn`` package is installed and asked for) coloured by pool,
  the pool-to-pool similarity heat map (mean pairwise cosine; the diagonal is the within-pool mean), the
  distribution of cohesion and the silhouettes against the threshold.

The silhouette is computed exactly in linear time: for unit vectors the mean cosine distance from x to the members
of pool C is ``1 - x . sum(C) / |C|``, so no n x n distance matrix is built (a 100,000-project register fits).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from classifier.atomic import atomic_write_bytes, atomic_write_json
from classifier.project_rows import Columns, InputReader
from classifier.result_rows import iter_output, manifest_path
from classifier.tables import iter_records

MAP_MAX_POINTS = 5000
KEYWORD_MAX_DOCS = 3000  # per pool, a fixed-seed sample beyond that
OUT_OF_THEME_COLOUR = "#9a9a9a"


@dataclass
class Thresholds:
    """A pool is ``homogeneous`` when its mean silhouette reaches ``min_silhouette`` (the homogeneity threshold),
    at most ``max_outlier_share`` of its members are outliers, it has at least ``min_size`` members and (when set)
    its cohesion reaches ``min_cohesion``; otherwise ``review`` (or ``too small``)."""

    min_silhouette: float = 0.03
    max_outlier_share: float = 0.20
    min_size: int = 10
    min_cohesion: float | None = None


@dataclass
class PoolData:
    ids: list[str]
    titles: list[str]
    texts: list[str]
    labels: list[str]
    vectors: np.ndarray  # [n, d], one row per project
    space: str  # what the vectors are, for the reader ("embedding multilingual-e5-small...", "lexical TF-IDF + SVD")
    source: str
    kind: str  # "batch output", "labelled data", "clusters"
    model_version: str | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.ids)


# =====================================================================================================  figures
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
        from classifier.lexical import lemma_terms as analyzer
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


def compute_report(data: PoolData, *, pools: Sequence[str] | None = None, out_id: str | None = None,
                   taxonomy=None, thresholds: Thresholds | None = None, center: bool = True, map_method: str = "pca",
                   seed: int = 0, n_keywords: int = 10, n_representatives: int = 5, max_outliers: int = 200) -> dict:
    """Every figure of the report, as a JSON-ready dict (with the map's points and the per-row arrays needed for
    the plots under the private key ``_plot``, which :func:`write_report` drops from the JSON)."""
    th = thresholds or Thresholds()
    labels = list(data.labels)
    present = set(labels)
    if pools is None:
        pools = sorted(present - {out_id})
    pools = [p for p in pools if p in present and p != out_id]
    groups = pools + ([out_id] if out_id in present else [])
    Z = prepare_space(data.vectors, center=center)
    geo = pool_geometry(Z, labels, pools)
    keywords = class_keywords(data.texts, labels, groups, n=n_keywords, seed=seed)
    labels_arr = np.asarray(labels, dtype=object)

    def group_block(g: str) -> dict:
        m = np.flatnonzero(labels_arr == g)
        sims = geo["sim"][m]
        q1, med, q3 = (float(v) for v in np.percentile(sims, [25, 50, 75]))
        p10 = float(np.percentile(sims, 10))
        order = m[np.argsort(-sims, kind="stable")]
        block = {
            "id": g, "size": int(len(m)), "share": round(len(m) / max(len(labels), 1), 4),
            "cohesion": round(float(sims.mean()), 4), "cohesion_std": round(float(sims.std()), 4),
            "cohesion_quantiles": {"p10": round(p10, 4), "q1": round(q1, 4), "median": round(med, 4),
                                   "q3": round(q3, 4)},
            "keywords": keywords.get(g, []),
            "representatives": [{"id": data.ids[i], "title": data.titles[i],
                                 "similarity": round(float(geo["sim"][i]), 4)} for i in order[:n_representatives]],
        }
        if taxonomy is not None:
            try:
                lt = taxonomy.laari(g)
                block["name"] = lt.name_fi
                block["assessment"] = list(lt.assessment)
            except KeyError:
                pass
        return block

    pool_blocks = []
    for pi, p in enumerate(pools):
        b = group_block(p)
        m = np.flatnonzero(labels_arr == p)
        sil = geo["silhouette"][m]
        has_sil = len(pools) >= 2
        b["silhouette"] = round(float(np.nanmean(sil)), 4) if has_sil else None
        row = geo["pairwise"][pi]
        others = [(pools[j], float(row[j])) for j in range(len(pools)) if j != pi and not np.isnan(row[j])]
        within = None if np.isnan(row[pi]) else round(float(row[pi]), 4)
        b["within_similarity"] = within
        if others:
            near, between = max(others, key=lambda kv: kv[1])
            b["nearest"] = near
            b["between_similarity"] = round(between, 4)
            b["separation"] = None if within is None else round(within - between, 4)
            cents = geo["centroids"]
            b["centroid_similarity_to_nearest"] = round(float(cents[p] @ cents[near]), 4)
        else:
            b["nearest"] = b["between_similarity"] = b["separation"] = None
        q1, q3 = b["cohesion_quantiles"]["q1"], b["cohesion_quantiles"]["q3"]
        fence = q1 - 1.5 * (q3 - q1)
        outliers = []
        for i in m:
            reasons = []
            s = geo["silhouette"][i]
            if has_sil and s < 0:
                reasons.append(f"closer to {pools[geo['nearest'][i]]}")
            if geo["sim"][i] < fence:
                reasons.append("far from the pool centre")
            if reasons:
                outliers.append((float(s) if has_sil else 0.0, float(geo["sim"][i]), i, reasons))
        outliers.sort(key=lambda o: (o[0], o[1]))
        b["outlier_count"] = len(outliers)
        b["outlier_share"] = round(len(outliers) / max(len(m), 1), 4)
        b["misfit_share"] = round(float(np.mean(sil < 0)), 4) if has_sil else None
        b["outliers"] = [{"id": data.ids[i], "title": data.titles[i], "similarity": round(sim, 4),
                          "silhouette": round(s, 4) if has_sil else None,
                          "nearest_other": pools[geo["nearest"][i]] if geo["nearest"][i] >= 0 else None,
                          "reason": "; ".join(r)} for s, sim, i, r in outliers[:max_outliers]]
        reasons = []
        if b["size"] < th.min_size:
            verdict = "too small"
            reasons.append(f"{b['size']} members < {th.min_size}")
        else:
            if b["silhouette"] is not None and b["silhouette"] < th.min_silhouette:
                reasons.append(f"silhouette {b['silhouette']:.3f} < {th.min_silhouette}")
            if b["outlier_share"] > th.max_outlier_share:
                reasons.append(f"{100 * b['outlier_share']:.0f} % outliers > {100 * th.max_outlier_share:.0f} %")
            if th.min_cohesion is not None and b["cohesion"] < th.min_cohesion:
                reasons.append(f"cohesion {b['cohesion']:.3f} < {th.min_cohesion}")
            verdict = "review" if reasons else "homogeneous"
        b["verdict"] = verdict
        b["verdict_reasons"] = reasons
        pool_blocks.append(b)

    oot = group_block(out_id) if out_id in present else None
    coords, method, map_info = map_2d(Z, map_method, seed)
    rng = np.random.default_rng(seed)
    shown = np.arange(len(Z)) if len(Z) <= MAP_MAX_POINTS else np.sort(rng.choice(len(Z), MAP_MAX_POINTS,
                                                                                    replace=False))
    pairwise = [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in geo["pairwise"]]
    verdicts = Counter(b["verdict"] for b in pool_blocks)
    report = {
        "kind": "laari-pool-report",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": data.source, "source_kind": data.kind, "model_version": data.model_version,
        "space": data.space, "centered": center, "n": len(data), **data.extra,
        "thresholds": asdict(th),
        "summary": {"pools": len(pool_blocks), "homogeneous": verdicts.get("homogeneous", 0),
                    "review": verdicts.get("review", 0), "too_small": verdicts.get("too small", 0),
                    "out_of_theme": oot["size"] if oot else 0,
                    "mean_silhouette": (round(float(np.nanmean(geo["silhouette"])), 4)
                                        if len(pools) >= 2 and np.isfinite(geo["silhouette"]).any() else None)},
        "pools": pool_blocks,
        "out_of_theme": oot,
        "pairwise_similarity": {"labels": list(pools), "matrix": pairwise},
        "map": {"method": method, **map_info, "points_shown": int(len(shown)),
                "points": [{"id": data.ids[i], "pool": labels[i], "x": round(float(coords[i, 0]), 4),
                            "y": round(float(coords[i, 1]), 4)} for i in shown]},
        "_plot": {"labels": labels_arr, "sim": geo["sim"], "silhouette": geo["silhouette"], "coords": coords,
                  "shown": shown, "pools": list(pools), "out_id": out_id},
    }
    return report


# =====================================================================================================  plots
def _colours(pools: Sequence[str]) -> dict[str, str]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(pools) <= 10 else "tab20"]
    return {p: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, p in enumerate(pools)}


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_map(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = report["_plot"]
    colours = _colours(P["pools"])
    coords, labels, shown = P["coords"], P["labels"], P["shown"]
    fig, ax = plt.subplots(figsize=(8, 6.4), dpi=110)
    order = ([P["out_id"]] if P["out_id"] else []) + P["pools"]
    for g in order:
        idx = shown[labels[shown] == g]
        if not len(idx):
            continue
        colour = OUT_OF_THEME_COLOUR if g == P["out_id"] else colours[g]
        ax.scatter(coords[idx, 0], coords[idx, 1], s=9 if len(shown) > 1500 else 16, alpha=0.65, c=colour,
                   label=f"{g} ({int((labels == g).sum())})", linewidths=0)
    m = report["map"]
    extra = ""
    if m.get("explained_variance"):
        extra = f" (explained variance {100 * sum(m['explained_variance']):.0f} %)"
    ax.set_title(f"{m['method'].upper()} map of {report['n']} projects{extra}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8, markerscale=1.5, framealpha=0.85)
    fig.tight_layout()
    return _png(fig)


def plot_heatmap(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report["pairwise_similarity"]["labels"]
    M = np.array([[np.nan if v is None else v for v in row] for row in report["pairwise_similarity"]["matrix"]],
                 dtype=float)
    k = max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.8, 0.95 * k + 2.2), dpi=110)
    if len(labels):
        im = ax.imshow(M, cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean pairwise cosine")
        ax.set_xticks(range(k), labels, rotation=35, ha="right")
        ax.set_yticks(range(k), labels)
        finite = M[np.isfinite(M)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for i in range(len(labels)):
            for j in range(len(labels)):
                if np.isfinite(M[i, j]):
                    ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if M[i, j] > mid else "white")
    ax.set_title("Pool-to-pool similarity (diagonal: within the pool)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_homogeneity(report: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = report["_plot"]
    pools = [b["id"] for b in report["pools"]]
    groups = pools + ([P["out_id"]] if report.get("out_of_theme") else [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * max(len(groups), 3) + 2), dpi=110)
    data = [P["sim"][P["labels"] == g] for g in groups]
    if groups:
        ax1.boxplot(data, orientation="horizontal", tick_labels=groups, showfliers=True,
                    flierprops={"markersize": 3})
        ax1.invert_yaxis()
    ax1.set_xlabel("cosine similarity to the pool centroid")
    ax1.set_title("Cohesion: members' similarity to their centroid", fontsize=10)
    th = report["thresholds"]
    if th.get("min_cohesion") is not None:
        ax1.axvline(th["min_cohesion"], color="crimson", ls="--", lw=1)
    sils = [b["silhouette"] if b["silhouette"] is not None else 0.0 for b in report["pools"]]
    colours = ["#3a9d5d" if b["verdict"] == "homogeneous" else "#e08a1e" if b["verdict"] == "review" else "#999"
               for b in report["pools"]]
    if pools:
        ax2.barh(range(len(pools)), sils, color=colours)
        ax2.set_yticks(range(len(pools)), pools)
        ax2.invert_yaxis()
    ax2.axvline(th["min_silhouette"], color="crimson", ls="--", lw=1, label=f"threshold {th['min_silhouette']}")
    ax2.axvline(0, color="black", lw=0.6)
    ax2.set_xlabel("mean silhouette (green: homogeneous, orange: review)")
    ax2.set_title("Homogeneity verdict", fontsize=10)
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


# =====================================================================================================  writing
def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _img(name: str, data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{b64}" alt="{_esc(alt)}"><figcaption>{_esc(alt)} ' \
           f'(<a href="{_esc(name)}">{_esc(name)}</a>)</figcaption></figure>'


def _keywords_text(block: dict, n: int = 10) -> str:
    return ", ".join(k["term"] for k in block["keywords"][:n]) or "–"


def render_html(report: dict, images: dict[str, bytes], title: str, extra_sections: Sequence[str] = ()) -> str:
    th = report["thresholds"]
    s = report["summary"]
    parts = [f"<h1>{_esc(title)}</h1>",
             "<p class=meta>" + " · ".join(_esc(x) for x in [
                 f"source: {report['source']} ({report['source_kind']})", f"{report['n']} projects",
                 f"model: {report['model_version']}" if report.get("model_version") else None,
                 f"space: {report['space']}{', centred' if report['centered'] else ''}",
                 f"created {report['created']}"] if x) + "</p>",
             f"<p><b>{s['homogeneous']}</b> of {s['pools']} pools homogeneous, <b>{s['review']}</b> to review"
             + (f", {s['too_small']} too small" if s["too_small"] else "")
             + (f"; {s['out_of_theme']} projects out of theme (not a pool)" if s["out_of_theme"] else "")
             + ".</p>",
             f"<p class=meta>Verdict rule: homogeneous when mean silhouette ≥ {th['min_silhouette']}, outliers ≤ "
             f"{100 * th['max_outlier_share']:.0f} % of members, size ≥ {th['min_size']}"
             + (f", cohesion ≥ {th['min_cohesion']}" if th.get("min_cohesion") is not None else "")
             + ". Thresholds are options of <code>laari report</code>.</p>",
             "<h2>Pools</h2><table><tr><th>pool</th><th>size</th><th>cohesion ± sd</th><th>silhouette</th>"
             "<th>nearest pool</th><th>separation</th><th>outliers</th><th>keywords</th><th>verdict</th></tr>"]
    for b in report["pools"]:
        css = "ok" if b["verdict"] == "homogeneous" else "warn"
        parts.append(
            f"<tr><td><a href='#pool-{_esc(b['id'])}'>{_esc(b['id'])}</a></td><td>{b['size']}</td>"
            f"<td>{_fmt(b['cohesion'])} ± {_fmt(b['cohesion_std'])}</td><td>{_fmt(b['silhouette'])}</td>"
            f"<td>{_esc(b['nearest'] or '–')}</td><td>{_fmt(b['separation'])}</td>"
            f"<td>{b['outlier_count']} ({100 * b['outlier_share']:.0f} %)</td>"
            f"<td class=l>{_esc(_keywords_text(b, 6))}</td>"
            f"<td class={css}>{_esc(b['verdict'])}" + (f"<br><small>{_esc('; '.join(b['verdict_reasons']))}</small>"
                                                       if b["verdict_reasons"] else "") + "</td></tr>")
    parts.append("</table>")
    if report.get("out_of_theme"):
        o = report["out_of_theme"]
        parts.append(f"<p>Out of theme ({_esc(o['id'])}, not a pool): {o['size']} projects, cohesion "
                     f"{_fmt(o['cohesion'])} ± {_fmt(o['cohesion_std'])}; keywords: {_esc(_keywords_text(o))}.</p>")
    parts.append("<h2>Map and similarity</h2>")
    captions = {"map.png": "2D map of the projects coloured by pool",
                "similarity.png": "Pool-to-pool similarity heat map",
                "homogeneity.png": "Cohesion distribution and silhouette per pool against the threshold"}
    for name, data in images.items():
        parts.append(_img(name, data, captions.get(name, name)))
    parts.extend(extra_sections)
    for b in report["pools"]:
        parts.append(f"<h2 id='pool-{_esc(b['id'])}'>{_esc(b['id'])}"
                     + (f" – {_esc(b['name'])}" if b.get("name") else "") + "</h2>")
        parts.append(f"<p><b>Verdict: {_esc(b['verdict'])}</b>"
                     + (f" ({_esc('; '.join(b['verdict_reasons']))})" if b["verdict_reasons"] else "") + ". "
                     f"{b['size']} projects ({100 * b['share']:.1f} %), cohesion {_fmt(b['cohesion'])} "
                     f"(sd {_fmt(b['cohesion_std'])}, median {_fmt(b['cohesion_quantiles']['median'])}, 10th "
                     f"percentile {_fmt(b['cohesion_quantiles']['p10'])}), silhouette {_fmt(b['silhouette'])}, "
                     f"within-pool similarity {_fmt(b['within_similarity'])}; nearest pool "
                     f"{_esc(b['nearest'] or '–')} (similarity {_fmt(b['between_similarity'])}, separation "
                     f"{_fmt(b['separation'])}).</p>")
        if b.get("assessment"):
            parts.append("<p><b>Assessment metric:</b></p><ul>" + "".join(f"<li>{_esc(a)}</li>"
                                                                          for a in b["assessment"]) + "</ul>")
        parts.append("<p><b>Keywords (class-based TF-IDF, lemmatized):</b> "
                     + _esc(", ".join(f"{k['term']}" for k in b["keywords"])) + "</p>")
        parts.append("<p><b>Representative projects</b> (closest to the centroid)</p><table><tr><th>id</th>"
                     "<th>title</th><th>similarity</th></tr>" + "".join(
                         f"<tr><td>{_esc(r['id'])}</td><td class=l>{_esc(r['title'])}</td>"
                         f"<td>{_fmt(r['similarity'])}</td></tr>" for r in b["representatives"]) + "</table>")
        if b["outliers"]:
            shown = b["outliers"][:50]
            more = b["outlier_count"] - len(shown)
            parts.append(f"<p><b>Outliers for review</b> ({b['outlier_count']}"
                         + (f", the {len(shown)} furthest shown; all in report.json" if more > 0 else "")
                         + ")</p><table><tr><th>id</th><th>title</th><th>similarity</th><th>silhouette</th>"
                         "<th>why</th></tr>" + "".join(
                             f"<tr><td>{_esc(o['id'])}</td><td class=l>{_esc(o['title'])}</td>"
                             f"<td>{_fmt(o['similarity'])}</td><td>{_fmt(o['silhouette'])}</td>"
                             f"<td class=l>{_esc(o['reason'])}</td></tr>" for o in shown) + "</table>")
        else:
            parts.append("<p>No outliers.</p>")
    parts.append("<h2>How the figures are made</h2><p class=meta>" + _esc(
        "Cosine similarity on unit vectors" + (" after subtracting the mean vector of the whole set" if
                                                report["centered"] else "") +
        ". Cohesion: mean similarity of the members to the pool centroid. Silhouette: (b - a) / max(a, b) with "
        "cosine distance, a = mean distance to the own pool, b = to the nearest other pool; out-of-theme projects "
        "are not a pool. Pool-to-pool similarity: mean cosine over all member pairs. Separation: within-pool minus "
        "nearest-pool similarity. Outliers: silhouette below 0, or similarity to the centroid below Q1 - 1.5 IQR "
        "of the pool. Keywords: class-based TF-IDF over lemmatized content words.") + "</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}"
             "table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 7px;"
             "text-align:right;vertical-align:top}td:first-child,th:first-child,td.l{text-align:left}"
             "td.ok{background:#e3f4e7}td.warn{background:#fdf0dc}.meta{color:#555;font-size:.92em}"
             "figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}")
    return (f"<!doctype html><html lang=fi><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_report(report: dict, out_dir: str | Path, title: str = "Pool homogeneity report",
                 extra_sections: Sequence[str] = (), extra_images: dict[str, bytes] | None = None) -> dict[str, str]:
    """``report.html`` (self-contained, images embedded), ``report.json`` and the PNG files in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {"map.png": plot_map(report), "similarity.png": plot_heatmap(report),
              "homogeneity.png": plot_homogeneity(report), **(extra_images or {})}
    for name, data in images.items():
        atomic_write_bytes(out_dir / name, data)
    doc = render_html(report, images, title, extra_sections)
    atomic_write_bytes(out_dir / "report.html", doc.encode("utf-8"))
    atomic_write_json(out_dir / "report.json", {k: v for k, v in report.items() if not k.startswith("_")})
    return {"html": str(out_dir / "report.html"), "json": str(out_dir / "report.json"),
            **{name: str(out_dir / name) for name in images}}


# =====================================================================================================  sources
def embed_documents(predictor, titles: Sequence[str], texts: Sequence[str], *, space: str = "auto",
                    chunk: int = 256, progress: Callable[[int, int], None] | None = None,
                    seed: int = 0) -> tuple[np.ndarray, str]:
    """Vectors of the documents as the model sees them (``document_text(title, description)``): the model's
    embedder (whose cache the batch has warmed), or for a lexical-only model its TF-IDF reduced by SVD."""
    from classifier.embedders import TextKind
    from classifier.text import document_text

    docs = [document_text(t, d) for t, d in zip(titles, texts)]
    embedder = getattr(predictor, "embedder", None)
    if space == "auto":
        space = "embedding" if embedder is not None else "lexical"
    if space == "embedding":
        if embedder is None:
            raise ValueError("this model has no embedder; use space 'lexical'")
        parts = []
        for start in range(0, len(docs), chunk):
            parts.append(np.asarray(embedder.encode(docs[start:start + chunk], TextKind.PASSAGE), dtype=np.float32))
            if progress:
                progress(min(start + chunk, len(docs)), len(docs))
        dim = getattr(embedder, "dim", 0) or 0
        X = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        return X, f"embedding ({embedder.id})"
    if space != "lexical":
        raise ValueError(f"unknown space {space!r}; use auto, embedding or lexical")
    from sklearn.decomposition import TruncatedSVD

    vec = predictor.model.vectorizer
    if vec is None:
        raise ValueError("this model has no lexical channel; use space 'embedding'")
    T = vec.transform(docs)
    n_comp = max(2, min(200, T.shape[1] - 1, len(docs) - 1))
    X = TruncatedSVD(n_comp, random_state=seed).fit_transform(T)
    return X.astype(np.float32), f"lexical (model TF-IDF {vec.analyzer}, SVD {n_comp})"


def is_batch_output(path: Path) -> bool:
    """A batch output has a manifest beside it, or at least rows with ``fit_verdict`` and ``model_version``."""
    if manifest_path(path).exists():
        return True
    try:
        for _, rec in iter_records(path, skip_invalid=True):
            return "fit_verdict" in rec and "model_version" in rec
    except Exception:  # noqa: BLE001 - unreadable here; the loaders say why
        return False
    return False


def load_batch_output(path: Path, input_path: Path | None = None, columns=None) -> dict:
    """The classified rows of a batch output joined with their texts from the batch input (named in the
    manifest beside the output, or given). Error rows are counted, not reported on."""
    manifest = {}
    mp = manifest_path(path)
    if mp.exists():
        manifest = json.loads(mp.read_text(encoding="utf-8"))
    if input_path is None:
        src = (manifest.get("input") or {}).get("path")
        if not src:
            raise ValueError(f"{path}: no manifest names the batch input; give it with --input")
        input_path = Path(src)
    if columns is None:
        cols = (manifest.get("settings") or {}).get("columns")
        columns = Columns(**cols) if cols else Columns()
    labels: dict[str, str] = {}
    versions = Counter()
    errors = 0
    for r in iter_output(path):
        if r["error"] is not None or r["id"] is None:
            errors += 1
            continue
        labels.setdefault(r["id"], r["laari"])
        versions[r["model_version"]] += 1
    ids, titles, texts, labs = [], [], [], []
    for row in InputReader(input_path, columns):
        if row.error is None and row.id in labels:
            ids.append(row.id)
            titles.append(row.title)
            texts.append(row.description or "")
            labs.append(labels[row.id])
    missing = len(labels) - len(ids)
    return {"ids": ids, "titles": titles, "texts": texts, "labels": labs, "errors": errors,
            "missing_texts": missing, "input": str(input_path),
            "model_version": versions.most_common(1)[0][0] if versions else None}


def load_labelled_rows(path: Path, columns=None, label_col: str = "laari") -> dict:
    """Projects with their labels from any supported file (a training split, a labelled register); rows without
    a label, an id or a text are skipped and counted."""
    ids, titles, texts, labels = [], [], [], []
    skipped = 0
    for r in InputReader(path, columns or Columns(), keep=(label_col,)):
        lab = (r.extra or {}).get(label_col)
        if r.error is None and lab not in (None, "") and (r.description or "").strip():
            ids.append(r.id)
            titles.append(r.title)
            texts.append(r.description)
            labels.append(str(lab).strip())
        else:
            skipped += 1
    if not labels:
        raise ValueError(f"{path}: no rows with a {label_col!r} label; name the label column with --label-col")
    return {"ids": ids, "titles": titles, "texts": texts, "labels": labels, "skipped": skipped}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"
