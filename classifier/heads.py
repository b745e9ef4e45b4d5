"""Linear heads: the fitted parameters of a logistic regression as plain arrays (saved without pickle).

scikit-learn fits them; prediction, saving and loading use only these arrays, so training, evaluation and serving
share one scoring path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression


@dataclass
class LinearHead:
    """``softmax`` (one label of ``classes``) or ``sigmoid`` (each class on its own) over ``x @ coef.T + b``."""

    classes: list[str]
    coef: np.ndarray  # [k, d]
    intercept: np.ndarray  # [k]
    kind: str = "softmax"  # or "sigmoid"
    temperature: float = 1.0

    def decision(self, X) -> np.ndarray:
        z = X @ self.coef.T if not sp.issparse(X) else np.asarray(X @ self.coef.T)
        return (z + self.intercept) / self.temperature

    def proba(self, X) -> np.ndarray:
        z = self.decision(X)
        return softmax(z, axis=1) if self.kind == "softmax" else expit(z)

    def to_arrays(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"classes": self.classes, "kind": self.kind, "temperature": self.temperature}
        return meta, {f"{prefix}.coef": self.coef.astype(np.float32), f"{prefix}.intercept": self.intercept.astype(np.float32)}

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> "LinearHead":
        return cls(classes=list(meta["classes"]), coef=np.asarray(arrays[f"{prefix}.coef"], dtype=np.float32),
                   intercept=np.asarray(arrays[f"{prefix}.intercept"], dtype=np.float32), kind=meta["kind"],
                   temperature=float(meta.get("temperature", 1.0)))


def fit_softmax(X, y: np.ndarray, classes: list[str], C: float, seed: int,
                sample_weight: np.ndarray | None = None) -> LinearHead:
    """Multinomial logistic regression over ``classes`` (every class must occur in ``y``), classes balanced, each
    row weighted by ``sample_weight`` (default 1)."""
    lr = LogisticRegression(C=C, solver="newton-cg", max_iter=1000, random_state=seed, class_weight="balanced")
    lr.fit(X, y, sample_weight=sample_weight)
    order = [list(lr.classes_).index(c) for c in classes]
    return LinearHead(classes=list(classes), coef=lr.coef_[order].astype(np.float32),
                      intercept=lr.intercept_[order].astype(np.float32), kind="softmax")


def fit_sigmoid(X, Y: np.ndarray, classes: list[str], C: float, seed: int,
                sample_weight: np.ndarray | None = None) -> LinearHead:
    """One binary logistic regression per column of ``Y`` (a column with a single value gets a constant head)."""
    d = X.shape[1]
    coef = np.zeros((len(classes), d), dtype=np.float32)
    intercept = np.zeros(len(classes), dtype=np.float32)
    for j in range(len(classes)):
        yj = Y[:, j]
        if yj.min() == yj.max():
            intercept[j] = 10.0 if yj[0] else -10.0
            continue
        lr = LogisticRegression(C=C, solver="newton-cg", max_iter=1000, random_state=seed, class_weight="balanced")
        lr.fit(X, yj, sample_weight=sample_weight)
        coef[j] = lr.coef_[0]
        intercept[j] = lr.intercept_[0]
    return LinearHead(classes=list(classes), coef=coef, intercept=intercept, kind="sigmoid")
