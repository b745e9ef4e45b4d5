"""Evaluation metrics: routing (accuracy, macro-F1, confusion matrix), out-of-theme detection (precision, recall,
F1, AUROC of the fit score), tags (per-tag P/R/F1, micro and macro F1) and calibration (expected calibration error).

``score`` works on plain label lists and scores, so the same figures can be computed for any system (the Annif
benchmark uses it too).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             roc_auc_score)

from classifier.model import expected_calibration_error, verdict_confidence
from classifier.predictor import Predictor
from classifier.prediction import ProjectInput

from .datasets import LabelledSet


MIN_SUPPORT = 5


def score(gold_laari: Sequence[str], pred_laari: Sequence[str], gold_tags: Sequence[Sequence[str]],
          pred_tags: Sequence[Sequence[str]], *, verdicts: list[str], tag_ids: list[str], out_id: str,
          fit: Sequence[float] | None = None, confidence: Sequence[float] | None = None) -> dict:
    """All metrics for one system's predictions on one labelled set."""
    gold = np.asarray(gold_laari)
    pred = np.asarray(pred_laari)
    labels = [v for v in verdicts if v in set(gold) | set(pred)]
    supported = [v for v in verdicts if int(np.sum(gold == v)) >= MIN_SUPPORT]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    per_laari = {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                       "f1": round(float(f[i]), 4), "support": int(s[i])} for i, lab in enumerate(labels)}
    in_theme = gold != out_id
    laari_only = [v for v in verdicts if v != out_id and v in set(gold)]
    out = {
        "n": int(len(gold)),
        "laari": {
            "accuracy": round(float(accuracy_score(gold, pred)), 4),
            "macro_f1": round(float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)), 4),
            # over the verdicts with at least MIN_SUPPORT gold projects: on a small set, a verdict with one or two
            # projects swings the full average by a sixth per project
            "macro_f1_supported": round(float(f1_score(gold, pred, labels=supported, average="macro",
                                                       zero_division=0)), 4) if supported else None,
            "supported_labels": supported,
            "in_theme_macro_f1": round(float(f1_score(gold[in_theme], pred[in_theme], labels=laari_only,
                                                      average="macro", zero_division=0)), 4) if in_theme.any() else None,
            "per_label": per_laari,
            "confusion": {"labels": verdicts,
                          "matrix": confusion_matrix(gold, pred, labels=verdicts).tolist()},
        },
    }
    is_out_gold = gold == out_id
    is_out_pred = pred == out_id
    op, orc, of, _ = precision_recall_fscore_support(is_out_gold, is_out_pred, average="binary", zero_division=0)
    detection = {"precision": round(float(op), 4), "recall": round(float(orc), 4), "f1": round(float(of), 4),
                 "support": int(is_out_gold.sum())}
    if fit is not None and 0 < is_out_gold.sum() < len(gold):
        detection["fit_auroc"] = round(float(roc_auc_score(~is_out_gold, np.asarray(fit, dtype=float))), 4)
    out["out_of_theme"] = detection

    G = np.array([[t in set(ts) for t in tag_ids] for ts in gold_tags], dtype=int)
    P = np.array([[t in set(ts) for t in tag_ids] for ts in pred_tags], dtype=int)
    tp, tr, tf, ts_ = precision_recall_fscore_support(G, P, zero_division=0)
    out["tags"] = {
        "micro_f1": round(float(f1_score(G, P, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(G, P, average="macro", zero_division=0)), 4),
        "per_tag": {t: {"precision": round(float(tp[j]), 4), "recall": round(float(tr[j]), 4),
                        "f1": round(float(tf[j]), 4), "support": int(ts_[j])} for j, t in enumerate(tag_ids)},
    }
    if confidence is not None:
        out["calibration"] = {"ece": round(expected_calibration_error(np.asarray(confidence), gold == pred), 4),
                              "bins": 10}
    return out


def evaluate_predictor(predictor: Predictor, data: LabelledSet) -> tuple[dict, list[dict]]:
    """Predict every row of ``data`` and score; returns (metrics, per-row predictions with gold labels)."""
    items = [ProjectInput(description=d, title=t, id=i) for i, t, d in zip(data.ids, data.titles, data.descriptions)]
    results = predictor.predict_many(items, explain=False)
    rows = []
    for i, res in enumerate(results):
        if isinstance(res, Exception):
            raise ValueError(f"{data.source}: row {data.ids[i]}: {res}")
        rows.append({"id": data.ids[i], "title": data.titles[i], "gold_laari": data.laari[i],
                     "gold_tags": data.tags[i], "laari": res.laari, "tags": res.tags, "fit": res.fit,
                     "confidence": float(verdict_confidence(res.laari == predictor.model.out_id,
                                                            res.out_of_theme_probability,
                                                            res.laari_scores.get(res.laari, 0.0))),
                     "fit_verdict": res.fit_verdict})
    model = predictor.model
    metrics = score([r["gold_laari"] for r in rows], [r["laari"] for r in rows], [r["gold_tags"] for r in rows],
                    [r["tags"] for r in rows], verdicts=model.verdicts, tag_ids=model.tag_ids, out_id=model.out_id,
                    fit=[r["fit"] for r in rows], confidence=[r["confidence"] for r in rows])
    metrics["source"] = data.source
    metrics["model_version"] = predictor.version
    return metrics, rows
