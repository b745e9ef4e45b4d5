"""The reclassification report: who moved from which laari to which between two batch outputs, tags added and
removed, fit verdicts changed; as JSON, Markdown, HTML, a transition heat map and the moved projects as an Excel
sheet (with the official columns of a register export, when the current output has them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from classifier.atomic import atomic_file, atomic_write_bytes, atomic_write_json
from classifier.figures import heatmap_png
from classifier.html_page import markdown_html
from classifier.result_rows import ROW_FIELDS, iter_output

from .xlsx_out import XlsxRows


MAX_IDS_SHOWN = 50  # per group in the Markdown/HTML report; the JSON has every id


def compare_outputs(previous: str | Path, current: str | Path) -> dict:
    """Who moved where between two batch outputs (matched by id): laari transitions with their ids, tags added
    and removed, fit verdicts changed, rows only in one of them, rows that became (or stopped being) errors."""
    previous, current = Path(previous), Path(current)
    old: dict[str, tuple] = {}
    old_versions: Counter = Counter()
    for r in iter_output(previous):
        if r["id"] is None or r["id"] in old:
            continue  # error rows without an id, and later duplicates, cannot be matched
        old[r["id"]] = (r["laari"], tuple(r["tags"] or ()), r["fit_verdict"], r["error"])
        if r["model_version"]:
            old_versions[r["model_version"]] += 1
    transitions: dict[tuple[str, str], list[str]] = {}
    matrix: Counter = Counter()
    tags_added: dict[str, list[str]] = {}
    tags_removed: dict[str, list[str]] = {}
    fit_changed: dict[tuple[str, str], list[str]] = {}
    became_errors: list[dict] = []
    no_longer_errors: list[str] = []
    only_current: list[str] = []
    seen: set[str] = set()
    new_versions: Counter = Counter()
    moved_projects: list[dict] = []
    n_current = compared = unchanged = 0
    for r in iter_output(current):
        n_current += 1
        rid = r["id"]
        if r["model_version"]:
            new_versions[r["model_version"]] += 1
        if rid is None or rid in seen:
            continue
        seen.add(rid)
        if rid not in old:
            only_current.append(rid)
            continue
        o_laari, o_tags, o_fit, o_err = old[rid]
        if o_err is None and r["error"] is not None:
            became_errors.append({"id": rid, "error": r["error"], "previous_laari": o_laari})
            continue
        if o_err is not None and r["error"] is None:
            no_longer_errors.append(rid)
            continue
        if o_err is not None:
            continue
        compared += 1
        matrix[(o_laari, r["laari"])] += 1
        same = True
        if o_laari != r["laari"]:
            transitions.setdefault((o_laari, r["laari"]), []).append(rid)
            moved_projects.append({"id": rid, "previous_laari": o_laari, "laari": r["laari"],
                                   "previous_fit_verdict": o_fit, "fit_verdict": r["fit_verdict"],
                                   **{k: v for k, v in r.items() if k not in ROW_FIELDS}})
            same = False
        new_tags = set(r["tags"] or ())
        for t in sorted(new_tags - set(o_tags)):
            tags_added.setdefault(t, []).append(rid)
            same = False
        for t in sorted(set(o_tags) - new_tags):
            tags_removed.setdefault(t, []).append(rid)
            same = False
        if o_fit != r["fit_verdict"]:
            fit_changed.setdefault((o_fit, r["fit_verdict"]), []).append(rid)
            same = False
        unchanged += same
    only_previous = [rid for rid in old if rid not in seen]
    labels = sorted({a for a, _ in matrix} | {b for _, b in matrix})
    moved = sum(len(v) for v in transitions.values())
    return {
        "previous": {"path": str(previous), "rows": len(old), "model_versions": dict(old_versions)},
        "current": {"path": str(current), "rows": n_current, "model_versions": dict(new_versions)},
        "summary": {"compared": compared, "unchanged": unchanged, "moved": moved,
                    "moved_share": round(moved / compared, 4) if compared else 0.0,
                    "tags_changed": len({i for v in (*tags_added.values(), *tags_removed.values()) for i in v}),
                    "fit_verdict_changed": sum(len(v) for v in fit_changed.values()),
                    "only_in_previous": len(only_previous), "only_in_current": len(only_current),
                    "became_errors": len(became_errors), "no_longer_errors": len(no_longer_errors)},
        "moved": [{"from": a, "to": b, "count": len(ids), "ids": ids}
                  for (a, b), ids in sorted(transitions.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
        "moved_projects": moved_projects,
        "matrix": {"labels": labels, "counts": [[matrix[(a, b)] for b in labels] for a in labels]},
        "tags": {"added": [{"tag": t, "count": len(ids), "ids": ids} for t, ids in
                           sorted(tags_added.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
                 "removed": [{"tag": t, "count": len(ids), "ids": ids} for t, ids in
                             sorted(tags_removed.items(), key=lambda kv: (-len(kv[1]), kv[0]))]},
        "fit_verdicts": [{"from": a, "to": b, "count": len(ids), "ids": ids}
                         for (a, b), ids in sorted(fit_changed.items(), key=lambda kv: (-len(kv[1]), kv[0]))],
        "only_in_previous": only_previous,
        "only_in_current": only_current,
        "became_errors": became_errors,
        "no_longer_errors": no_longer_errors,
    }


def _ids_text(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (f" … and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")


def comparison_markdown(c: dict, image: str | None = None) -> str:
    s = c["summary"]
    lines = [
        "# Reclassification report", "",
        f"Previous: `{c['previous']['path']}` (model {', '.join(c['previous']['model_versions']) or '-'}, "
        f"{c['previous']['rows']} ids)  ",
        f"Current: `{c['current']['path']}` (model {', '.join(c['current']['model_versions']) or '-'}, "
        f"{c['current']['rows']} rows)", "",
        "| figure | count |", "|---|---|",
        f"| projects compared (classified in both) | {s['compared']} |",
        f"| unchanged (same laari, tags and fit verdict) | {s['unchanged']} |",
        f"| moved to another laari | {s['moved']} ({100 * s['moved_share']:.1f} %) |",
        f"| tags changed | {s['tags_changed']} |",
        f"| fit verdict changed | {s['fit_verdict_changed']} |",
        f"| only in the previous output | {s['only_in_previous']} |",
        f"| only in the current output | {s['only_in_current']} |",
        f"| classified before, an error now | {s['became_errors']} |",
        f"| an error before, classified now | {s['no_longer_errors']} |", "",
        "## Moved projects (previous laari -> current laari)", "",
    ]
    if c["moved"]:
        lines += ["| previous | current | count | ids |", "|---|---|---|---|"]
        lines += [f"| {m['from']} | {m['to']} | {m['count']} | {_ids_text(m['ids'])} |" for m in c["moved"]]
    else:
        lines.append("No project moved.")
    if image:
        lines += ["", f"![laari transitions]({image})"]
    lines += ["", "## Tags", ""]
    if c["tags"]["added"] or c["tags"]["removed"]:
        lines += ["| tag | change | count | ids |", "|---|---|---|---|"]
        lines += [f"| {t['tag']} | added | {t['count']} | {_ids_text(t['ids'])} |" for t in c["tags"]["added"]]
        lines += [f"| {t['tag']} | removed | {t['count']} | {_ids_text(t['ids'])} |" for t in c["tags"]["removed"]]
    else:
        lines.append("No tag changed.")
    lines += ["", "## Fit verdicts changed", ""]
    if c["fit_verdicts"]:
        lines += ["| previous | current | count | ids |", "|---|---|---|---|"]
        lines += [f"| {m['from']} | {m['to']} | {m['count']} | {_ids_text(m['ids'])} |" for m in c["fit_verdicts"]]
    else:
        lines.append("No fit verdict changed.")
    for title, ids in (("Only in the previous output", c["only_in_previous"]),
                       ("Only in the current output", c["only_in_current"]),
                       ("An error before, classified now", c["no_longer_errors"])):
        if ids:
            lines += ["", f"## {title}", "", _ids_text(ids)]
    if c["became_errors"]:
        lines += ["", "## Classified before, an error now", "", "| id | previous laari | error |", "|---|---|---|"]
        lines += [f"| {e['id']} | {e['previous_laari']} | {e['error']} |" for e in c["became_errors"][:MAX_IDS_SHOWN]]
    return "\n".join(lines) + "\n"


def _transition_png(c: dict, path: Path) -> bool:
    labels = c["matrix"]["labels"]
    if not labels:
        return False
    png = heatmap_png(c["matrix"]["counts"], labels, title="Where the projects went (row share, counts in cells)",
                      xlabel="current laari", ylabel="previous laari",
                      figsize=(1.2 * len(labels) + 2.5, 1.0 * len(labels) + 2))
    atomic_write_bytes(path, png)
    return True


def write_moved_xlsx(c: dict, path: Path) -> None:
    """The moved projects, one row each (id, previous and current laari and fit verdict, then the official
    columns of a register export), as one Excel sheet with a frozen header and filters, written atomically."""
    fields = ["id", "previous_laari", "laari", "previous_fit_verdict", "fit_verdict"]
    for m in c["moved_projects"]:
        fields += [k for k in m if k not in fields]
    with atomic_file(path) as f:
        w = XlsxRows(f, fields, sheet="moved")
        w.write(c["moved_projects"])
        w.close()


def write_comparison(previous: str | Path, current: str | Path, prefix: str | Path | None = None) -> dict:
    """Write ``PREFIX.json``, ``.md``, ``.html``, ``.png`` and ``.moved.xlsx`` (default prefix:
    ``CURRENT_STEM.compare`` beside the current output); returns the paths and the summary."""
    current = Path(current)
    prefix = Path(prefix) if prefix else current.with_name(current.stem + ".compare")
    c = compare_outputs(previous, current)
    png = prefix.with_name(prefix.name + ".png")
    image = png.name if _transition_png(c, png) else None
    md = comparison_markdown(c, image)
    paths = {"json": prefix.with_name(prefix.name + ".json"), "markdown": prefix.with_name(prefix.name + ".md"),
             "html": prefix.with_name(prefix.name + ".html"), "xlsx": prefix.with_name(prefix.name + ".moved.xlsx")}
    atomic_write_json(paths["json"], c)
    write_moved_xlsx(c, paths["xlsx"])
    atomic_write_bytes(paths["markdown"], md.encode("utf-8"))
    atomic_write_bytes(paths["html"], markdown_html(md, "Reclassification report").encode("utf-8"))
    if image:
        paths["png"] = png
    return {"paths": {k: str(v) for k, v in paths.items()}, "summary": c["summary"]}
