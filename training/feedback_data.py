"""Reviewers' decisions from the service's feedback database, as labelled training rows (``laari train
--with-feedback``).

- Only the latest decision per project counts (by project id, else by the text's hash): a reviewer may change
  their mind, and the newest row wins.
- Accepted suggestions and corrections both count: either way a person has confirmed the labels.
- A row is usable only when it carries the text; rows with just a hash are skipped and counted in ``source``.
- Labels must exist in the taxonomy being trained; otherwise the whole fold is refused with a message naming the
  rows and the unknown labels (the taxonomy changed since the feedback was given: fix the rows or the taxonomy).
- A project already in ``base`` gets the reviewer's labels (and text) in ``base`` itself, because the reviewer's
  decision is newer than the corpus label; the returned set still lists it, so the caller counts every fold.
"""

from __future__ import annotations

from pathlib import Path

from classifier.taxonomy import Taxonomy

from .datasets import DataError, LabelledSet

USABLE_DECISIONS = ("accept", "correct")


def _read_rows(url_or_path: str | Path) -> tuple[list[dict], str]:
    from classifier.feedback import FeedbackStore, FeedbackStoreError

    try:
        store = FeedbackStore(url_or_path, create=False)
    except FeedbackStoreError as exc:
        raise DataError(str(exc)) from exc
    try:
        return list(store.rows()), store.display_url
    except Exception as exc:  # a database error while reading: say which database
        raise DataError(f"feedback database {store.display_url}: cannot read: {exc}") from exc
    finally:
        store.close()


def _project_key(row: dict) -> str:
    pid = (row.get("project_id") or "").strip()
    return f"id:{pid}" if pid else f"sha:{row.get('text_sha256')}"


def feedback_corrections(url_or_path: str | Path, taxonomy: Taxonomy, base: LabelledSet) -> LabelledSet:
    """The latest accepted or corrected decision per project, validated against ``taxonomy`` (see module doc)."""
    rows, where = _read_rows(url_or_path)
    latest: dict[str, dict] = {}
    for row in rows:  # oldest first: later rows overwrite
        if row.get("decision") in USABLE_DECISIONS:
            latest[_project_key(row)] = row
        else:
            latest.pop(_project_key(row), None)

    verdicts = set(taxonomy.verdict_ids)
    tag_ids = set(taxonomy.tag_ids)
    problems: list[str] = []
    no_text = no_label = 0
    out = LabelledSet()
    base_index = {pid: i for i, pid in enumerate(base.ids)}
    for row in latest.values():
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            no_text += 1
            continue
        laari = row.get("laari")
        tags = row.get("tags")
        if not laari or tags is None:
            no_label += 1
            continue
        bad = []
        if laari not in verdicts:
            bad.append(f"laari {laari!r}")
        unknown_tags = [t for t in tags if t not in tag_ids]
        if unknown_tags:
            bad.append(f"tag(s) {unknown_tags}")
        if bad:
            problems.append(f"feedback row {row['id']} (project {row.get('project_id') or row['text_sha256'][:12]}): "
                            f"{' and '.join(bad)} not in the taxonomy")
            continue
        pid = (row.get("project_id") or "").strip() or f"feedback-{row['text_sha256'][:16]}"
        title = row.get("title") or ""
        out.ids.append(pid)
        out.titles.append(title)
        out.descriptions.append(text)
        out.laari.append(laari)
        out.tags.append(list(tags))
        out.origins.append("feedback")
        if pid in base_index:  # the reviewer's decision is newer than the corpus label
            i = base_index[pid]
            base.titles[i], base.descriptions[i], base.laari[i], base.tags[i] = title, text, laari, list(tags)
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise DataError(f"{where}: {len(problems)} feedback row(s) refused; labels must be in the taxonomy "
                        f"{taxonomy.source or taxonomy.name} (laarit {sorted(verdicts)}, tags {sorted(tag_ids)}):\n  "
                        + "\n  ".join(problems[:20]) + more)
    skipped = []
    if no_text:
        skipped.append(f"{no_text} without text")
    if no_label:
        skipped.append(f"{no_label} without labels")
    out.source = f"feedback {where}: {len(out)} project(s)" + (f"; skipped {', '.join(skipped)}" if skipped else "")
    return out
