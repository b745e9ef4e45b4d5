"""Two more sources of evidence tried against the default router, on its own cross-validation over the register rows.

    .venv/bin/python benchmarks/extra_channels.py

Fits the default model once on the bundled training files (every choice by cross-validation over the
register-derived rows, as ``laari train`` does) and takes its out-of-fold verdict probabilities. On the same folds:

- **nearest neighbours**: the verdicts of the k most similar training-side projects (cosine of embeddings,
  softmax-weighted), among the register rows only or among all training rows, mixed into the router's
  probabilities with weight g;
- **the official specific objective** (``erityistavoite_code``, on every register row): the share of out-of-theme
  projects under the same objective among the training-side register rows (smoothed towards the overall share),
  applied to the out-of-theme vs in-theme odds with strength beta (the laarit's relative shares unchanged).

- **two stages**: the out-of-theme probability as the router gives it, and the laari among the five from a second
  router trained on in-theme rows only (same channels, C and mix as the default), also scored on the register
  held-out split.

Reports macro-F1 and out-of-theme F1 at the model's own threshold; a source would replace nothing unless it is
ahead by more than 0.01 (the rule in BENCHMARKS.md). Writes ``benchmarks/results/extra_channels.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "extra_channels.json"


def folds(model, y_sel):
    cfg = model.config
    return [test for r in range(max(1, cfg.repeats))
            for _, test in StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed + r).split(
                np.zeros(len(y_sel)), y_sel)]


def main() -> None:
    from classifier.embedders import TextKind, load_embedder
    from classifier.model import Documents, LaariModel, TrainingConfig
    from classifier.taxonomy import load_taxonomy
    from classifier.text import document_text, normalize
    from training import pipeline
    from training.datasets import load_labelled

    tax = load_taxonomy()
    data = pipeline.load_files(pipeline.default_files(pipeline.DEFAULT_TRAINING_FILES), tax)
    docs = [document_text(t, d) for t, d in zip(data.titles, data.descriptions)]
    embedder = load_embedder()
    E = embedder.encode(docs, TextKind.PASSAGE, progress=True)
    reg = np.asarray(data.from_register, dtype=bool)
    model = LaariModel(tax.laari_ids, tax.out_of_theme.id, tax.tag_ids, config=TrainingConfig())
    model.fit(Documents(docs, E, [normalize(t or "") for t in data.titles]), data.laari, data.tags, select=reg,
              weights=np.where(reg, 1.0, pipeline.DEFAULT_WRITTEN_WEIGHT))
    P, _ = model.oof_scores_
    idx = model.oof_index_
    verdicts = model.verdicts
    out = len(verdicts) - 1
    y_all = np.array([verdicts.index(v) for v in data.laari])
    y = y_all[idx]
    test_folds = folds(model, y)
    codes = np.array([None] * len(data), dtype=object)
    by_id = {}
    for path in pipeline.default_files((pipeline.REGISTER_TRAIN,)):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_id[row["id"]] = row.get("erityistavoite_code")
    codes[:] = [by_id.get(i) for i in data.ids]
    unit = E / np.linalg.norm(E, axis=1, keepdims=True)

    def score(Q):
        d = np.where(Q[:, out] >= model.out_threshold, out, Q[:, :out].argmax(1))
        return {"macro_f1": round(float(f1_score(y, d, average="macro")), 4),
                "out_of_theme_f1": round(float(f1_score(y == out, d == out)), 4)}

    def knn(k, register_only, temperature=0.05):
        total = np.zeros_like(P)
        for test in test_folds:
            train = np.setdiff1d(np.arange(len(data)), idx[test])
            if register_only:
                train = train[reg[train]]
            sims = unit[idx[test]] @ unit[train].T
            top = np.argsort(-sims, axis=1)[:, :k]
            for a, row in enumerate(top):
                w = np.exp(sims[a, row] / temperature)
                np.add.at(total[test[a]], y_all[train[row]], w / w.sum())
        return total / total.sum(axis=1, keepdims=True)

    def objective(beta, alpha=2.0):
        Q = np.zeros_like(P)
        is_out = y_all == out
        for test in test_folds:
            train = np.setdiff1d(np.flatnonzero(reg), idx[test])
            base = is_out[train].mean()
            for t in test:
                same = train[codes[train] == codes[idx[t]]]
                p_out = (is_out[same].sum() + alpha * base) / (len(same) + alpha)
                q = P[t].copy()
                q[out] *= (p_out / base) ** beta
                q[:out] *= ((1 - p_out) / (1 - base)) ** beta
                Q[t] += q / q.sum()
        return Q / Q.sum(axis=1, keepdims=True)

    results = {"rows_scored": int(len(idx)), "default": score(P), "nearest_neighbours": {}, "objective": {}}
    for register_only in (True, False):
        for k in (5, 15):
            K = knn(k, register_only)
            for g in (0.2, 0.4):
                name = f"k={k}, {'register rows' if register_only else 'all rows'}, weight {g}"
                results["nearest_neighbours"][name] = score((1 - g) * P + g * K)
    for beta in (0.25, 0.5, 1.0):
        results["objective"][f"strength {beta}"] = score(objective(beta))

    # two stages: in-theme heads on in-theme rows, the same folds, channels, C and mix as the default
    from classifier.heads import fit_softmax

    feats = model._channels(Documents(docs, E, [normalize(t or "") for t in data.titles]), router_only=True)
    X_lex = feats["lexical"].X
    X_emb = feats["embedding"]
    g = model.router_weight
    in_theme = y_all != out

    def inner_heads(rows):
        return (fit_softmax(X_emb[rows], np.asarray(data.laari)[rows], model.laari_ids, model.chosen_C["embedding"],
                            model.config.seed),
                fit_softmax(X_lex[rows], np.asarray(data.laari)[rows], model.laari_ids, model.chosen_C["lexical"],
                            model.config.seed))

    def inner_proba(heads, emb, lex):
        return g * heads[0].proba(emb) + (1 - g) * heads[1].proba(lex)

    def two_stage(P_router, P_inner):
        return np.hstack([(1 - P_router[:, out:]) * P_inner, P_router[:, out:]])

    inner = np.zeros((len(idx), out))
    for test in test_folds:
        train = np.setdiff1d(np.arange(len(data)), idx[test])
        heads = inner_heads(train[in_theme[train]])
        inner[test] += inner_proba(heads, X_emb[idx[test]], X_lex[idx[test]])
    inner /= inner.sum(axis=1, keepdims=True)
    results["two_stages"] = {"cv": score(two_stage(P, inner))}
    held = load_labelled(pipeline.REGISTER_HELDOUT, tax)
    held_docs = [document_text(t, d) for t, d in zip(held.titles, held.descriptions)]
    held_E = embedder.encode(held_docs, TextKind.PASSAGE)
    hd = Documents(held_docs, held_E, [normalize(t or "") for t in held.titles])
    hf = model._channels(hd, router_only=True)
    P_held = model.predict_proba(hd)
    heads = inner_heads(np.flatnonzero(in_theme))
    y_held = np.array([verdicts.index(v) for v in held.laari])
    for name, Q in (("default", P_held),
                    ("two stages", two_stage(P_held, inner_proba(heads, hf["embedding"], hf["lexical"].X)))):
        d = np.where(Q[:, out] >= model.out_threshold, out, Q[:, :out].argmax(1))
        results["two_stages"][f"register held-out, {name}"] = {
            "macro_f1": round(float(f1_score(y_held, d, labels=sorted(set(y_held)), average="macro")), 4),
            "out_of_theme_f1": round(float(f1_score(y_held == out, d == out)), 4)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
