"""Per-class abstention thresholds from precision-recall curves, and confident-learning label checks."""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger("promptclf")

# rows labelled by a person per class before thresholds are chosen on them alone (a few per class)
MIN_REAL_PER_CLASS = 5


def pr_curves(y_idx: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """One-vs-rest precision-recall curve of each class's probability column."""
    from sklearn.metrics import precision_recall_curve

    out = {}
    for j, c in enumerate(classes):
        positives = y_idx == j
        if not positives.any():
            continue
        p, r, t = precision_recall_curve(positives, proba[:, j])
        out[str(c)] = {"precision": p, "recall": r, "thresholds": t}
    return out


def thresholds_for_precision(
    curves: dict[str, dict[str, np.ndarray]], classes: np.ndarray, target_precision: float, *, quiet: bool = False
) -> tuple[np.ndarray, dict[str, float]]:
    """Lowest threshold per class whose precision reaches the target.

    Where no threshold reaches it, take the one with the best precision and say so: a threshold
    that promises more than it keeps is worse than a warning.
    """
    thresholds = np.zeros(len(classes), dtype=np.float64)
    reached: dict[str, float] = {}
    for j, c in enumerate(classes):
        curve = curves.get(str(c))
        if curve is None:
            thresholds[j] = 0.0
            continue
        p, t = curve["precision"][:-1], curve["thresholds"]
        ok = np.flatnonzero(p >= target_precision)
        if ok.size:
            i = ok[0]
        else:
            i = int(np.argmax(p))
            (log.debug if quiet else log.warning)(
                "class %r: no threshold reaches precision %.2f on the calibration data (best %.2f)",
                str(c),
                target_precision,
                p[i],
            )
        thresholds[j] = float(t[i])
        reached[str(c)] = float(p[i])
    return thresholds, reached


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% by default): sound at small n and at 0 or n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def abstain_outcome(proba: np.ndarray, y_idx: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: did ``predict(abstain=True)`` answer, and was the answer right."""
    top = proba.argmax(axis=1)
    answered = proba[np.arange(len(top)), top] >= thresholds[top]
    return answered, answered & (top == y_idx)


def summarize_outcome(
    answered: np.ndarray, correct: np.ndarray, predicted: np.ndarray, classes: np.ndarray
) -> dict[str, object]:
    """Precision of the answers and coverage, each with a 95% Wilson interval, overall and per predicted class."""
    n, a, k = len(answered), int(answered.sum()), int(correct.sum())
    per_class = {}
    for j, c in enumerate(classes):
        mine = answered & (predicted == j)
        m = int(mine.sum())
        per_class[str(c)] = {
            "answered": m,
            "precision": round(correct[mine].sum() / m, 4) if m else None,
            "interval": [round(x, 4) for x in wilson(int(correct[mine].sum()), m)],
        }
    return {
        "n": n,
        "precision": round(k / a, 4) if a else None,
        "precision_interval": [round(x, 4) for x in wilson(k, a)],
        "coverage": round(a / n, 4) if n else None,
        "coverage_interval": [round(x, 4) for x in wilson(a, n)],
        "per_class": per_class,
    }


def summarize_sets(given: np.ndarray, L: np.ndarray, classes: np.ndarray) -> dict[str, object]:
    """Multi-label ``summarize_outcome``: precision over the labels given (where the truth is known),
    coverage the share of texts given at least one. ``given`` (n, k) bool; ``L`` 1/0/-1 (unknown)."""
    rows, cols = np.nonzero(given & (L >= 0))
    out = summarize_outcome(np.ones(len(rows), dtype=bool), L[rows, cols] == 1, cols, classes)
    a, n = int(given.any(axis=1).sum()), len(L)
    out.update(n=n, coverage=round(a / n, 4) if n else None, coverage_interval=[round(x, 4) for x in wilson(a, n)])
    return out


def cross_validated_estimate(
    proba: np.ndarray,
    y_idx: np.ndarray,
    classes: np.ndarray,
    target: float,
    *,
    folds: int = 5,
    random_state: int = 0,
    fixed: dict[int, float] | None = None,
) -> dict[str, object] | None:
    """What thresholds chosen at ``target`` on labelled rows deliver on rows they were not chosen on.

    Choosing a threshold and measuring its precision on the same few rows flatters it (the lowest
    threshold that happens to reach the target on a small sample is a lucky one), so each fold's rows
    are answered with thresholds chosen on the other folds. ``fixed``: class index -> a threshold set
    elsewhere (not chosen on these rows). ``None`` when a class to choose for has fewer than two rows.
    """
    from sklearn.model_selection import StratifiedKFold

    fixed = fixed or {}
    counts = np.bincount(y_idx, minlength=len(classes))
    chosen = [j for j in range(len(classes)) if j not in fixed]
    if not chosen or counts[chosen].min() < 2:
        return None
    # classes with one row (or none) cannot be stratified: they fall in whichever fold they fall in
    strata = np.where(counts[y_idx] >= 2, y_idx, -1)
    n_splits = int(min(folds, counts[chosen].min()))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    answered = np.zeros(len(y_idx), dtype=bool)
    correct = np.zeros(len(y_idx), dtype=bool)
    with warnings.catch_warnings():  # a class of one row, put in one fold, is what we want here
        warnings.simplefilter("ignore", UserWarning)
        splits = list(cv.split(proba, strata))
    for fit_rows, held in splits:
        curves = pr_curves(y_idx[fit_rows], proba[fit_rows], classes)
        th, _ = thresholds_for_precision(curves, classes, target, quiet=True)
        for j, t in fixed.items():
            th[j] = t
        answered[held], correct[held] = abstain_outcome(proba[held], y_idx[held], th)
    out = summarize_outcome(answered, correct, proba.argmax(axis=1), classes)
    out["method"] = f"{cv.get_n_splits()}-fold cross-validation of the threshold choice"
    return out


def label_issues(y_idx: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Confident learning (Northcutt et al.): flag examples whose out-of-fold probabilities point elsewhere.

    Each class j gets a confidence threshold t_j, the mean predicted probability of j over examples
    labelled j. An example is flagged when some other class clears its own threshold and is more
    probable than the given label.
    """
    k = proba.shape[1]
    t = np.array([proba[y_idx == j, j].mean() if (y_idx == j).any() else 1.0 for j in range(k)])
    above = proba >= t  # (n, k)
    masked = np.where(above, proba, -1.0)
    best = masked.argmax(axis=1)
    has_any = above.any(axis=1)
    own = proba[np.arange(len(y_idx)), y_idx]
    return has_any & (best != y_idx) & (masked[np.arange(len(y_idx)), best] > own)


def plot_precision_recall(
    curves: dict[str, dict[str, np.ndarray]],
    classes: np.ndarray,
    thresholds: np.ndarray,
    target_precision: float,
    path: str,
) -> None:
    """Write a PNG of each class's precision-recall curve with its threshold marked (needs matplotlib)."""
    from .errors import ConfigurationError, InvalidInputError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError("plotting needs matplotlib: pip install 'promptclf[plot]'") from None
    import os

    folder = os.path.dirname(os.fspath(path)) or "."
    if not os.path.isdir(folder):
        raise InvalidInputError(f"cannot write {path}: folder {folder} does not exist", argument="path")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for j, c in enumerate(classes):
        cur = curves.get(str(c))
        if cur is None:
            continue
        (line,) = ax.plot(cur["recall"], cur["precision"], label=str(c))
        t = cur["thresholds"]
        if len(t):
            i = min(np.searchsorted(t, thresholds[j]), len(t) - 1)
            ax.plot(cur["recall"][i], cur["precision"][i], "o", color=line.get_color())
    ax.axhline(target_precision, ls="--", color="grey", lw=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall per class", ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise InvalidInputError(f"cannot write {path}: {e}", argument="path") from None
    finally:
        plt.close(fig)
