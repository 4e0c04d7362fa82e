"""Multi-label learning: one binary logistic-regression head per class.

A text may belong to several classes or to none. Each class gets its own binary head, its own
zero-shot prior and its own threshold from its own precision-recall curve; prediction returns every
class over its threshold.

Which negatives a class learns from is the delicate part. A text whose whole label set is known (your
examples, pseudo-labels, LLM answers) is a negative for every class it is not in. A generated example
was written for one class only: it may well show a second emotion too, so it is a negative for another
class only where the two classes are taken to exclude each other (``NEGATIVES``, settled by
bench/multilabel.py), and confident learning turns a negative into "unknown" when the rest of the data
says the example does show that class.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibration import label_issues, thresholds_for_precision
from .head import DEFAULT_C, LinearHead, choose_C

log = logging.getLogger("promptclf")

# Label sets of these sources are complete: a class missing from one is a negative.
COMPLETE = ("user", "pseudo", "llm")
# Generated examples and descriptions: "all" = a negative for every other class; "dissimilar" = only
# for classes whose descriptions are not among each class's most similar ones (they may co-occur).
NEGATIVES = "all"
SIMILAR_SHARE = 0.15  # with "dissimilar": the 15% most similar pairs of class descriptions may co-occur
# Class weights of each binary head: "balanced" (as the single-label head) or None, which keeps the
# base rate each class has among the examples (1 in k for generated ones). Settled by bench/multilabel.py:
# None left a description-only model predicting nothing at all (micro-F1 0.003 against 0.170)
CLASS_WEIGHT: str | None = "balanced"
FALLBACK_THRESHOLD = 0.5  # where no precision-recall curve can be drawn (too few examples)
# self-training, per class (the single-label constants, read the same way)
ROUNDS = 3
KEEP_FRACTION = 0.5
BALANCE = 2.0
SETTLED = 0.01
COLLAPSE = 0.3


class OneVsRestHead(LinearHead):
    """``k`` independent binary heads: ``coef_`` is ``(k, d)`` for any ``k``, probabilities are sigmoids."""

    multi_label = True

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return _sigmoid(self.decision_function(X))


def _model(C: float, random_state: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight=CLASS_WEIGHT, max_iter=2000, random_state=random_state)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


@dataclass
class LabelSets:
    """Unique texts with their known positives ``Y`` and which entries are known at all ``M`` (n, k)."""

    texts: list[str]
    Y: np.ndarray  # bool (n, k): the text belongs to the class
    M: np.ndarray  # bool (n, k): Y is known there (a positive, or a negative we trust)
    sources: np.ndarray  # str (n,): the most trusted provenance the text came with
    classes: np.ndarray


TRUST = {"user": 4, "llm": 3, "pseudo": 2, "prompt": 1, "generated": 0}


def label_sets(
    texts: list[str], labels: np.ndarray, sources: np.ndarray, classes: np.ndarray, exclusive: np.ndarray
) -> LabelSets:
    """Group (text, class, source) rows into label sets; ``exclusive[a, b]``: a text of ``a`` is not ``b``."""
    index: dict[str, int] = {}
    pos: list[set[int]] = []
    src: list[str] = []
    col = {str(c): j for j, c in enumerate(classes)}
    for t, c, s in zip(texts, labels, sources):
        i = index.setdefault(t, len(index))
        if i == len(pos):
            pos.append(set())
            src.append(str(s))
        pos[i].add(col[str(c)])
        if TRUST.get(str(s), 0) > TRUST.get(src[i], 0):
            src[i] = str(s)
    n, k = len(index), len(classes)
    Y = np.zeros((n, k), dtype=bool)
    M = np.zeros((n, k), dtype=bool)
    for i, js in enumerate(pos):
        Y[i, list(js)] = True
        if src[i] in COMPLETE:
            M[i] = True
        else:
            M[i] = Y[i] | exclusive[list(js)].any(axis=0)
    return LabelSets(list(index), Y, M, np.asarray(src, dtype=str), classes)


def exclusive_classes(classes: np.ndarray, D: dict[str, np.ndarray] | None, rule: str | None = None) -> np.ndarray:
    """``(k, k)`` bool: may an example written for row-class serve as a negative of column-class?"""
    rule = rule or NEGATIVES
    k = len(classes)
    ex = ~np.eye(k, dtype=bool)
    if rule == "all" or D is None or any(str(c) not in D for c in classes) or k < 3:
        return ex
    V = np.stack([D[str(c)] for c in classes])
    S = V @ V.T
    pairs = S[np.triu_indices(k, 1)]
    cut = np.quantile(pairs, 1 - SIMILAR_SHARE)
    ex &= ~(S >= cut)  # noqa: SIM300 - the most similar pairs of descriptions may co-occur: no negatives between them
    np.fill_diagonal(ex, False)
    return ex


def ovr_prior(classes: np.ndarray, D: dict[str, np.ndarray], weight: float) -> np.ndarray | None:
    """Zero-shot prior per class: ``weight * (cos(x, d_c) - mean_o cos(x, d_o))``, as ``(k, d)`` coefficients.

    Centred on the other descriptions so that it says "nearer this class than the others" and does not
    push every class up at once (a sigmoid has no softmax to cancel a common shift).
    """
    if weight <= 0 or any(str(c) not in D for c in classes):
        return None
    V = np.stack([D[str(c)] for c in classes])
    k = len(classes)
    others = (V.sum(axis=0, keepdims=True) - V) / max(1, k - 1)
    return ((V - others) * weight).astype(np.float32)


def _weights(sample_weight: np.ndarray | None, rows: np.ndarray) -> dict[str, Any]:
    return {} if sample_weight is None else {"sample_weight": sample_weight[rows]}


def fit_ovr(
    X: np.ndarray,
    ls: LabelSets,
    sample_weight: np.ndarray | None = None,
    *,
    C: float = DEFAULT_C,
    prior: np.ndarray | None = None,
    random_state: int = 0,
) -> OneVsRestHead:
    """A binary logistic regression per class on the rows where that class is known; prior added."""
    k, d = len(ls.classes), X.shape[1]
    coef = np.zeros((k, d), dtype=np.float32)
    intercept = np.zeros(k, dtype=np.float32)
    for j in range(k):
        rows = np.flatnonzero(ls.M[:, j])
        y = ls.Y[rows, j]
        if y.all() or not y.any():  # one side only: a constant score on that side
            intercept[j] = 5.0 if y.all() else -5.0
            continue
        m = _model(C, random_state).fit(X[rows], y, **_weights(sample_weight, rows))
        coef[j], intercept[j] = m.coef_[0], m.intercept_[0]
    if prior is not None:
        coef = coef + prior
    return OneVsRestHead(np.asarray(ls.classes, dtype=str), coef.astype(np.float32), intercept, float(C))


def choose_ovr_C(X: np.ndarray, ls: LabelSets, cv: bool, random_state: int = 0) -> float:
    """``DEFAULT_C`` unless asked to cross-validate; then the median of each class's choice."""
    if not cv:
        return DEFAULT_C
    picks = [
        choose_C(X[ls.M[:, j]], ls.Y[ls.M[:, j], j].astype(int), None, random_state) for j in range(len(ls.classes))
    ]
    return float(np.median(picks))


