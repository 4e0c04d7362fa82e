"""Which pool texts a person should label next: uncertain ones, spread over the pool.

The n most uncertain texts are often near-duplicates of one confusing kind, and labelling ten of
them teaches the model what one would. Cluster-margin selection (Zhdanov 2019, "Diverse mini-batch
active learning"; Citovsky et al. 2021): keep the ``PREFILTER`` x n most uncertain texts, cluster
them into n groups with k-means weighted by uncertainty, and take the most uncertain text of each.
Near-duplicates are collapsed before that, or a big enough group of them would fill the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PREFILTER = 10  # uncertain candidates per suggestion clustered (Zhdanov's beta)
STRATIFY = True  # share the suggestions out between predicted classes (bench/learning.py)
DUPLICATE_COSINE = 0.95  # a candidate this close to a more uncertain one adds nothing: not a candidate


@dataclass(frozen=True)
class Suggestion:
    """A text worth labelling, with the model's current answer.

    Attributes
    ----------
    text : str
        The pool text.
    guess : str or list of str
        The model's class (a list of classes for a multi-label model).
    confidence : float
        The guess's probability (multi-label: how far the closest class is from its threshold, 0-1).
    proba : dict
        Class -> probability.
    uncertainty : float
        What ranked it: 1 - (top probability - second) for one label per text; for multi-label, 1 -
        twice the distance of the class nearest its threshold.
    pick : {"uncertain", "random"}
        Why it was chosen. Labels of ``"random"`` picks are a fair sample of your texts, so they
        can calibrate thresholds; labels of uncertain picks cannot (pass ``meta={"pick": s.pick}``
        to ``add_data_to_class``, as ``promptclf review`` does).
    """

    text: str
    guess: Any
    confidence: float
    proba: dict[str, float]
    uncertainty: float
    pick: str = "uncertain"


def uncertainty(proba: np.ndarray, thresholds: np.ndarray | None = None, multi_label: bool = False) -> np.ndarray:
    """Per row, 0 (sure) to 1 (undecided): margin for one label, distance to a threshold for several."""
    if len(proba) == 0:
        return np.zeros(0)
    if multi_label:
        th = np.full(proba.shape[1], 0.5) if thresholds is None else thresholds
        return 1.0 - np.clip(2 * np.abs(proba - th).min(axis=1), 0.0, 1.0)
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = np.sort(proba, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def choose(
    X: np.ndarray, u: np.ndarray, n: int, *, strata: np.ndarray | None = None, random_state: int = 0
) -> np.ndarray:
    """Indices of ``n`` rows: the most uncertain row of each of n k-means clusters of the uncertain rows.

    With ``strata`` (the predicted class of each row), the n are shared out evenly between the
    classes (what one cannot use goes to the others), so a class the model rarely predicts is asked
    about too: without it, trec6's rare class got no label in 192 suggestions (bench/learning.py).
    Ordered most uncertain first. Fewer rows than ``n`` returns them all.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if strata is None or len(u) <= n:
        return _cluster_margin(X, u, n, random_state)
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    groups.sort(key=lambda rows: -u[rows].max())
    alloc = [0] * len(groups)
    left = n
    while left:
        for i, rows in enumerate(groups):
            if left and alloc[i] < len(rows):
                alloc[i] += 1
                left -= 1
    picks = np.concatenate(
        [rows[_cluster_margin(X[rows], u[rows], a, random_state)] for rows, a in zip(groups, alloc) if a]
    )
    return picks[np.argsort(-u[picks], kind="stable")]


def _cluster_margin(X: np.ndarray, u: np.ndarray, n: int, random_state: int) -> np.ndarray:
    if n <= 0 or len(u) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-u, kind="stable")
    if len(u) <= n:
        return order
    V = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    kept: list[int] = []
    for i in order:  # most uncertain first; skip what repeats a kept candidate
        if not kept or float((V[kept] @ V[i]).max()) < DUPLICATE_COSINE:
            kept.append(int(i))
            if len(kept) == PREFILTER * n:
                break
    cand = np.asarray(kept, dtype=np.int64)
    if len(cand) <= n:  # so few distinct texts: take them, then the most uncertain repeats
        rest = order[~np.isin(order, cand)]
        return np.concatenate([cand, rest[: n - len(cand)]])
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n, n_init=3, random_state=random_state)
    # a small floor keeps certain rows' weight above zero so every cluster has a centre
    groups = km.fit_predict(X[cand], sample_weight=u[cand] + 1e-3)
    picks = []
    for g in range(n):
        members = cand[groups == g]
        if len(members):
            picks.append(members[np.argmax(u[members])])
    picks = np.asarray(picks, dtype=np.int64)
    if len(picks) < n:  # k-means may leave a cluster empty: fill from the most uncertain rest
        rest = np.setdiff1d(cand, picks, assume_unique=True)
        picks = np.concatenate([picks, rest[np.argsort(-u[rest], kind="stable")][: n - len(picks)]])
    return picks[np.argsort(-u[picks], kind="stable")]


def suggestions(
    model: Any, texts: list[str], proba: np.ndarray, u: np.ndarray, picks: list[str] | None = None
) -> list[Suggestion]:
    """``Suggestion`` objects for rows of ``model.predict_proba`` output and their uncertainty."""
    guesses = model.predict_from_proba(proba)
    multi = bool(model.multi_label)
    return [
        Suggestion(
            text=t,
            guess=g,
            confidence=round(float(1.0 - ui if multi else row.max()), 4),
            proba={str(c): round(float(p), 4) for c, p in zip(model.classes_, row)},
            uncertainty=round(float(ui), 4),
            pick=pick,
        )
        for t, g, row, ui, pick in zip(texts, guesses, proba, u, picks or ["uncertain"] * len(texts))
    ]


def suggestion_for(model: Any, text: str) -> Suggestion:
    """The model's answer on one text, as a ``Suggestion`` (for a text asked again after an undo)."""
    proba = model.predict_proba([text])
    return suggestions(model, [text], proba, uncertainty(proba, model.thresholds_, bool(model.multi_label)))[0]


def interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """a0 b0 a1 b1 ...: the reviewer sees both kinds of pick all along."""
    out = [x for pair in zip(first, second) for x in pair]
    k = min(len(first), len(second))
    return np.asarray(out + list(first[k:]) + list(second[k:]), dtype=np.int64)
