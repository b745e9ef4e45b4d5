"""Evaluation reports for people: Markdown and HTML with the confusion matrix drawn, plus the JSON for scripts."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from classifier.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from classifier.figures import heatmap_png
from classifier.html_page import html_table, markdown_html


def confusion_png(metrics: dict, path: Path, title: str) -> None:
    confusion = metrics["laari"]["confusion"]
    atomic_write_bytes(path, heatmap_png(confusion["matrix"], confusion["labels"], title=title, xlabel="predicted",
                                         ylabel="true", figsize=(6.4, 5.4)))


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


def misrouted_html(errors: list[dict]):
    """The misrouted projects as a table section (empty when there are none)."""
    if not errors:
        return Markup("")
    return html_table(["id", "title", "true", "predicted", "fit"],
                      ([e["id"], e["title"], e["gold_laari"], e["laari"], f"{e['fit']:.2f}"] for e in errors),
                      heading="Misrouted projects")


def write_evaluation_report(folder: Path, metrics: dict, rows: list[dict], predictor) -> Path:
    """report.json, report.md, report.html and confusion.png in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    confusion_png(metrics, folder / "confusion.png", f"{Path(metrics['source']).name}, model {metrics['model_version']}")
    md_text = markdown(metrics, "confusion.png")
    errors = [r for r in rows if r["gold_laari"] != r["laari"]]
    atomic_write_json(folder / "report.json", {"metrics": metrics, "misrouted": errors})
    atomic_write_text(folder / "report.md", md_text)
    atomic_write_text(folder / "report.html", markdown_html(md_text, f"laari evaluation {metrics['model_version']}",
                                                            misrouted_html(errors)))
    return folder