def out_of_fold_ovr(
    X: np.ndarray,
    ls: LabelSets,
    C: float,
    sample_weight: np.ndarray | None = None,
    *,
    prior: np.ndarray | None = None,
    random_state: int = 0,
) -> np.ndarray | None:
    """Per class, the probability each known row gets from a model that never saw it (NaN where unknown).

    ``None`` if no class has at least two rows on each side.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n, k = ls.Y.shape
    P = np.full((n, k), np.nan)
    any_done = False
    for j in range(k):
        rows = np.flatnonzero(ls.M[:, j])
        y = ls.Y[rows, j]
        folds = int(min(5, y.sum(), (~y).sum()))
        if folds < 2:
            continue
        params = {"sample_weight": sample_weight[rows]} if sample_weight is not None else None
        z = cross_val_predict(
            _model(C, random_state),
            X[rows],
            y,
            cv=StratifiedKFold(folds, shuffle=True, random_state=random_state),
            method="decision_function",
            params=params,
        )
        if prior is not None:
            z = z + X[rows] @ prior[j]
        P[rows, j] = _sigmoid(z)
        any_done = True
    return P if any_done else None


def pr_curves_ovr(Y: np.ndarray, M: np.ndarray, P: np.ndarray, classes: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Each class's precision-recall curve over the rows where it is known and scored."""
    from sklearn.metrics import precision_recall_curve

    out = {}
    for j, c in enumerate(classes):
        rows = M[:, j] & np.isfinite(P[:, j])
        y = Y[rows, j]
        if not y.any() or y.all():
            continue
        p, r, t = precision_recall_curve(y, P[rows, j])
        out[str(c)] = {"precision": p, "recall": r, "thresholds": t}
    return out


