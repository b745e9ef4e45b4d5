"""Pool discovery: cluster project descriptions (labelled or not) into candidate pools for a new taxonomy.

1. Features, per project (``document_text(title, description)``, as the model reads it):
   - ``embedding``: the embedder's vectors, centred (the common component removed), PCA to 50 dimensions, unit rows;
   - ``lexical``: TF-IDF over lemmatized content words (``classifier.lexical.lemma_terms``; sublinear tf, terms in
     at least 2 and at most half of the projects), truncated SVD to 100 dimensions, unit rows;
   - ``both`` (default): the two side by side, each with equal weight, unit rows.
2. Clustering: k-means (k-means++ starts, ``n_init`` restarts, fixed seeds) on the unit rows.
3. k: given, or chosen in ``k_min..k_max``: for each k the silhouette (cosine) of the clustering, and its stability =
   mean adjusted Rand index between the clustering and clusterings of ``bootstrap`` random 80 % subsamples (other
   seeds) on the shared projects. The k with the best silhouette among those whose stability reaches
   ``min_stability`` wins (if none does, the most stable k).
4. Each pool is named by its class-based TF-IDF keywords and shown with its representative projects and the same
   homogeneity figures as ``laari report``; where labels exist they are used only afterwards, for the agreement
   (ARI, NMI, contingency table), never for the clustering.
5. ``write_taxonomy_draft`` writes a draft taxonomy in the format of ``classifier/taxonomy/default.yaml`` (checked
   with ``load_taxonomy`` before it is put in place) for reviewers to edit.

Everything is deterministic for a seed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from classifier.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from classifier.figures import heatmap_png, png_bytes, pyplot
from classifier.pools import class_keywords, passage_vectors, pool_geometry, unit_rows
from classifier.project_rows import Columns, InputReader

from .pool_report import PoolData, Thresholds, compute_report

FEATURES = ("both", "embedding", "lexical")


@dataclass
class DiscoverSettings:
    k: int | None = None
    k_min: int = 2
    k_max: int = 10
    seed: int = 0
    bootstrap: int = 5
    sample_fraction: float = 0.8
    min_stability: float = 0.8
    features: str = "both"
    n_init: int = 10
    pca_dims: int = 50
    svd_dims: int = 100


@dataclass
class Corpus:
    ids: list[str]
    titles: list[str]
    texts: list[str]
    labels: list[str] | None
    sources: list[str]
    skipped: int = 0

    def __len__(self):
        return len(self.ids)


def load_corpus(paths: Sequence[str | Path], columns: Columns = Columns(), label_col: str | None = "laari") -> Corpus:
    """Projects from one or more files (any supported format). Rows without an id or text, and ids already seen
    in an earlier file, are skipped and counted. Labels are kept when every kept row has one."""
    ids, titles, texts, labels = [], [], [], []
    seen: set[str] = set()
    skipped = 0
    keep = (label_col,) if label_col else ()
    for path in paths:
        for r in InputReader(path, columns, keep=keep):
            if r.error is not None or not (r.description or "").strip() or r.id in seen:
                skipped += 1
                continue
            seen.add(r.id)
            ids.append(r.id)
            titles.append(r.title)
            texts.append(r.description)
            lab = (r.extra or {}).get(label_col) if label_col else None
            labels.append(None if lab in (None, "") else str(lab).strip())
    has_labels = bool(labels) and all(lab is not None for lab in labels)
    return Corpus(ids, titles, texts, labels if has_labels else None, [str(p) for p in paths], skipped)


# =====================================================================================================  features
def documents(corpus: Corpus) -> list[str]:
    from classifier.text import document_text

    return [document_text(t, d) for t, d in zip(corpus.titles, corpus.texts)]


def embedding_features(E: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    Z = unit_rows(E)
    Z = Z - Z.mean(axis=0, keepdims=True)
    n_comp = min(dims, Z.shape[0] - 1, Z.shape[1])
    if n_comp >= 2:
        Z = PCA(n_comp, random_state=seed).fit_transform(Z)
    return unit_rows(Z)


def lexical_features(docs: Sequence[str], dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from classifier.lexical import lemma_terms

    min_df = 2 if len(docs) >= 10 else 1
    T = TfidfVectorizer(analyzer=lemma_terms, sublinear_tf=True, min_df=min_df, max_df=0.5 if len(docs) >= 10 else 1.0,
                        dtype=np.float64).fit_transform(docs)
    n_comp = min(dims, T.shape[1] - 1, T.shape[0] - 1)
    if n_comp < 2:
        return unit_rows(T.toarray())
    return unit_rows(TruncatedSVD(n_comp, random_state=seed).fit_transform(T))


def build_features(docs: Sequence[str], E: np.ndarray | None, settings: DiscoverSettings) -> np.ndarray:
    if settings.features not in FEATURES:
        raise ValueError(f"features: {settings.features!r}; use one of {FEATURES}")
    parts = []
    if settings.features in ("both", "embedding"):
        if E is None:
            raise ValueError("embedding features need an embedder")
        parts.append(embedding_features(E, settings.pca_dims, settings.seed))
    if settings.features in ("both", "lexical"):
        parts.append(lexical_features(docs, settings.svd_dims, settings.seed))
    return unit_rows(np.hstack(parts)) if len(parts) > 1 else parts[0]


# =====================================================================================================  clustering
def kmeans(F: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(F)


def silhouette(F: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (exact, linear time: see ``classifier.pools.pool_geometry``)."""
    names = [str(x) for x in labels]
    pools = sorted(set(names))
    if len(pools) < 2:
        return 0.0
    return float(np.nanmean(pool_geometry(F, names, pools)["silhouette"]))


