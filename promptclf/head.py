"""Logistic-regression head: fit with scikit-learn, predict with numpy from the stored coefficients.

Predicting from ``coef_``/``intercept_`` means a loaded model needs no refit and no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Inverse regularisation strengths tried by cross-validation.
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# Without enough of the user's own examples, C is not cross-validated: synthetic and pseudo-labelled
# texts are easy to separate, so CV on them picks C=100, which lost 3.6 / 0.6 / 1.0 points of
# macro-F1 (sst2 / ag_news / trec6) on real test data against C=1 (BENCHMARKS.md, ablation table).
DEFAULT_C = 1.0
MIN_TRUSTED_PER_CLASS = 8


@dataclass
class LinearHead:
    classes_: np.ndarray  # (k,) str, sorted as scikit-learn sorts them
    coef_: np.ndarray  # (1, d) for two classes, else (k, d)
    intercept_: np.ndarray  # (1,) or (k,)
    C_: float
    multi_label = False  # a class attribute: the one-vs-rest head (promptclf.multilabel) says True

    @property
    def n_features_in_(self) -> int:
        return int(self.coef_.shape[1])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_.T + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return scores_to_proba(self.decision_function(X))


def scores_to_proba(z: np.ndarray) -> np.ndarray:
    """scikit-learn's link: sigmoid of the one score of a binary head, softmax over several."""
    if z.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1.0 - p1, p1])
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prior_coef(classes: np.ndarray, D: dict[str, np.ndarray], weight: float) -> np.ndarray | None:
    """The zero-shot prior ``weight * cos(x, description_c)`` as coefficients in the head's layout.

    Cosine to a description is linear in a normalised embedding, so "LR logits + prior" is just
    another linear head: the prior costs nothing at prediction and needs nothing new in the file.
    Only when every class has a description (otherwise it would favour the described ones).
    """
    if weight <= 0 or any(str(c) not in D for c in classes):
        return None
    rows = np.stack([D[str(c)] for c in classes]) * weight
    return (rows[1] - rows[0])[None, :] if len(classes) == 2 else rows


def with_prior(head: LinearHead, prior: np.ndarray | None) -> LinearHead:
    if prior is None:
        return head
    return LinearHead(head.classes_, (head.coef_ + prior).astype(np.float32), head.intercept_, head.C_)


def _model(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=random_state)


def n_folds(y: np.ndarray, max_folds: int = 5) -> int:
    """Folds for stratified CV: at most ``max_folds``, at most the size of the smallest class."""
    _, counts = np.unique(y, return_counts=True)
    return int(min(max_folds, counts.min()))


def choose_C(X: np.ndarray, y: np.ndarray, trusted: np.ndarray | None = None, random_state: int = 0) -> float:
    """C by cross-validated log loss when every class has ``MIN_TRUSTED_PER_CLASS`` trusted (user) examples.

    ``trusted`` marks the rows whose labels a person gave; ``None`` means all of them.
    """
    labels = y if trusted is None else y[trusted]
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < len(np.unique(y)) or counts.min() < MIN_TRUSTED_PER_CLASS:
        return DEFAULT_C
    k = n_folds(y)
    if k < 2:
        return DEFAULT_C
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    cv = LogisticRegressionCV(
        Cs=list(C_GRID),
        cv=StratifiedKFold(k, shuffle=True, random_state=random_state),
        scoring="neg_log_loss",
        class_weight="balanced",
        max_iter=2000,
        random_state=random_state,
        **_cv_compat(),
    )
    cv.fit(X, y)
    return float(np.ravel(cv.C_)[0])


def _cv_compat() -> dict[str, object]:
    """Arguments newer scikit-learn asks for explicitly (and older ones don't know)."""
    import inspect

    from sklearn.linear_model import LogisticRegressionCV

    params = inspect.signature(LogisticRegressionCV).parameters
    out: dict[str, object] = {}
    if "l1_ratios" in params:
        out["l1_ratios"] = (0.0,)
    if "use_legacy_attributes" in params:
        out["use_legacy_attributes"] = False
    return out


def fit_head(
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    C: float | None = None,
    random_state: int = 0,
) -> LinearHead:
    if C is None:
        C = choose_C(X, y, None, random_state)
    m = _model(C, random_state).fit(X, y, sample_weight=sample_weight)
    return LinearHead(
        classes_=m.classes_.astype(str),
        coef_=m.coef_.astype(np.float32),
        intercept_=m.intercept_.astype(np.float32),
        C_=float(C),
    )


def out_of_fold_proba(
    X: np.ndarray,
    y: np.ndarray,
    C: float,
    sample_weight: np.ndarray | None = None,
    *,
    prior: np.ndarray | None = None,
    random_state: int = 0,
) -> np.ndarray | None:
    """Probabilities each example gets from a model that never saw it; ``None`` if a class has one example.

    With a ``prior`` (see ``prior_coef``), it is added to each fold's scores, as in the final head.
    """
    k = n_folds(y)
    if k < 2:
        return None
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    params = {"sample_weight": sample_weight} if sample_weight is not None else None
    z = cross_val_predict(
        _model(C, random_state),
        X,
        y,
        cv=StratifiedKFold(k, shuffle=True, random_state=random_state),
        method="decision_function",
        params=params,
    )
    z = z.reshape(X.shape[0], -1)  # X may be sparse (the fast path's words), which has no len
    if prior is not None:
        z = z + X @ prior.T
    return scores_to_proba(z)
