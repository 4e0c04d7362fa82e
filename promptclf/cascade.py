"""The static fast path (``fast=True``): a head on static token embeddings, with word 1-2-gram TF-IDF
columns beside them (``promptclf.words``), answers the texts it is sure of, the transformer the rest.

The static head is fit on the same training rows, labels and weights as the main head, with a C of
its own where a person labelled enough of them (``static_C``), and on the unlabeled texts of the
training run with the main model's answers as their labels (``POOL_ANSWERS``): on real text it is asked
to agree with the main model, so that is what it learns there. Its confidence threshold is chosen
without labels, on real texts only (a person's examples, pseudo- and LLM-labelled texts, out of fold;
and the unlabeled texts of the training run; pseudo-labels only beside that pool, ``real_rows``): the lowest threshold
at which the texts it would answer disagree with the main model on at most ``MAX_LOSS`` of them. Each
disagreement can cost at most one correct answer, so the cascade's accuracy is at most that far below
the main model's on texts like those; bench/speed.py and bench/fast_default.py measure it on real test
texts. Generated examples and class descriptions are left out: the two heads agree far more often on
them than on real text, so a threshold set on them promised a bound it did not keep (trec6 from the
prompt alone: 80% of the generated rows answered against 55% of the test texts, 7.9 points lost;
bench/fast_default.py). With fewer than ``MIN_REAL_TEXTS`` real texts the static head answers nothing.

Where it is not sure, the static head can still vote: the texts left to the transformer get the mean of
the two heads' probabilities, weighted by ``blend``. The two see different things (a fine-tuned or
frozen sentence encoder; static token vectors with word pairs), so with your own labels their mean is
often better than either. The weight is chosen on your labelled examples, out of fold (the log-loss of
each weight in ``BLEND_WEIGHTS`` on the rows the static head would leave to the transformer); with fewer
than ``MIN_REAL_TEXTS`` of them, or none but pseudo-labels (whose labels are the transformer's own
answers, so they always favour it), the weight is 0: the transformer alone, as before.

With a vote, the model without the fast path would serve that mix everywhere, so the threshold is bounded
against the mix's answers instead of the main model's: the static head agrees with the mix more often,
answers more texts at the same bound (sst2 with every label: 42% -> 73% of the test texts, macro-F1 0.1
point lower; BENCHMARKS.md, "The fast path's bound against the answers served"), and the cascade still
changes at most the bound's share of what the mix would answer. The weight is chosen on the rows left at
the default's bound (``AUTO_MAX_LOSS``) for every bound, so a looser one answers at least as many texts.
Where the static head votes, ``fast=True`` loosens its bound to ``VOTE_MAX_LOSS``: the vote keeps the
cascade above the transformer alone by more than the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .embedders import Embedder, EmbeddingCache
from .errors import ConfigurationError
from .head import C_GRID, LinearHead, fit_head, out_of_fold_proba, scores_to_proba
from .words import WordColumns

# The most answers, as a share of all rows, the static head may change. A bound: where the two
# disagree the static head is often the one that is right. Settled on bench/speed.py: at 0.02 the
# cascade lost at most 0.8 points of macro-F1 on the dev sets (answering 35-82% of texts); at 0.03
# trec6 lost 2.4 (before the static head voted: with a vote, ``VOTE_MAX_LOSS``).
MAX_LOSS = 0.02
# The bound of ``fast=True`` where the static head votes (``blend`` > 0: a person labelled 100+ rows and the
# mix of the two heads beat the transformer alone on them). There the cascade at 2% was 0.1 to 6.6 points
# of macro-F1 *above* the transformer alone with every label or 200 per class (sst2 / ag_news / trec6 /
# emotion6), the vote's gain; at 3% it stayed within -0.0 to +6.4 of it and answered 82 -> 86%, 92 -> 94%,
# 88 -> 90%, 92 -> 95% of the test texts with every label (ag_news 4%: -0.9); on the held-back
# newsgroups_long 88 -> 92%, +0.0. Without a vote (pseudo-labels only, the default flow; 50 labels per
# class on newsgroups_long) 3% cost trec6 1.0 point, newsgroups_long 1.1: ``MAX_LOSS`` stays.
# BENCHMARKS.md, "The bound of fast=True where the static head votes".
VOTE_MAX_LOSS = 0.03
# The bound of ``fast="auto"``, the default: on the default flow's models (bench/fast_default.py) the
# cascade at 1% was within half a point of the transformer alone on every dev set (+0.2 / +0.3 / -0.4),
# at 2% 0.2-0.4 points under it. An explicit ``fast=True`` asks for speed and keeps ``MAX_LOSS`` (or
# ``VOTE_MAX_LOSS``).
AUTO_MAX_LOSS = 0.01
# Fewest real texts the threshold is chosen on: under a hundred, one disagreement is over a percent of
# them and the bound says little.
MIN_REAL_TEXTS = 100
REAL_SOURCES = ("user", "pseudo", "llm")  # provenances of real texts; "prompt" and "generated" are not
# Weights of the static head's probabilities in the texts it does not answer, tried out of fold on your
# labelled examples. BENCHMARKS.md, "The static head's vote": with real labels a fixed 0.5 gained up to
# 7.5 points of macro-F1 where the static head with word pairs is nearly as good or better (emotion6,
# trec6) and lost 1.8 where it is much the weaker (sst2 with 50 labels per class): hence a choice.
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
# With a vote, the static head's threshold is bounded against the answers the model would serve without
# the fast path (the mix), not against the main head's alone. A switch for the benchmarks.
BOUND_ON_SERVED = True
# The static head's own C, chosen on your labelled rows (``static_C``); off: the main head's C, as before.
# A switch for the benchmarks.
OWN_C = True
# Word 1-2-gram TF-IDF columns beside the static vectors (promptclf.words): word pairs ("how many",
# "who was") that mean-pooled token vectors blur. With the threshold training chooses (1%, the default
# flow's models with 5,000 unlabeled texts; bench/fast_default.py) the static head answered 34 -> 38%,
# 70 -> 73% and 30 -> 41% of the dev sets' test texts (sst2 / ag_news / trec6), 28 -> 30% and 53 -> 55%
# on the held-back emotion6 / newsgroups_long, each within +0.0 to +0.6 points of the fast path off.
# A switch for the benchmarks' ablations, not a setting.
WORDS = True
# The unlabeled texts of the training run as rows of the static head too, labelled with the main model's
# answers (the threshold is then chosen on their out-of-fold probabilities, as on the other real rows).
# On the default flow's models (the prompt, then 5,000 unlabeled texts) the static head answered 36 ->
# 40%, 73 -> 80% and 41 -> 45% of the dev sets' test texts at the default's 1% bound (sst2 / ag_news /
# trec6), 36 -> 39% and 57 -> 73% on the held-back emotion6 and newsgroups_long, macro-F1 +0.0 to +0.8 points
# against the fast path off (BENCHMARKS.md, "The static head learns the model's answers on the pool"). In the
# accuracy run, trained from scratch: -0.2 / +0.3 / -0.4 against it. A switch for the benchmarks.
POOL_ANSWERS = True


@dataclass
class FastPath:
    """A fitted fast path: the static embedder's spec, its head, and the confidence it answers at.

    ``estimate``: on the training run's real texts, the share the static head answered (``share``) and
    the share of all of them where it disagreed with what the model serves without it (``disagreement``:
    the main model's answers, or the mix's where the static head votes); with ``blend``, the out-of-fold
    log-loss of the transformer alone and of the blend on your labelled rows, and the share it would
    have answered bounded against the main model alone (``share_vs_main``); where the static head's C
    was chosen (``static_C``), that C and its out-of-fold log-loss against the main head's C's.
    """

    embedder: dict[str, Any]
    head: LinearHead
    threshold: float
    estimate: dict[str, float] = field(default_factory=dict)
    words: WordColumns | None = None  # TF-IDF columns after the static vector's, if the head has them
    blend: float = 0.0  # weight of the static head's probabilities in the texts the transformer answers

    @property
    def n_terms(self) -> int:
        """How many of the head's columns are word columns (after the static vector's)."""
        return 0 if self.words is None else self.words.n_terms

    def proba(self, static: Embedder, texts: list[str], *, long_texts: str = "chunk") -> np.ndarray:
        """The static head's probabilities, with numpy only (the words' columns without scikit-learn)."""
        S = static.embed(texts, long_texts=long_texts)
        d, n_terms = S.shape[1], self.n_terms
        if d + n_terms != self.head.n_features_in_:
            # a static model made otherwise than the one the head was fit on (another version, or a file
            # edited to match itself): the columns would not line up, so no answers from it
            raise ConfigurationError(
                f"the fast path's head was fit on {self.head.n_features_in_ - n_terms}-dimensional static vectors "
                f"but the static model here ({self.embedder.get('model')}) gives {d}: predict with fast=False, or "
                "train again to fit the fast path on this static model",
                setting="fast",
            )
        coef = self.head.coef_
        z = S @ coef[:, :d].T  # without words: the whole matrix, as LinearHead.predict_proba computes it
        if self.words is not None:
            z = z + self.words.scores(texts, coef[:, d:])
        return scores_to_proba(z + self.head.intercept_)


def real_rows(sources: np.ndarray, with_pool: bool) -> np.ndarray:
    """Which training rows are real texts the threshold may be set on (``REAL_SOURCES``).

    Pseudo-labels only beside the pool they were picked from (``with_pool``: this training labelled it):
    they are its most confident half, on which the two heads agree far more often than on the rest. A
    model retrained without its pool (a correction and ``train()``) bounded on them alone let the static
    head answer every text of ag_news, 2.6 points under the model (BENCHMARKS.md, "The fast path after a
    retrain without the pool"). LLM answers stay: the pool's least sure texts, they err towards answering less.
    """
    return np.isin(sources, REAL_SOURCES if with_pool else tuple(s for s in REAL_SOURCES if s != "pseudo"))


def features(emb: Embedder, texts: list[str], words: WordColumns | None, cache: EmbeddingCache | None) -> Any:
    """The static head's training matrix: the static vectors, and the words' columns beside them (sparse)."""
    X = emb.embed(texts, cache=cache)
    if words is None:
        return X
    from scipy.sparse import csr_matrix, hstack

    return hstack([csr_matrix(X), words.matrix(texts)]).tocsr()


def choose_threshold(conf: np.ndarray, agree: np.ndarray, max_loss: float = MAX_LOSS) -> tuple[float, float, float]:
    """The lowest confidence whose answered rows disagree on at most ``max_loss`` of all rows.

    Returns (threshold, share answered, share disagreeing). Above 1 when nothing qualifies.
    """
    return threshold_for_cost(conf, ~np.asarray(agree, bool), max_loss)


def threshold_for_cost(conf: np.ndarray, cost: np.ndarray, max_loss: float) -> tuple[float, float, float]:
    """The lowest confidence whose answered rows' summed ``cost`` (per row) is at most ``max_loss`` of
    all rows: ``choose_threshold`` with a disagreement costing 1; bench/fast_bound.py tries other costs.

    Returns (threshold, share answered, summed cost as a share of all rows). Above 1 when nothing qualifies.
    """
    n = len(conf)
    conf = np.asarray(conf, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    ranked = conf[order]
    spent = np.cumsum(np.asarray(cost)[order]) / n
    # a threshold answers every row with at least its confidence: a tied block is answered whole, so
    # only the last row of a block is a place to stop
    ends = np.append(ranked[1:] < ranked[:-1], True) if n else np.zeros(0, bool)
    ok = np.flatnonzero(ends & (spent <= max_loss))
    if len(ok) == 0:
        return 1.01, 0.0, 0.0
    k = int(ok.max())
    return float(ranked[k]), (k + 1) / n, float(spent[k])


def choose_blend(
    main: np.ndarray, static: np.ndarray, y_idx: np.ndarray, rows: np.ndarray
) -> tuple[float, dict[str, float]]:
    """The weight of ``BLEND_WEIGHTS`` whose mix of the two heads' out-of-fold probabilities has the
    lowest log-loss on ``rows`` (the lowest weight on a tie), and what it measured; 0 and nothing
    measured with fewer than ``MIN_REAL_TEXTS`` rows."""
    n = int(np.count_nonzero(rows))
    if n < MIN_REAL_TEXTS:
        return 0.0, {}
    at = np.arange(n), y_idx[rows]
    pm, ps = main[rows][at], static[rows][at]
    loss = {w: float(-np.log(np.maximum((1 - w) * pm + w * ps, 1e-12)).mean()) for w in BLEND_WEIGHTS}
    best = min(BLEND_WEIGHTS, key=lambda w: (loss[w], w))
    return best, {"blend_rows": n, "logloss_main": round(loss[0.0], 4), "logloss_blend": round(loss[best], 4)}


def static_C(
    X: Any,
    y: np.ndarray,
    weights: np.ndarray | None,
    C: float,
    rows: np.ndarray | None,
    random_state: int = 0,
) -> tuple[float, np.ndarray | None, dict[str, float]]:
    """The static head's C, its out-of-fold probabilities at that C, and what was measured.

    The main head's C was chosen for the transformer's vectors; the static head's columns (static
    vectors and thousands of sparse word columns) are another scale. From the main head's C, a step
    at a time along ``C_GRID`` (up first, down if up did not help), while the static head's out-of-fold
    log-loss on ``rows`` (the rows a person labelled) falls. With fewer than ``MIN_REAL_TEXTS`` of them,
    or without ``OWN_C``: the main head's C (generated examples and pseudo-labels are easy for it, a
    lower log-loss there says nothing of real text). Not ``head.choose_C``: it fits the whole grid and
    returns no out-of-fold probabilities, which the threshold and the vote need at the chosen C anyway;
    the walk costs one to three fits beyond those.
    """
    oof = out_of_fold_proba(X, y, C, weights, random_state=random_state)
    if oof is None or not OWN_C or rows is None or int(np.count_nonzero(rows)) < MIN_REAL_TEXTS:
        return C, oof, {}
    at = np.flatnonzero(rows), np.searchsorted(np.unique(y), y[rows])

    def loss(P: np.ndarray) -> float:
        return float(-np.log(np.maximum(P[at], 1e-12)).mean())

    first = loss(oof)
    best = (first, C, oof)
    for side in (sorted(c for c in C_GRID if c > C), sorted((c for c in C_GRID if c < C), reverse=True)):
        for c in side:
            P = out_of_fold_proba(X, y, c, weights, random_state=random_state)
            if P is None or (lost := loss(P)) >= best[0]:
                break
            best = (lost, c, P)
        if best[1] != C:  # up helped: no need to look down
            break
    measured = {"C": best[1], "logloss_static_at_main_C": round(first, 4), "logloss_static": round(best[0], 4)}
    return best[1], best[2], measured


def fit_fast_path(
    emb: Embedder,
    texts: list[str],
    y: np.ndarray,
    weights: np.ndarray | None,
    main_proba: np.ndarray,
    *,
    real: np.ndarray,
    pool: list[str] | None = None,
    pool_proba: np.ndarray | None = None,
    C: float,
    cache: EmbeddingCache | None,
    random_state: int = 0,
    max_loss: float = MAX_LOSS,
    vote_max_loss: float | None = None,
    main_oof: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> FastPath:
    """Fit the static head on the main head's training rows; choose its threshold and its vote
    (module docstring).

    ``main_proba``: the main model's probabilities on ``texts`` (columns in sorted class order);
    ``real``: which of ``texts`` are real texts. ``pool``: other real texts (unlabeled, not training
    rows), with the main model's probabilities ``pool_proba``: rows of the static head too, labelled
    with the main model's answers (``POOL_ANSWERS``).
    ``max_loss``: the share of the real texts whose answer the static head may change;
    ``vote_max_loss``: that share where the static head votes, if larger (``fast=True``: ``VOTE_MAX_LOSS``).
    ``main_oof``: the main head's out-of-fold probabilities on ``texts`` (same folds: the same
    ``random_state`` and labels), columns in sorted class order; ``labelled``: which rows a person
    labelled, the rows the blend's weight is chosen on. Without them the weight is 0.
    """
    words = WordColumns.fit([*texts, *(pool or ())]) if WORDS else None
    if words is not None and not words.n_terms:
        words = None
    rows = len(texts)
    if pool and POOL_ANSWERS:
        # the pool joins the rows: labelled with what the main model answers, real, never a person's label
        # (so neither the vote's weight nor the static head's C is chosen on it)
        answers = np.unique(y)[np.asarray(pool_proba).argmax(1)]
        extra = len(pool)
        texts, y = [*texts, *pool], np.concatenate([y, answers])
        weights = None if weights is None else np.concatenate([weights, np.ones(extra)])
        main_proba = np.concatenate([np.asarray(main_proba), pool_proba])
        real = np.concatenate([np.asarray(real, bool), np.ones(extra, bool)])
        main_oof = None if main_oof is None else np.concatenate([main_oof, pool_proba])
        labelled = None if labelled is None else np.concatenate([np.asarray(labelled, bool), np.zeros(extra, bool)])
        pool = None
    X = features(emb, texts, words, cache)
    C, oof, measured_C = static_C(X, y, weights, C, labelled, random_state)
    head = fit_head(X, y, weights, C=C, random_state=random_state)
    # per real text: the static head's probabilities (out of fold on training rows) and the main model's
    static_p, main_p = [], []
    if oof is not None:  # too few rows for folds: the training rows say nothing
        static_p.append(oof[real])
        main_p.append(np.asarray(main_proba)[real])
    if pool:
        static_p.append(head.predict_proba(features(emb, pool, words, cache)))
        main_p.append(np.asarray(pool_proba))
    n = sum(len(p) for p in static_p)
    estimate = {"max_loss": max_loss, "rows": rows, "real_texts": n, **measured_C}
    threshold, share, dis, blend = 1.01, 0.0, 0.0, 0.0  # under MIN_REAL_TEXTS: the fast path never answers
    if n >= MIN_REAL_TEXTS:
        S, M = np.concatenate(static_p), np.concatenate(main_p)
        conf, said = S.max(1), S.argmax(1)
        agree = said == M.argmax(1)
        threshold, share, dis = choose_threshold(conf, agree, max_loss)
        if oof is not None and main_oof is not None and labelled is not None:
            # the weight is chosen on the rows left at the default bound, whatever the bound asked:
            # otherwise a looser bound (fast=True) leaves it only the static head's hardest rows, a lower
            # weight, a mix that agrees with the static head less often, and answers fewer texts than the
            # default (sst2 with every label: 63% against 73% of the test texts)
            leaves = threshold if max_loss <= AUTO_MAX_LOSS else choose_threshold(conf, agree, AUTO_MAX_LOSS)[0]
            left = np.asarray(labelled, bool) & (oof.max(1) < leaves)  # the rows the blend would answer
            blend, measured = choose_blend(main_oof, oof, np.searchsorted(head.classes_, y), left)
            estimate.update(measured)
        if blend and BOUND_ON_SERVED:
            # without the fast path the model would serve the mix everywhere: the static head's answers
            # are bounded against that, which agrees with it more often than the main model alone does
            estimate["share_vs_main"] = round(share, 4)
            served = (1 - blend) * M + blend * S
            if vote_max_loss is not None and vote_max_loss > max_loss:
                # the vote won on a person's labels: the cascade is above the transformer alone by more
                # than the bound's difference (module constant), so fast=True spends some of it on speed
                max_loss = estimate["max_loss"] = vote_max_loss
            threshold, share, dis = choose_threshold(conf, said == served.argmax(1), max_loss)
    estimate.update(share=round(share, 4), disagreement=round(dis, 4))
    return FastPath(emb.to_spec(), head, threshold, estimate, words, blend)


def cascade_proba(
    fast: FastPath, static: Embedder, texts: list[str], main: Any, *, long_texts: str = "chunk"
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities per text: the static head's where it is sure, ``main(texts)`` for the rest (mixed
    with the static head's by ``fast.blend``).

    Returns the probabilities and which rows the fast path answered.
    """
    P = fast.proba(static, texts, long_texts=long_texts)
    sure = P.max(1) >= fast.threshold
    rest = np.flatnonzero(~sure)
    if len(rest):
        M = main([texts[i] for i in rest])
        P[rest] = M if not fast.blend else (1 - fast.blend) * M + fast.blend * P[rest]
    return P, sure