def stability(F: np.ndarray, full: np.ndarray, k: int, settings: DiscoverSettings) -> float:
    """Mean ARI between the full clustering and clusterings of random subsamples (other seeds), on the shared
    projects: 1 = the same partition whatever the sample and the start."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng([settings.seed, k])
    n = len(F)
    m = max(k + 1, int(round(settings.sample_fraction * n)))
    if m >= n or settings.bootstrap < 1:
        return 1.0
    scores = []
    for b in range(settings.bootstrap):
        idx = np.sort(rng.choice(n, m, replace=False))
        sub = kmeans(F[idx], k, settings.seed + 1 + b, settings.n_init)
        scores.append(adjusted_rand_score(full[idx], sub))
    return float(np.mean(scores))


def choose_k(F: np.ndarray, settings: DiscoverSettings, progress: Callable[[str], None] | None = None
             ) -> tuple[int, np.ndarray, list[dict]]:
    """(k, labels, table): the chosen k and its clustering, and silhouette/stability for every k tried."""
    n = len(F)
    if settings.k is not None:
        if not 2 <= settings.k < n:
            raise ValueError(f"k must be between 2 and {n - 1} for {n} projects")
        labels = kmeans(F, settings.k, settings.seed, settings.n_init)
        return settings.k, labels, [{"k": settings.k, "silhouette": round(silhouette(F, labels), 4),
                                     "stability": None, "chosen": True}]
    k_max = min(settings.k_max, n - 1)
    k_min = max(2, settings.k_min)
    if k_max < k_min:
        raise ValueError(f"too few projects ({n}) to choose k in {settings.k_min}..{settings.k_max}")
    table, fits = [], {}
    for k in range(k_min, k_max + 1):
        labels = kmeans(F, k, settings.seed, settings.n_init)
        fits[k] = labels
        row = {"k": k, "silhouette": round(silhouette(F, labels), 4),
               "stability": round(stability(F, labels, k, settings), 4)}
        table.append(row)
        if progress:
            progress(f"k={k}: silhouette {row['silhouette']:.3f}, stability {row['stability']:.3f}")
    stable = [r for r in table if r["stability"] >= settings.min_stability]
    if stable:
        best = max(stable, key=lambda r: (r["silhouette"], -r["k"]))
    else:
        best = max(table, key=lambda r: (r["stability"], -r["k"]))
    for r in table:
        r["chosen"] = r["k"] == best["k"]
    return best["k"], fits[best["k"]], table


# =====================================================================================================  naming
def ascii_id(text: str) -> str:
    text = text.lower().replace("ä", "a").replace("ö", "o").replace("å", "a")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def pool_ids(keywords: dict[str, list[dict]], order: Sequence[str]) -> dict[str, str]:
    """``pool_<n>_<keyword>_<keyword>``: valid taxonomy ids, unique, readable."""
    out = {}
    for n, c in enumerate(order, 1):
        words = [ascii_id(k["term"]) for k in keywords.get(c, [])[:2]]
        words = [w for w in words if w][:2]
        base = "_".join([f"pool_{n}"] + [w[:20] for w in words])
        out[c] = base
    return out


def agreement(true: Sequence[str], pred: Sequence[str], pools: Sequence[str] | None = None) -> dict:
    """ARI and NMI between labels and pools, the contingency table (rows: pools, columns: labels) and each pool's
    majority label with its purity."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = sorted(set(true))
    pools = list(pools) if pools is not None else list(dict.fromkeys(pred))
    counts = Counter(zip(pred, true))
    table = [[counts[(p, lab)] for lab in labels] for p in pools]
    per_pool = []
    for p, row in zip(pools, table):
        size = sum(row)
        j = int(np.argmax(row))
        per_pool.append({"pool": p, "size": size, "majority_label": labels[j] if size else None,
                         "purity": round(row[j] / size, 4) if size else 0.0})
    return {"ari": round(float(adjusted_rand_score(true, pred)), 4),
            "nmi": round(float(normalized_mutual_info_score(true, pred)), 4),
            "contingency": {"rows": pools, "columns": labels, "counts": table},
            "per_pool": per_pool}