def ovr_thresholds(
    Y: np.ndarray, M: np.ndarray, P: np.ndarray | None, classes: np.ndarray, target: float, *, quiet: bool = False
) -> tuple[np.ndarray, dict[str, float]]:
    """Per class, the lowest probability whose precision reaches ``target`` (0.5 where unmeasurable)."""
    if P is None:
        return np.full(len(classes), FALLBACK_THRESHOLD), {}
    curves = pr_curves_ovr(Y, M, P, classes)
    th, reached = thresholds_for_precision(curves, classes, target, quiet=quiet)
    for j, c in enumerate(classes):
        curve = curves.get(str(c))
        if curve is None:
            th[j] = FALLBACK_THRESHOLD
        elif reached.get(str(c), 1.0) < target:
            # unreachable: the best-precision point keeps a class from ever being predicted (measured:
            # the all-labels GoEmotions probe then labelled 95% of texts with nothing); take the F1 optimum
            p, r, t = curve["precision"][:-1], curve["recall"][:-1], curve["thresholds"]
            i = int(np.argmax(2 * p * r / np.maximum(p + r, 1e-12)))
            th[j], reached[str(c)] = float(t[i]), float(p[i])
    return th, reached


def ovr_label_issues(ls: LabelSets, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning per class on the binary problem (Northcutt et al., as in single-label).

    Returns ``(wrong_positive, wrong_negative)``, bool ``(n, k)``: known entries whose out-of-fold
    probability points the other way with more confidence than that side's average.
    """
    n, k = ls.Y.shape
    wrong_pos = np.zeros((n, k), dtype=bool)
    wrong_neg = np.zeros((n, k), dtype=bool)
    for j in range(k):
        rows = np.flatnonzero(ls.M[:, j] & np.isfinite(P[:, j]))
        y = ls.Y[rows, j]
        if not y.any() or y.all():
            continue
        p = P[rows, j]
        flagged = label_issues(y.astype(int), np.column_stack([1 - p, p]))
        wrong_pos[rows[flagged & y], j] = True
        wrong_neg[rows[flagged & ~y], j] = True
    return wrong_pos, wrong_neg


def clean(ls: LabelSets, P: np.ndarray | None, removable: tuple[str, ...] = ("generated", "pseudo")) -> np.ndarray:
    """Apply confident learning in place: a ``removable`` text with a contradicted positive is dropped
    (returned mask is False); a contradicted negative of such a text becomes unknown (it may show that
    class too). Descriptions and your own examples are never touched."""
    keep = np.ones(len(ls.texts), dtype=bool)
    if P is None:
        return keep
    wrong_pos, wrong_neg = ovr_label_issues(ls, P)
    soft = np.isin(ls.sources, removable)
    keep &= ~(wrong_pos.any(axis=1) & soft)
    ls.M &= ~(wrong_neg & soft[:, None])
    return keep


def subset(ls: LabelSets, rows: np.ndarray) -> LabelSets:
    return LabelSets([ls.texts[i] for i in np.flatnonzero(rows)], ls.Y[rows], ls.M[rows], ls.sources[rows], ls.classes)


# ---------------------------------------------------------------------------------------- self-training
@dataclass
class MultiSelfTrainResult:
    index: np.ndarray  # rows of the pool that got a label set
    label_sets: list[list[str]]
    confidence: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def predicted_sets(P: np.ndarray, thresholds: np.ndarray, top1: bool) -> np.ndarray:
    """Which classes each row predicts: those over their thresholds, and the most probable one if ``top1``."""
    pos = P >= thresholds  # noqa: SIM300
    if top1 and len(P):
        pos[np.arange(len(P)), P.argmax(axis=1)] = True
    return pos


def _select_ovr(P: np.ndarray, thresholds: np.ndarray, top1: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the most confident KEEP_FRACTION of the texts predicted positive (capped for balance).

    Returns the chosen rows and their label sets (``predicted_sets``).
    """
    pos = predicted_sets(P, thresholds, top1)
    k = P.shape[1]
    quotas = [int(np.ceil(KEEP_FRACTION * pos[:, j].sum())) for j in range(k)]
    nonzero = [q for q in quotas if q > 0]
    cap = int(np.ceil(BALANCE * np.median(nonzero))) if nonzero else 0
    chosen: set[int] = set()
    for j in range(k):
        idx = np.flatnonzero(pos[:, j])
        chosen.update(idx[np.argsort(-P[idx, j], kind="stable")][: min(quotas[j], cap)].tolist())
    rows = np.array(sorted(chosen), dtype=int)
    return rows, pos[rows]


def self_train_ovr(
    X: np.ndarray,
    ls: LabelSets,
    XU: np.ndarray,
    *,
    C: float,
    prior: np.ndarray | None = None,
    random_state: int = 0,
    target_precision: float = 0.9,
    min_labels: int = 0,
) -> MultiSelfTrainResult:
    """Pseudo-label the pool per class: a chosen text gets its whole predicted label set (complete, so
    it is a negative for the rest), the model is refit until the sets settle, confident learning drops
    contradicted ones, and a guard falls back when a class collapses.

    A class is in a text's predicted set when its probability reaches the class's threshold at
    ``target_precision`` on the anchors out of fold (the thresholds prediction would use), and the
    most probable class too with ``min_labels`` or where the anchors are too few to set thresholds
    (descriptions alone): then each text's top class is its pseudo-label, as in single-label training.
    """
    classes = ls.classes

    def fit(rows_X: np.ndarray, sets: LabelSets):
        return fit_ovr(rows_X, sets, C=C, prior=prior, random_state=random_state)

    def joined(sel: np.ndarray, Ysel: np.ndarray) -> LabelSets:
        n = len(sel)
        return LabelSets(
            ls.texts + [f"\x00pool{i}" for i in sel],
            np.vstack([ls.Y, Ysel]),
            np.vstack([ls.M, np.ones((n, len(classes)), dtype=bool)]),
            np.concatenate([ls.sources, np.full(n, "pseudo")]),
            classes,
        )

    base = fit(X, ls)
    anchors_oof = out_of_fold_ovr(X, ls, C, prior=prior, random_state=random_state)
    th, _ = ovr_thresholds(ls.Y, ls.M, anchors_oof, classes, target_precision)
    top1 = bool(min_labels) or anchors_oof is None
    P0 = base.predict_proba(XU)
    P = P0
    sel, Ysel = _select_ovr(P, th, top1)
    rounds = 0
    for rounds in range(1, ROUNDS + 1):
        head = fit(np.vstack([X, XU[sel]]), joined(sel, Ysel))
        P = head.predict_proba(XU)
        new_sel, new_Y = _select_ovr(P, th, top1)
        common, a, b = np.intersect1d(sel, new_sel, return_indices=True)
        changed = float(np.mean((Ysel[a] != new_Y[b]).any(axis=1))) if len(common) else 0.0
        moved = len(np.setxor1d(sel, new_sel)) / max(1, len(sel))
        sel, Ysel = new_sel, new_Y
        log.info("multi-label self-training round %d: %d texts, %.1f%% changed", rounds, len(sel), 100 * changed)
        if changed < SETTLED and moved < SETTLED:
            break
    every = joined(sel, Ysel)
    Xa = np.vstack([X, XU[sel]])
    oof = out_of_fold_ovr(Xa, every, C, prior=prior, random_state=random_state)
    keep = clean(every, oof, removable=("pseudo",))[len(ls.texts) :]
    dropped = int((~keep).sum())
    sel, Ysel = sel[keep], Ysel[keep]
    conf = np.where(Ysel, P[sel], 1 - P[sel]).min(axis=1) if len(sel) else np.zeros(0)

    # guard: a class whose share of positive predictions on the pool falls under COLLAPSE of what
    # the model without pseudo-labels gave is a sign the pseudo-labels drifted
    final = fit(np.vstack([X, XU[sel]]), joined(sel, Ysel))
    share0 = predicted_sets(P0, th, top1).mean(axis=0)
    share1 = predicted_sets(final.predict_proba(XU), th, top1).mean(axis=0)
    collapsed = [str(c) for c, a0, a1 in zip(classes, share0, share1) if a0 > 0.02 and a1 < COLLAPSE * a0]
    per_text0, per_text1 = float(share0.sum()), float(share1.sum())  # mean labels per pool text
    guard = {"fallback": False, "reason": None, "labels_per_text": [round(per_text0, 2), round(per_text1, 2)]}
    if collapsed:
        guard.update(fallback=True, reason=f"class(es) {collapsed} collapsed")
    elif per_text1 > max(2.0, 2 * per_text0):  # the sets swelled: pseudo-labels feeding on themselves
        guard.update(fallback=True, reason=f"labels per text grew from {per_text0:.1f} to {per_text1:.1f}")
    per_class = Counter(str(classes[j]) for row in Ysel for j in np.flatnonzero(row))
    report = {
        "pool": len(XU),
        "rounds": rounds,
        "pseudo_labels": len(sel),
        "multi_label": True,
        "per_class": {str(c): per_class.get(str(c), 0) for c in classes},
        "with_two_or_more": int((Ysel.sum(axis=1) >= 2).sum()) if len(sel) else 0,
        "dropped_by_confident_learning": dropped,
        "guard": guard,
    }
    if guard["fallback"]:
        log.warning("multi-label self-training looked harmful (%s): training without pseudo-labels", guard["reason"])
        return MultiSelfTrainResult(np.zeros(0, dtype=int), [], np.zeros(0), report)
    sets = [[str(classes[j]) for j in np.flatnonzero(row)] for row in Ysel]
    return MultiSelfTrainResult(sel, sets, conf, report)


def cross_validated_estimate_ovr(
    P: np.ndarray, L: np.ndarray, classes: np.ndarray, target: float, *, folds: int = 5, random_state: int = 0
) -> dict[str, Any] | None:
    """Multi-label counterpart of ``calibration.cross_validated_estimate``: per-class thresholds chosen
    on the other folds; precision is over the labels given (where the truth is known), coverage the
    share of texts given at least one label. ``L`` is (n, k): 1 positive, 0 negative, -1 unknown."""
    from sklearn.model_selection import KFold

    from .calibration import summarize_sets

    if (L == 1).sum(axis=0).min() < 2 or len(L) < 4:
        return None
    cv = KFold(n_splits=int(min(folds, len(L) // 2)), shuffle=True, random_state=random_state)
    given = np.zeros(L.shape, dtype=bool)
    for fit_rows, held in cv.split(P):
        th, _ = ovr_thresholds(L[fit_rows] == 1, L[fit_rows] >= 0, P[fit_rows], classes, target, quiet=True)
        given[held] = P[held] >= th
    out = summarize_sets(given, L, classes)
    out["method"] = f"{cv.get_n_splits()}-fold cross-validation of the threshold choice"
    return out
