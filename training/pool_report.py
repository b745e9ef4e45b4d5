"""Pool homogeneity reports: is each laari (pool) homogeneous enough for one uniform assessment metric?

Input: projects with a pool label and a text (a batch output joined with its input, labelled training data, or
clusters from ``laari discover``), embedded with the model's embedder (cached) or, for a lexical-only model, as
TF-IDF reduced by SVD.

Figures (computed by ``classifier.pools``, the same functions the service's ``/v1/laarit`` uses; all with cosine
similarity on *centred* unit vectors by default: the mean vector of the whole set is subtracted first, because
sentence embeddings share a large common component that makes every pair look alike; ``center=False`` keeps the
raw vectors):

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

The plots and the HTML page are made by ``training.pool_report_page``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from classifier.pools import (class_keywords, map_2d, nearest_pools, passage_vectors, pool_geometry,
                              prepare_space)
from classifier.project_rows import Columns, InputReader
from classifier.register_layouts import CROSSTAB_COLUMNS, fold
from classifier.result_rows import iter_output, manifest_path
from classifier.tables import iter_records

MAP_MAX_POINTS = 5000


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
    neighbours = nearest_pools(geo, pools)
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
    for p in pools:
        b = group_block(p)
        m = np.flatnonzero(labels_arr == p)
        sil = geo["silhouette"][m]
        has_sil = len(pools) >= 2
        b["silhouette"] = round(float(np.nanmean(sil)), 4) if has_sil else None
        near = neighbours[p]
        b.update(within_similarity=near["within_similarity"], nearest=near["nearest"],
                 between_similarity=near["between_similarity"], separation=near["separation"])
        if near["nearest"] is not None:
            b["centroid_similarity_to_nearest"] = near["centroid_similarity"]
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


# =====================================================================================================  sources
def embed_documents(predictor, titles: Sequence[str], texts: Sequence[str], *, space: str = "auto",
                    chunk: int = 256, progress: Callable[[int, int], None] | None = None,
                    seed: int = 0) -> tuple[np.ndarray, str]:
    """Vectors of the documents as the model sees them (``document_text(title, description)``): the model's
    embedder (whose cache the batch has warmed), or for a lexical-only model its TF-IDF reduced by SVD."""
    from classifier.text import document_text

    docs = [document_text(t, d) for t, d in zip(titles, texts)]
    embedder = getattr(predictor, "embedder", None)
    if space == "auto":
        space = "embedding" if embedder is not None else "lexical"
    if space == "embedding":
        if embedder is None:
            raise ValueError("this model has no embedder; use space 'lexical'")
        X = passage_vectors(embedder, docs, chunk, progress)
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
    tables: dict[str, Counter] = {}
    for r in iter_output(path):
        if r["error"] is not None or r["id"] is None:
            errors += 1
            continue
        if r["id"] not in labels:
            for col in crosstab_columns(r):
                tables.setdefault(col, Counter())[(r["laari"], r[col] or EMPTY_VALUE)] += 1
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
            "crosstabs": [crosstab(col, counts) for col, counts in tables.items()],
            "model_version": versions.most_common(1)[0][0] if versions else None}


EMPTY_VALUE = "(empty)"


def crosstab_columns(row: dict) -> list[str]:
    """The official columns of a register export that the report cross-tabulates laari against (``Et``, the
    secondary theme), as this output row names them (matched after trimming and case-folding)."""
    wanted = {fold(c) for c in CROSSTAB_COLUMNS}
    return [k for k in row if fold(k) in wanted]


def crosstab(column: str, counts: Counter) -> dict:
    """Who is in which pool by an official column: ``counts[(laari, value)]`` as a table with laari rows, value
    columns and totals (JSON-ready)."""
    rows = sorted({a for a, _ in counts})
    cols = sorted({b for _, b in counts}, key=lambda v: (v == EMPTY_VALUE, [(0, int(x), "") if x.isdigit() else
                                                                           (1, 0, x) for x in re.split(r"(\d+)", v)]))
    table = [[counts[(a, b)] for b in cols] for a in rows]
    return {"column": column, "laari": rows, "values": cols, "counts": table,
            "laari_totals": [sum(r) for r in table], "value_totals": [sum(c) for c in zip(*table)] if table else [],
            "total": sum(counts.values())}


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