# =====================================================================================================  the run
def discover(corpus: Corpus, embedder=None, settings: DiscoverSettings | None = None, *, thresholds=None,
             log: Callable[[str], None] | None = None, map_method: str = "pca") -> dict:
    """Cluster the corpus; returns the discovery (settings, k table, pools with names, keywords, representatives,
    homogeneity figures, agreement with the labels when the corpus has them) as a JSON-ready dict (plus the
    private ``_plot`` data for the report's images)."""
    settings = settings or DiscoverSettings()
    log = log or (lambda m: None)
    if len(corpus) < 3:
        raise ValueError(f"{len(corpus)} projects: too few to cluster")
    docs = documents(corpus)
    E = None
    if settings.features in ("both", "embedding") or embedder is not None:
        if embedder is None:
            raise ValueError(f"features {settings.features!r} need an embedder")
        log(f"embedding {len(docs)} projects")
        E = passage_vectors(embedder, docs)
    log(f"features: {settings.features}")
    F = build_features(docs, E, settings)
    k, raw, table = choose_k(F, settings, progress=log)
    log(f"k = {k}")
    # order clusters by size (then first appearance), name them by their keywords
    sizes = Counter(raw.tolist())
    first = {c: i for i, c in reversed(list(enumerate(raw.tolist())))}
    order = sorted(sizes, key=lambda c: (-sizes[c], first[c]))
    tmp_names = {c: f"c{c}" for c in order}
    kw = class_keywords(corpus.texts, [tmp_names[c] for c in raw.tolist()], [tmp_names[c] for c in order], n=10,
                        seed=settings.seed)
    ids = pool_ids(kw, [tmp_names[c] for c in order])
    pool_of = {c: ids[tmp_names[c]] for c in order}
    assigned = [pool_of[c] for c in raw.tolist()]
    vectors = E if E is not None else F
    space = (f"embedding ({getattr(embedder, 'id', '?')})" if E is not None
             else f"discovery features ({settings.features})")
    data = PoolData(ids=corpus.ids, titles=corpus.titles, texts=corpus.texts, labels=assigned, vectors=vectors,
                    space=space, source=", ".join(corpus.sources), kind="clusters")
    report = compute_report(data, pools=[pool_of[c] for c in order], thresholds=thresholds or Thresholds(),
                            center=True, map_method=map_method, seed=settings.seed)
    for b in report["pools"]:
        b["name"] = " / ".join(k["term"] for k in b["keywords"][:3]) or b["id"]
    result = {
        "kind": "laari-discovery",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {"sources": corpus.sources, "projects": len(corpus), "skipped": corpus.skipped,
                   "labelled": corpus.labels is not None},
        "settings": asdict(settings),
        "k": k,
        "k_selection": table,
        "assignments": [{"id": i, "pool": p} for i, p in zip(corpus.ids, assigned)],
        "report": report,
    }
    if corpus.labels is not None:
        result["agreement"] = agreement(corpus.labels, assigned, [pool_of[c] for c in order])
        log(f"agreement with the labels: ARI {result['agreement']['ari']}, NMI {result['agreement']['nmi']}")
    return result


