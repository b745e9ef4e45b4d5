"""The routing model: laari router, out-of-theme detector, tagger and the fit reference, in scikit-learn's manner.

Inputs are ``Documents``: the texts (title + description) and, when an embedder is in use, their embeddings. Two
channels score every text: the embedding channel (logistic regression on standardised sentence embeddings) and the
lexical channel (logistic regression on Finnish TF-IDF). Their probabilities are mixed with a weight chosen by
cross-validation on the training data (0 = lexical only, 1 = embedding only), then calibrated by a temperature.

- Router: one softmax over the five laarit *and* the out-of-theme verdict, so P(out of theme) and the laari
  probabilities come from one calibrated distribution; the laari probabilities reported are the five renormalised.
- Out-of-theme detector: ``ei_teemassa`` wins when its probability passes a threshold tuned by cross-validation.
- Tagger: one sigmoid per tag, per-tag thresholds tuned on out-of-fold scores of the training split only.
- Fit reference: each laari's centroid in embedding space and the sorted similarities of its training members, so
  a new project's similarity becomes a percentile among that laari's members.

Why the out-of-fold scores, the temperature and the thresholds are computed here rather than by scikit-learn's
``cross_val_predict``, ``CalibratedClassifierCV`` and ``TunedThresholdClassifierCV``: the folds split only the
selected (register) rows while every other row stays on the training side of each fold, and the folds are repeated
with averaged scores (``cross_val_predict`` needs one partition of all rows); the temperature and the out-of-theme
threshold are fitted on the *mix* of two channels' probabilities, not on one estimator's; and the threshold search
is over a multiclass decision (out of theme above a threshold, else the best laari), where the tuned-threshold
estimator is binary only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from .heads import LinearHead, fit_sigmoid, fit_softmax
from .lexical import LexicalVectorizer
from .lexical_index import Analysis

EMBEDDING = "embedding"
LEXICAL = "lexical"
FUSION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
C_GRID = {EMBEDDING: (0.03, 0.1, 0.3, 1.0), LEXICAL: (10.0, 30.0)}
PRIOR_STRENGTH_GRID = (0.0, 0.5, 1.0)  # exponent of the priors: 0 = class-balanced decisions, 1 = full Bayes
TEMPERATURE_GRID = tuple(np.round(np.arange(0.4, 3.01, 0.1), 2))
OUT_THRESHOLD_GRID = tuple(np.round(np.arange(0.1, 0.81, 0.05), 2))
N_JOBS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class Documents:
    """What the model reads: texts and, optionally, their embeddings (row-aligned)."""

    texts: list[str]
    embeddings: np.ndarray | None = None
    titles: list[str] | None = None  # the (normalised) titles the texts begin with, where known

    def __len__(self):
        return len(self.texts)

    def subset(self, idx) -> "Documents":
        idx = np.asarray(idx)
        return Documents([self.texts[i] for i in idx], None if self.embeddings is None else self.embeddings[idx],
                         None if self.titles is None else [self.titles[i] for i in idx])


@dataclass
class TrainingConfig:
    seed: int = 0
    folds: int = 5
    repeats: int = 2  # cross-validation repeated with differently shuffled folds; out-of-fold scores averaged
    analyzer: str = "lemma+char"
    channels: tuple[str, ...] = (EMBEDDING, LEXICAL)  # the candidates; CV picks the mix
    priors: object = "selection"  # the router's class priors: "selection", "uniform" or {verdict: share}
    title_weight: int = 1  # how many times the lexical channel counts the title's words (1 = as in the text)


@dataclass
class Scores:
    """Raw model output for a batch: verdict probabilities (laarit + out of theme) and tag scores."""

    verdict_proba: np.ndarray  # [n, len(verdicts)]
    tag_scores: np.ndarray | None  # [n, len(tags)]; None when only the router was asked
    lexical: Analysis | None = None  # the lexical channel's view of the batch (TF-IDF rows, word attribution)
    embeddings: np.ndarray | None = None

    @property
    def lexical_X(self) -> sp.csr_matrix | None:
        return None if self.lexical is None else self.lexical.X


@dataclass(eq=False, repr=False)
class LaariModel(BaseEstimator):
    """A scikit-learn estimator: its parameters are the four constructor arguments (``get_params``, ``set_params``
    and ``clone`` work on them); everything below them is learnt by ``fit`` (or read back by ``from_arrays``)."""

    laari_ids: list[str]
    out_id: str
    tag_ids: list[str]
    config: TrainingConfig = field(default_factory=TrainingConfig)
    # fitted
    vectorizer: LexicalVectorizer | None = field(default=None, init=False)
    emb_mean: np.ndarray | None = field(default=None, init=False)
    emb_scale: np.ndarray | None = field(default=None, init=False)
    router: dict[str, LinearHead] = field(default_factory=dict, init=False)
    tagger: dict[str, LinearHead] = field(default_factory=dict, init=False)
    router_weight: float = field(default=0.5, init=False)  # weight of the embedding channel in the router
    tagger_weight: float = field(default=0.5, init=False)
    temperature: float = field(default=1.0, init=False)
    out_threshold: float = field(default=0.5, init=False)
    tag_thresholds: np.ndarray | None = field(default=None, init=False)
    # [len(verdicts)], applied to the router's class-balanced probabilities
    priors: np.ndarray | None = field(default=None, init=False)
    prior_strength: float = field(default=1.0, init=False)  # exponent of the priors, chosen by cross-validation
    chosen_C: dict[str, float] = field(default_factory=dict, init=False)
    cv: dict = field(default_factory=dict, init=False)
    zero_shot: bool = field(default=False, init=False)

    @property
    def verdicts(self) -> list[str]:
        return self.laari_ids + [self.out_id]

    @property
    def channel_choice(self) -> str:
        if self.router_weight >= 1.0:
            return EMBEDDING
        if self.router_weight <= 0.0:
            return LEXICAL
        return "both"

    # ------------------------------------------------------------------ features
    def _emb_features(self, docs: Documents) -> np.ndarray:
        return (docs.embeddings - self.emb_mean) / self.emb_scale

    def _channels(self, docs: Documents, router_only: bool = False) -> dict[str, object]:
        """Features of the channels that carry weight (a channel with weight 0 is not computed)."""
        weights = [self.router_weight] + ([] if router_only else [self.tagger_weight])
        feats: dict[str, object] = {}
        if EMBEDDING in self.router and any(w > 0 for w in weights):
            if docs.embeddings is None:
                raise ValueError("this model needs embeddings; none were given")
            feats[EMBEDDING] = self._emb_features(docs)
        if LEXICAL in self.router and any(w < 1 for w in weights):
            feats[LEXICAL] = self.vectorizer.analyse(self.lexical_texts(docs))
        return feats

    def lexical_texts(self, docs: Documents) -> list[str]:
        """What the lexical channel reads: each text with its title's words counted ``title_weight`` times in
        all (a title names the project's aim in a few words; the register's summaries bury it in long text)."""
        extra = self.config.title_weight - 1
        if extra <= 0 or docs.titles is None:
            return list(docs.texts)
        return ["\n".join([title] * extra + [text]) if title else text for title, text in zip(docs.titles, docs.texts)]

    # ------------------------------------------------------------------ training
    def fit(self, docs: Documents, laari: list[str], tags: list[list[str]], progress=None, *,
            select: np.ndarray | None = None, weights: np.ndarray | None = None) -> "LaariModel":
        """Fit the channels' heads and make every choice (C, channel mix, temperature, out-of-theme threshold, tag
        thresholds) on out-of-fold predictions of the ``select`` rows (default: all rows).

        Rows outside ``select`` (e.g. written examples beside register-derived ones) join the training side of
        every fold and are never scored: the choices are made on the kind of text the model will meet.
        ``weights`` weighs each row in fitting (default 1). The class priors applied to the router are the
        setting ``config.priors``: ``selection`` (the label mix of the selected rows), ``uniform``, or a mapping.
        """
        cfg = self.config
        y = np.asarray(laari)
        unknown = sorted(set(y) - set(self.verdicts))
        if unknown:
            raise ValueError(f"unknown laari labels {unknown}; expected {self.verdicts}")
        n = len(y)
        sel = np.ones(n, dtype=bool) if select is None else np.asarray(select, dtype=bool)
        if sel.shape != (n,):
            raise ValueError(f"select: expected {n} flags, got {sel.shape}")
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        sel_idx = np.flatnonzero(sel)
        missing = [v for v in self.verdicts if not np.any(y[sel_idx] == v)]
        if missing:
            raise ValueError(f"the selection rows have no example of {missing}; every verdict needs some")
        Y = np.array([[t in set(ts) for t in self.tag_ids] for ts in tags], dtype=np.int8)
        channels = [c for c in cfg.channels if c != EMBEDDING or docs.embeddings is not None]
        if not channels:
            raise ValueError("no channel to train: give embeddings or enable the lexical channel")
        step = progress or (lambda msg: None)

        feats: dict[str, object] = {}
        if LEXICAL in channels:
            step("lexical features")
            self.vectorizer = LexicalVectorizer(analyzer=cfg.analyzer)
            feats[LEXICAL] = self.vectorizer.fit_transform(self.lexical_texts(docs))
        if EMBEDDING in channels:
            self.emb_mean = docs.embeddings.mean(axis=0).astype(np.float32)
            self.emb_scale = (docs.embeddings.std(axis=0) + 1e-6).astype(np.float32)
            feats[EMBEDDING] = self._emb_features(docs)

        # folds over the selected rows; every other row is on the training side of each fold
        folds = [(np.setdiff1d(np.arange(n), sel_idx[test]), sel_idx[test])
                 for r in range(max(1, cfg.repeats))
                 for _, test in StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed + r).split(
                     np.zeros(len(sel_idx)), y[sel_idx])]
        ys = y[sel_idx]
        y_idx = np.array([self.verdicts.index(v) for v in ys])
        Ys = Y[sel_idx]
        self.priors = self._resolve_priors(cfg.priors, ys)
        oof_router: dict[str, np.ndarray] = {}
        oof_tags: dict[str, np.ndarray] = {}
        for ch in channels:
            step(f"cross-validating the {ch} channel")
            best = None
            for C in C_GRID[ch]:
                P = self._oof(feats[ch], y, folds, w, lambda X, yy, ww: fit_softmax(X, yy, self.verdicts, C,
                                                                                     cfg.seed, ww))[sel_idx]
                loss = _nll(P, y_idx)
                if best is None or loss < best[0]:
                    best = (loss, C, P)
            self.chosen_C[ch] = best[1]
            oof_router[ch] = best[2]
            oof_tags[ch] = self._oof(feats[ch], Y, folds, w, lambda X, YY, ww: fit_sigmoid(
                X, YY, self.tag_ids, best[1], cfg.seed, ww))[sel_idx]

        step("choosing the channel mix, calibration and thresholds")
        grid = [g for g in FUSION_GRID if (g == 0.0 or EMBEDDING in channels) and (g == 1.0 or LEXICAL in channels)]

        def mix(oof, g):
            return g * oof.get(EMBEDDING, 0) + (1 - g) * oof.get(LEXICAL, 0)

        def router_score(g):  # the mix is chosen on class-balanced decisions; the priors' strength after it
            P = self._posterior(mix(oof_router, g), 1.0, strength=0.0)
            return (f1_score(y_idx, P.argmax(1), average="macro"), -_nll(P, y_idx))

        by_weight = {g: router_score(g) for g in grid}
        self.router_weight = max(grid, key=lambda g: by_weight[g])
        mixed = mix(oof_router, self.router_weight)

        def calibrated(strength):
            """Temperature, threshold and scores when the priors are applied with this strength."""
            T = float(min(TEMPERATURE_GRID, key=lambda t: _nll(self._posterior(mixed, t, strength), y_idx)))
            P = self._posterior(mixed, T, strength)
            thr = float(max(OUT_THRESHOLD_GRID, key=lambda t: (
                f1_score(y_idx, self._decide(P, t), average="macro"), -abs(t - 0.5))))
            return (f1_score(y_idx, self._decide(P, thr), average="macro"), -_nll(P, y_idx)), T, thr, P

        by_strength = {a: calibrated(a) for a in PRIOR_STRENGTH_GRID}
        self.prior_strength = max(PRIOR_STRENGTH_GRID, key=lambda a: by_strength[a][0])
        _, self.temperature, self.out_threshold, P = by_strength[self.prior_strength]
        out_col = len(self.laari_ids)

        tag_weight_scores = {}
        for g in grid:
            S = mix(oof_tags, g)
            thr = [_best_threshold(S[:, j], Ys[:, j]) for j in range(len(self.tag_ids))]
            pred = (S >= np.asarray(thr)).astype(int)
            tag_weight_scores[g] = (f1_score(Ys, pred, average="micro", zero_division=0), thr)
        self.tagger_weight = max(grid, key=lambda g: tag_weight_scores[g][0])
        self.tag_thresholds = np.asarray(tag_weight_scores[self.tagger_weight][1], dtype=np.float32)

        decided = self._decide(P, self.out_threshold)
        S = mix(oof_tags, self.tagger_weight)
        in_theme_share = P[np.arange(len(P)), decided] / np.clip(P[:, :out_col].sum(1), 1e-12, None)
        confidence = verdict_confidence(decided == out_col, P[:, out_col], in_theme_share)
        self.cv = {
            "folds": cfg.folds,
            "repeats": cfg.repeats,
            "rows_scored": int(len(sel_idx)),
            "rows_training_only": int(n - len(sel_idx)),
            "router_macro_f1": round(float(f1_score(y_idx, decided, average="macro")), 4),
            "router_accuracy": round(float(np.mean(decided == y_idx)), 4),
            "out_of_theme_f1": round(float(f1_score(y_idx == out_col, decided == out_col)), 4),
            "tag_micro_f1": round(float(tag_weight_scores[self.tagger_weight][0]), 4),
            "ece": round(expected_calibration_error(confidence, decided == y_idx), 4),
            "router_macro_f1_by_weight": {str(g): round(float(v[0]), 4) for g, v in by_weight.items()},
            "router_macro_f1_by_prior_strength": {str(a): round(float(v[0][0]), 4) for a, v in by_strength.items()},
            "tag_micro_f1_by_weight": {str(g): round(float(tag_weight_scores[g][0]), 4) for g in grid},
            "per_channel_router_macro_f1": {
                ch: round(float(f1_score(y_idx, oof_router[ch].argmax(1), average="macro")), 4) for ch in channels},
        }
        self.oof_scores_ = (P, S)
        self.oof_index_ = sel_idx

        step("fitting the final heads")
        for ch in channels:
            self.router[ch] = fit_softmax(feats[ch], y, self.verdicts, self.chosen_C[ch], cfg.seed, w)
            self.tagger[ch] = fit_sigmoid(feats[ch], Y, self.tag_ids, self.chosen_C[ch], cfg.seed, w)
        return self

    def _resolve_priors(self, setting, labels: np.ndarray) -> np.ndarray:
        """The router's class priors (in verdict order) from a setting: ``selection``, ``uniform`` or a mapping."""
        if setting == "uniform":
            return np.full(len(self.verdicts), 1.0 / len(self.verdicts))
        if setting == "selection":
            counts = np.array([np.sum(labels == v) for v in self.verdicts], dtype=float)
        elif isinstance(setting, dict):
            unknown = sorted(set(setting) - set(self.verdicts))
            if unknown:
                raise ValueError(f"priors: unknown verdict(s) {unknown}; expected {self.verdicts}")
            counts = np.array([float(setting.get(v, 0.0)) for v in self.verdicts])
        else:
            raise ValueError(f"priors: {setting!r}; use 'selection', 'uniform' or a mapping verdict -> share")
        if np.any(counts <= 0):
            raise ValueError(f"priors: every verdict needs a positive share; got {dict(zip(self.verdicts, counts))}")
        return counts / counts.sum()

    def set_priors(self, setting) -> "LaariModel":
        """Change the class priors the router applies (e.g. a call whose applications mix differently from the
        register): ``uniform`` or a mapping verdict -> share. Thresholds stay as chosen."""
        if setting == "selection":
            raise ValueError("priors: 'selection' is only known at training time; give 'uniform' or a mapping")
        self.priors = self._resolve_priors(setting, np.array([]))
        return self

    def _posterior(self, P: np.ndarray, T: float, strength: float | None = None) -> np.ndarray:
        """The channels' (class-balanced) mixed probabilities, sharpened by 1/T and multiplied by the priors raised
        to ``strength`` (default: the model's ``prior_strength``)."""
        strength = self.prior_strength if strength is None else strength
        Q = _temper(P, T)
        if self.priors is not None and strength > 0:
            Q = Q * self.priors ** strength
            Q = Q / Q.sum(axis=1, keepdims=True)
        return Q

    def _oof(self, X, y, folds, w, fit) -> np.ndarray:
        """Out-of-fold probabilities, averaged over the repeats of the cross-validation; the folds run in
        parallel (results do not depend on the order)."""
        heads = Parallel(n_jobs=min(len(folds), N_JOBS), prefer="threads")(
            delayed(fit)(X[train], y[train], w[train]) for train, _ in folds)
        out, seen = None, np.zeros(X.shape[0])
        for head, (_, test) in zip(heads, folds):
            P = head.proba(X[test])
            if out is None:
                out = np.zeros((X.shape[0], P.shape[1]), dtype=np.float64)
            out[test] += P
            seen[test] += 1
        return out / np.maximum(seen, 1)[:, None]

    def _decide(self, P: np.ndarray, threshold: float) -> np.ndarray:
        """Index of the verdict: out of theme when its probability passes the threshold, else the best laari."""
        out_col = len(self.laari_ids)
        return np.where(P[:, out_col] >= threshold, out_col, P[:, :out_col].argmax(1))

    # ------------------------------------------------------------------ prediction
    def scores(self, docs: Documents, router_only: bool = False) -> Scores:
        """Verdict probabilities and (unless ``router_only``) tag scores for a batch of documents."""
        feats = self._channels(docs, router_only)
        analysis = feats.get(LEXICAL)
        if analysis is not None:
            feats[LEXICAL] = analysis.X

        def mixed(heads: dict[str, LinearHead], w: float) -> np.ndarray:
            total = 0
            for ch, head in heads.items():
                weight = w if ch == EMBEDDING else 1 - w
                if weight > 0:
                    total = total + weight * head.proba(feats[ch])
            return total

        P = self._posterior(mixed(self.router, self.router_weight), self.temperature)
        S = None if router_only else mixed(self.tagger, self.tagger_weight)
        return Scores(verdict_proba=P, tag_scores=S, lexical=analysis, embeddings=docs.embeddings)

    def predict_proba(self, docs: Documents) -> np.ndarray:
        """[n, 6]: probabilities of the five laarit and of out-of-theme (columns in ``self.verdicts`` order)."""
        return self.scores(docs).verdict_proba

    def predict(self, docs: Documents) -> list[str]:
        return [self.verdicts[i] for i in self._decide(self.predict_proba(docs), self.out_threshold)]

    def predict_tags(self, docs: Documents) -> list[list[str]]:
        S = self.scores(docs).tag_scores
        return [[t for t, s, thr in zip(self.tag_ids, row, self.tag_thresholds) if s >= thr] for row in S]

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {
            "laari_ids": self.laari_ids, "out_id": self.out_id, "tag_ids": self.tag_ids,
            "config": {"seed": self.config.seed, "folds": self.config.folds, "repeats": self.config.repeats,
                       "analyzer": self.config.analyzer, "title_weight": self.config.title_weight,
                       "channels": list(self.config.channels)},
            "router_weight": self.router_weight, "tagger_weight": self.tagger_weight,
            "temperature": self.temperature, "out_threshold": self.out_threshold,
            "chosen_C": self.chosen_C, "cv": self.cv, "zero_shot": self.zero_shot,
            "router": {}, "tagger": {}, "vectorizer": None,
        }
        arrays: dict[str, np.ndarray] = {"tag_thresholds": self.tag_thresholds.astype(np.float32)}
        if self.priors is not None:
            meta["priors"] = {v: round(float(p), 6) for v, p in zip(self.verdicts, self.priors)}
            meta["prior_strength"] = self.prior_strength
        for name, heads in (("router", self.router), ("tagger", self.tagger)):
            for ch, head in heads.items():
                m, a = head.to_arrays(f"{name}.{ch}")
                meta[name][ch] = m
                arrays.update(a)
        if self.vectorizer is not None:
            m, a = self.vectorizer.to_arrays()
            meta["vectorizer"] = m
            arrays.update({f"vectorizer.{k}": v for k, v in a.items()})
        if self.emb_mean is not None:
            arrays["emb_mean"] = self.emb_mean
            arrays["emb_scale"] = self.emb_scale
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray]) -> "LaariModel":
        c = meta["config"]
        model = cls(laari_ids=list(meta["laari_ids"]), out_id=meta["out_id"], tag_ids=list(meta["tag_ids"]),
                    config=TrainingConfig(seed=c["seed"], folds=c["folds"], repeats=c.get("repeats", 1),
                                          analyzer=c["analyzer"], title_weight=int(c.get("title_weight", 1)),
                                          channels=tuple(c["channels"])))
        model.router_weight = float(meta["router_weight"])
        model.tagger_weight = float(meta["tagger_weight"])
        model.temperature = float(meta["temperature"])
        model.out_threshold = float(meta["out_threshold"])
        model.chosen_C = dict(meta["chosen_C"])
        model.cv = dict(meta["cv"])
        model.zero_shot = bool(meta.get("zero_shot", False))
        model.tag_thresholds = np.asarray(arrays["tag_thresholds"], dtype=np.float32)
        if meta.get("priors"):
            model.priors = np.array([float(meta["priors"][v]) for v in model.verdicts])
            model.prior_strength = float(meta.get("prior_strength", 1.0))
        model.router = {ch: LinearHead.from_arrays(m, arrays, f"router.{ch}") for ch, m in meta["router"].items()}
        model.tagger = {ch: LinearHead.from_arrays(m, arrays, f"tagger.{ch}") for ch, m in meta["tagger"].items()}
        if meta.get("vectorizer"):
            model.vectorizer = LexicalVectorizer.from_arrays(meta["vectorizer"], {"idf": arrays["vectorizer.idf"]})
        if "emb_mean" in arrays:
            model.emb_mean = np.asarray(arrays["emb_mean"], dtype=np.float32)
            model.emb_scale = np.asarray(arrays["emb_scale"], dtype=np.float32)
        return model


