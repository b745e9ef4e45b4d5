"""Evaluation reports for people: Markdown and HTML with the confusion matrix drawn, plus the JSON for scripts."""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def confusion_png(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = metrics["laari"]["confusion"]["labels"]
    M = np.asarray(metrics["laari"]["confusion"]["matrix"])
    row_sums = M.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=110)
    ax.imshow(M / row_sums, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            if M[i, j]:
                ax.text(j, i, str(M[i, j]), ha="center", va="center",
                        color="white" if M[i, j] / row_sums[i, 0] > 0.5 else "black", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def markdown(metrics: dict, image: str | None) -> str:
    lam = metrics["laari"]
    o = metrics["out_of_theme"]
    t = metrics["tags"]
    lines = [
        f"# Evaluation of model `{metrics['model_version']}`",
        "",
        f"Data: `{metrics['source']}` ({metrics['n']} projects).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| laari accuracy | {lam['accuracy']:.3f} |",
        f"| laari macro-F1 (5 laarit + ei_teemassa) | {lam['macro_f1']:.3f} |",
        f"| laari macro-F1 among in-theme projects | {(lam['in_theme_macro_f1'] or 0):.3f} |",
        f"| ei_teemassa precision / recall / F1 | {o['precision']:.3f} / {o['recall']:.3f} / {o['f1']:.3f} |",
    ]
    if "fit_auroc" in o:
        lines.append(f"| fit score AUROC (in vs out of theme) | {o['fit_auroc']:.3f} |")
    lines.append(f"| tags micro-F1 / macro-F1 | {t['micro_f1']:.3f} / {t['macro_f1']:.3f} |")
    if "calibration" in metrics:
        lines.append(f"| expected calibration error (10 bins) | {metrics['calibration']['ece']:.3f} |")
    lines += ["", "## Per laari", "", "| laari | precision | recall | F1 | n |", "|---|---|---|---|---|"]
    for lab, v in lam["per_label"].items():
        lines.append(f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", ""]
    if image:
        lines += [f"![confusion matrix]({image})", ""]
    labels = lam["confusion"]["labels"]
    lines.append("| true \\ predicted | " + " | ".join(labels) + " |")
    lines.append("|---" * (len(labels) + 1) + "|")
    for lab, row in zip(labels, lam["confusion"]["matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "## Per tag", "", "| tag | precision | recall | F1 | n |", "|---|---|---|---|---|"]
    for tag, v in t["per_tag"].items():
        lines.append(f"| {tag} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    return "\n".join(lines) + "\n"


def to_html(md_text: str, title: str, errors: list[dict]) -> str:
    """A self-contained HTML page from the Markdown tables (no external assets)."""
    body = []
    in_table = False
    for line in md_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
                body.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            body.append(f'<img src="{html.escape(src)}" alt="confusion matrix">')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    if in_table:
        body.append("</table>")
    if errors:
        body.append("<h2>Misrouted projects</h2><table><tr><th>id</th><th>title</th><th>true</th><th>predicted</th>"
                    "<th>fit</th></tr>")
        for e in errors:
            body.append(f"<tr><td>{html.escape(e['id'])}</td><td>{html.escape(e['title'])}</td>"
                        f"<td>{e['gold_laari']}</td><td>{e['laari']}</td><td>{e['fit']:.2f}</td></tr>")
        body.append("</table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style><body>" + "\n".join(body) + "</body></html>\n")


def write_evaluation_report(folder: Path, metrics: dict, rows: list[dict], predictor) -> Path:
    """report.json, report.md, report.html and confusion.png in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    confusion_png(metrics, folder / "confusion.png", f"{Path(metrics['source']).name}, model {metrics['model_version']}")
    md_text = markdown(metrics, "confusion.png")
    errors = [r for r in rows if r["gold_laari"] != r["laari"]]
    atomic_write(folder / "report.json", json.dumps({"metrics": metrics, "misrouted": errors}, ensure_ascii=False,
                                                    indent=2) + "\n")
    atomic_write(folder / "report.md", md_text)
    atomic_write(folder / "report.html", to_html(md_text, f"laari evaluation {metrics['model_version']}", errors))
    return folder