# =====================================================================================================  outputs
def _yaml(data, indent: int = 0) -> list[str]:
    """Lines of ``data`` as block YAML (``yaml.safe_dump``: quoting and escaping by the library), indented."""
    import yaml

    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
    return [" " * indent + line if line else line for line in text.rstrip("\n").split("\n")]


def taxonomy_draft(result: dict, base) -> str:
    """YAML text of a draft taxonomy: one laari per discovered pool (name and description from its keywords and
    representative projects, the assessment left for the reviewers), the out-of-theme verdict, tags and facets
    copied from ``base``. The data is written by ``yaml.safe_dump``; the comments for reviewers go between."""
    rep = result["report"]
    agree = {p["pool"]: p for p in (result.get("agreement") or {}).get("per_pool", [])}
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    lines = [
        f"# DRAFT taxonomy proposed by `laari discover` on {', '.join(result['corpus']['sources'])}",
        f"# ({result['corpus']['projects']} projects, k = {result['k']}, features {result['settings']['features']}, "
        f"seed {result['settings']['seed']}, {result['created']}).",
        "# Every laari below is a cluster of similar descriptions. Reviewers: rename the ids and names, rewrite the",
        "# descriptions, merge or split pools, and replace every TODO assessment with the uniform metric of the pool.",
        "# Then check it with `laari taxonomy check FILE` and train with `laari train --taxonomy FILE`.",
        *_yaml({"version": "draft-" + today, "name": "LUONNOS: " + base.name, "language": "fi"}),
        "",
        "laarit:",
    ]
    for b in rep["pools"]:
        kws = [k["term"] for k in b["keywords"]]
        reps = b["representatives"][:3]
        comments = [f"{b['size']} projects ({100 * b['share']:.1f} %), cohesion {b['cohesion']:.3f}, "
                    f"silhouette {b['silhouette'] if b['silhouette'] is not None else '-'}, verdict: {b['verdict']}"
                    + (f"; nearest pool {b['nearest']}" if b.get("nearest") else "")]
        if b["id"] in agree:
            a = agree[b["id"]]
            comments.append(f"most of its projects are labelled {a['majority_label']} "
                            f"({100 * a['purity']:.0f} %) in the current data")
        comments += [f"representative: {r['id']} {r['title']}".rstrip() for r in reps]
        lines += ["  # " + " ".join(c.split()) for c in comments]
        description = ("Hankkeet, joiden kuvauksissa toistuvat: " + ", ".join(kws[:8]) + ". Edustavia hankkeita: "
                       + "; ".join(f"{r['title'] or r['id']}" for r in reps) + ".")
        pool = {"id": b["id"], "name_fi": " / ".join(kws[:3]) or b["id"],
                "name_en": "TODO: English name (" + ", ".join(kws[:3]) + ")", "description": description}
        if kws:
            pool["include"] = kws[:5]
        pool["assessment"] = ["TODO: yhtenäinen arviointimittari tälle laarille"]
        lines += _yaml([pool], indent=2) + [""]
    oot = base.out_of_theme
    lines += _yaml({"out_of_theme": {"id": oot.id, "name_fi": oot.name_fi, "name_en": oot.name_en,
                                     "description": oot.description}})
    lines += ["", *_yaml({"tags": [{"id": t.id, "name_fi": t.name_fi, "name_en": t.name_en,
                                    "description": t.description} for t in base.tags]})]
    if base.facets:
        facets = []
        for f in base.facets:
            values = []
            for v in f.values:
                value = {"id": v.id, "name_fi": v.name_fi, "name_en": v.name_en}
                if v.description:
                    value["description"] = v.description
                values.append(value)
            facets.append({"id": f.id, "name_fi": f.name_fi, "name_en": f.name_en, "multi": bool(f.multi),
                           "values": values})
        lines += ["", *_yaml({"facets": facets})]
    return "\n".join(lines) + "\n"


def write_taxonomy_draft(result: dict, path: str | Path, base=None) -> Path:
    """Write the draft, after checking that the taxonomy validation accepts it."""
    import yaml

    from classifier.taxonomy import load_taxonomy, parse_taxonomy

    base = base or load_taxonomy()
    path = Path(path)
    text = taxonomy_draft(result, base)
    parse_taxonomy(yaml.safe_load(text), source=str(path))
    atomic_write_text(path, text)
    return path