def _temper(P: np.ndarray, T: float) -> np.ndarray:
    logp = np.log(np.clip(P, 1e-12, 1.0)) / T
    logp -= logp.max(axis=1, keepdims=True)
    Q = np.exp(logp)
    return Q / Q.sum(axis=1, keepdims=True)


def _nll(P: np.ndarray, y_idx: np.ndarray) -> float:
    return float(-np.mean(np.log(P[np.arange(len(y_idx)), y_idx] + 1e-12)))


def verdict_confidence(is_out, out_probability, in_theme_share):
    """The probability of the verdict given: P(out of theme) for an out-of-theme verdict, else
    P(in theme) x the chosen laari's share among the laarit (what calibration is measured on)."""
    is_out = np.asarray(is_out, dtype=bool)
    out_probability = np.asarray(out_probability, dtype=float)
    return np.where(is_out, out_probability, (1 - out_probability) * np.asarray(in_theme_share, dtype=float))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins (0, 0.1], ..., weighted by bin size."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def _f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(truth & pred))
    denom = float(np.sum(truth) + np.sum(pred))
    return 2 * tp / denom if denom else 0.0


def _best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The score threshold with the best F1 on these (out-of-fold) scores; 0.5 when the tag never occurs."""
    truth = truth.astype(bool)
    if not truth.any():
        return 0.5
    best_t, best_f = 0.5, -1.0
    for t in np.round(np.arange(0.05, 0.951, 0.025), 3):
        f = _f1(truth, scores >= t)
        if f > best_f + 1e-9 or (abs(f - best_f) <= 1e-9 and abs(t - 0.5) < abs(best_t - 0.5)):
            best_t, best_f = float(t), f
    return best_t
