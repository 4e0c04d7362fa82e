"""Per-class abstention thresholds from precision-recall curves, and confident-learning label checks."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("promptclf")


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
    curves: dict[str, dict[str, np.ndarray]], classes: np.ndarray, target_precision: float
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
            log.warning(
                "class %r: no threshold reaches precision %.2f on the calibration data (best %.2f)",
                str(c),
                target_precision,
                p[i],
            )
        thresholds[j] = float(t[i])
        reached[str(c)] = float(p[i])
    return thresholds, reached


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
