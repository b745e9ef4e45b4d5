"""The pool homogeneity report as people read it: the map, the pool-to-pool similarity heat map and the homogeneity
plot (PNG), and the self-contained HTML page with the figures of ``training.pool_report.compute_report``; written
with the JSON by :func:`write_report`."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

import numpy as np

from classifier.atomic import atomic_write_bytes, atomic_write_json
from classifier.figures import heatmap_png, png_bytes, pyplot

OUT_OF_THEME_COLOUR = "#9a9a9a"


def _colours(pools: Sequence[str]) -> dict[str, str]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(pools) <= 10 else "tab20"]
    return {p: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, p in enumerate(pools)}


def plot_map(report: dict) -> bytes:
    plt = pyplot()
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
    return png_bytes(fig)


def plot_heatmap(report: dict) -> bytes:
    labels = report["pairwise_similarity"]["labels"]
    M = [[np.nan if v is None else v for v in row] for row in report["pairwise_similarity"]["matrix"]]
    return heatmap_png(M, labels, title="Pool-to-pool similarity (diagonal: within the pool)", counts=False,
                       colorbar="mean pairwise cosine")


def plot_homogeneity(report: dict) -> bytes:
    plt = pyplot()
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
    return png_bytes(fig)


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


def crosstab_sections(tables: Sequence[dict]) -> list[str]:
    """laari against an official register column (``Et``, the secondary theme): who is in which pool."""
    parts = []
    for t in tables:
        parts.append(f"<h2>laari × {_esc(t['column'])}</h2><p class=meta>Classified projects by laari (rows) and "
                     f"the register's {_esc(t['column'])!s} (columns); {t['total']} projects.</p>")
        parts.append("<table><tr><th>laari</th>" + "".join(f"<th>{_esc(v)}</th>" for v in t["values"])
                     + "<th>total</th></tr>")
        for lab, row, tot in zip(t["laari"], t["counts"], t["laari_totals"]):
            parts.append(f"<tr><td>{_esc(lab)}</td>" + "".join(f"<td>{n}</td>" for n in row) + f"<td>{tot}</td></tr>")
        parts.append("<tr><td><b>total</b></td>" + "".join(f"<td>{n}</td>" for n in t["value_totals"])
                     + f"<td>{t['total']}</td></tr></table>")
    return parts


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
    parts.extend(crosstab_sections(report.get("crosstabs") or []))
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
