"""The static fast path (``fast=True``): a head on static token embeddings answers the texts it is
sure of, the transformer the rest.

The static head is fit on the same training rows, labels and weights as the main head. Its
confidence threshold is chosen without labels: on out-of-fold static predictions of the training
rows, the lowest threshold at which the texts it would answer disagree with the main model on at
most ``MAX_LOSS`` of all rows. Each disagreement can cost at most one correct answer, so the
cascade's accuracy is at most that far below the main model's on data like the training rows;
bench/speed.py measures it on real test texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .embedders import Embedder, EmbeddingCache
from .head import LinearHead, fit_head, out_of_fold_proba

# The most answers, as a share of all rows, the static head may change. A bound: where the two
# disagree the static head is often the one that is right. Settled on bench/speed.py: at 0.02 the
# cascade lost at most 0.8 points of macro-F1 on the dev sets (answering 35-82% of texts); at 0.03
# trec6 lost 2.4.
MAX_LOSS = 0.02


@dataclass
class FastPath:
    """A fitted fast path: the static embedder's spec, its head, and the confidence it answers at.

    ``estimate``: on the training rows, the share the static head answered (``share``) and the
    share of all rows where it disagreed with the main model (``disagreement``).
    """

    embedder: dict[str, Any]
    head: LinearHead
    threshold: float
    estimate: dict[str, float] = field(default_factory=dict)


def choose_threshold(conf: np.ndarray, agree: np.ndarray, max_loss: float = MAX_LOSS) -> tuple[float, float, float]:
    """The lowest confidence whose answered rows disagree on at most ``max_loss`` of all rows.

    Returns (threshold, share answered, share disagreeing). Above 1 when nothing qualifies.
    """
    n = len(conf)
    if n == 0:
        return 1.01, 0.0, 0.0
    order = np.argsort(-conf, kind="stable")
    wrong = np.cumsum(~agree[order]) / n
    ok = np.flatnonzero(wrong <= max_loss)
    if len(ok) == 0:
        return 1.01, 0.0, 0.0
    k = int(ok.max())
    # ties: the threshold admits every row with that confidence, so stop before the tied block
    # when it would cross the bound
    threshold = float(conf[order][k])
    answered = conf >= threshold
    while answered.any() and (~agree[answered]).sum() / n > max_loss:
        threshold = float(np.nextafter(threshold, 2.0))
        answered = conf >= threshold
    return threshold, float(answered.mean()), float((~agree[answered]).sum() / n)


def fit_fast_path(
    emb: Embedder,
    texts: list[str],
    y: np.ndarray,
    weights: np.ndarray | None,
    main_pred: np.ndarray,
    *,
    C: float,
    cache: EmbeddingCache | None,
    random_state: int = 0,
) -> FastPath:
    """Fit the static head on the main head's training rows; choose its threshold (module docstring)."""
    X = emb.embed(texts, cache=cache)
    head = fit_head(X, y, weights, C=C, random_state=random_state)
    oof = out_of_fold_proba(X, y, C, weights, random_state=random_state)
    if oof is None:  # too few rows to estimate anything: the fast path never answers
        threshold, share, dis = 1.01, 0.0, 0.0
    else:
        agree = head.classes_[oof.argmax(1)] == main_pred
        threshold, share, dis = choose_threshold(oof.max(1), agree)
    estimate = {"share": round(share, 4), "disagreement": round(dis, 4), "max_loss": MAX_LOSS, "rows": len(texts)}
    return FastPath(emb.to_spec(), head, threshold, estimate)


def cascade_proba(
    fast: FastPath, static: Embedder, texts: list[str], main: Any, *, long_texts: str = "chunk"
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities per text: the static head's where it is sure, ``main(texts)`` for the rest.

    Returns the probabilities and which rows the fast path answered.
    """
    P = fast.head.predict_proba(static.embed(texts, long_texts=long_texts))
    sure = P.max(1) >= fast.threshold
    rest = np.flatnonzero(~sure)
    if len(rest):
        P[rest] = main([texts[i] for i in rest])
    return P, sure