def _selection_png(result: dict) -> bytes | None:
    table = result["k_selection"]
    if len(table) < 2:
        return None
    plt = pyplot()
    ks = [r["k"] for r in table]
    fig, ax1 = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax1.plot(ks, [r["silhouette"] for r in table], "o-", color="#1f77b4", label="silhouette")
    ax1.set_xlabel("k (number of pools)")
    ax1.set_ylabel("silhouette", color="#1f77b4")
    ax2 = ax1.twinx()
    ax2.plot(ks, [r["stability"] for r in table], "s--", color="#d62728", label="stability (ARI)")
    ax2.axhline(result["settings"]["min_stability"], color="#d62728", lw=0.7, ls=":")
    ax2.set_ylabel("stability across seeds and samples", color="#d62728")
    ax2.set_ylim(0, 1.05)
    ax1.axvline(result["k"], color="black", lw=0.8, ls=":")
    ax1.set_title(f"Choosing k: chosen k = {result['k']}", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def _contingency_png(result: dict) -> bytes | None:
    a = result.get("agreement")
    if not a:
        return None
    rows, cols = a["contingency"]["rows"], a["contingency"]["columns"]
    return heatmap_png(a["contingency"]["counts"], rows, cols, figsize=(1.0 * len(cols) + 4, 0.55 * len(rows) + 2),
                       title=f"Discovered pools vs current labels (ARI {a['ari']:.2f}, NMI {a['nmi']:.2f})")


def write_discovery(result: dict, out_dir: str | Path) -> dict[str, str]:
    """``report.html`` (pools, choice of k, agreement), ``report.json``, ``assignments.csv`` and PNGs."""
    import csv
    import html
    import io

    from .pool_report_page import write_report

    out_dir = Path(out_dir)
    extra_images = {}
    sections = []
    esc = html.escape
    sel = _selection_png(result)
    rows = "".join(f"<tr><td>{r['k']}</td><td>{r['silhouette']:.3f}</td><td>"
                   f"{'–' if r['stability'] is None else format(r['stability'], '.3f')}</td>"
                   f"<td>{'✔' if r['chosen'] else ''}</td></tr>" for r in result["k_selection"])
    s = result["settings"]
    sections.append(f"<h2>Choice of k</h2><p class=meta>Features: {esc(s['features'])}; k-means, seed {s['seed']}, "
                    f"{s['n_init']} restarts; stability = mean ARI against {s['bootstrap']} clusterings of "
                    f"{100 * s['sample_fraction']:.0f} % subsamples; the best silhouette among k with stability ≥ "
                    f"{s['min_stability']} wins.</p><table><tr><th>k</th><th>silhouette</th><th>stability</th>"
                    f"<th>chosen</th></tr>{rows}</table>")
    if sel:
        extra_images["k_selection.png"] = sel
    a = result.get("agreement")
    if a:
        head = "".join(f"<th>{esc(c)}</th>" for c in a["contingency"]["columns"])
        body = "".join(f"<tr><td>{esc(r)}</td>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                       for r, row in zip(a["contingency"]["rows"], a["contingency"]["counts"]))
        sections.append(f"<h2>Agreement with the current labels</h2><p>Adjusted Rand index <b>{a['ari']:.3f}</b>, "
                        f"normalized mutual information <b>{a['nmi']:.3f}</b> (labels were not used for "
                        f"clustering).</p><table><tr><th>pool \\ label</th>{head}</tr>{body}</table>")
        cont = _contingency_png(result)
        if cont:
            extra_images["contingency.png"] = cont
    paths = write_report(result["report"], out_dir, title=f"Discovered pools (k = {result['k']})",
                         extra_sections=sections, extra_images=extra_images)
    # report.json: the discovery, with the pool report inside
    atomic_write_json(out_dir / "report.json", {**{k: v for k, v in result.items() if k != "report"},
                                                "report": {k: v for k, v in result["report"].items()
                                                           if not k.startswith("_")}})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "pool"])
    for r in result["assignments"]:
        w.writerow([r["id"], r["pool"]])
    atomic_write_bytes(out_dir / "assignments.csv", buf.getvalue().encode("utf-8"))
    paths["assignments"] = str(out_dir / "assignments.csv")
    return paths
