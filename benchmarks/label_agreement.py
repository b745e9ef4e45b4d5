"""How consistent are the register-derived labels? A second, blind labelling against the corpus's own labels.

    .venv/bin/python benchmarks/label_agreement.py

``training/data/audit/blind_labels.jsonl`` holds a second labelling of every register-derived row
(``register_train.jsonl`` + ``register_heldout.jsonl``), made from the same text and fields the rows carry (title,
description, specific objective, applicant type) and ``DOMAIN.md``'s taxonomy, without sight of the first labels.
Their agreement bounds what a model can be expected to reach on these rows: a model that agrees with the labels
more often than a second careful reader does is fitting noise. Writes ``benchmarks/results/label_agreement.json``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "label_agreement.json"


def read(path: Path) -> dict[str, dict]:
    rows = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if row["id"] in rows:
                sys.exit(f"{path}: line {n}: id {row['id']} appears twice")
            rows[row["id"]] = row
    return rows


def main() -> None:
    first = {**read(DATA / "register_train.jsonl"), **read(DATA / "register_heldout.jsonl")}
    second = read(DATA / "audit" / "blind_labels.jsonl")
    if set(first) != set(second):
        sys.exit(f"the blind labelling covers {len(second)} rows, the corpus {len(first)}; "
                 f"missing {sorted(set(first) - set(second))[:5]}, extra {sorted(set(second) - set(first))[:5]}")
    ids = sorted(first)
    a = [first[i]["laari"] for i in ids]
    b = [second[i]["laari"] for i in ids]
    verdicts = sorted(set(a) | set(b))
    tags = sorted({t for i in ids for t in first[i]["tags"] + second[i]["tags"]})
    A = np.array([[t in first[i]["tags"] for t in tags] for i in ids])
    B = np.array([[t in second[i]["tags"] for t in tags] for i in ids])
    by_confidence = {}
    for level in ("high", "medium", "low"):
        chosen = [i for i in ids if first[i]["confidence"] == level]
        if chosen:
            by_confidence[level] = {"rows": len(chosen), "agreement": round(
                float(np.mean([first[i]["laari"] == second[i]["laari"] for i in chosen])), 3)}
    result = {
        "rows": len(ids),
        "laari_agreement": round(float(np.mean(np.array(a) == np.array(b))), 3),
        "laari_cohen_kappa": round(float(cohen_kappa_score(a, b)), 3),
        "laari_macro_f1_second_vs_first": round(float(f1_score(a, b, labels=verdicts, average="macro")), 3),
        "laari_f1_per_verdict": {v: round(float(x), 3) for v, x in zip(
            verdicts, f1_score(a, b, labels=verdicts, average=None))},
        "out_of_theme_f1": round(float(f1_score([x == "ei_teemassa" for x in a], [x == "ei_teemassa" for x in b])), 3),
        "tag_micro_f1_second_vs_first": round(float(f1_score(A, B, average="micro")), 3),
        "agreement_by_first_confidence": by_confidence,
        "disagreements": {f"{x} -> {y}": n for (x, y), n in Counter(
            (x, y) for x, y in zip(a, b) if x != y).most_common()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
