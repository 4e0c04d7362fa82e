"""Learning from the user's unlabeled texts: pseudo-labels, confident learning, the LLM for the hard cases.

Real in-domain texts are better training data than anything a tiny LLM writes; they only lack
labels. The current model labels them; the confident ones per class (balanced) join the training
set; the model is refit and the labels re-derived for a few rounds until they settle. Confident
learning then drops pseudo-labels the rest of the data contradicts, and optionally the LLM labels
the least confident texts (the chain-ensemble idea: the cheap model keeps what it is sure of).

Self-training can also hurt (measured: -3 to -4 points on one held-out set). A guard compares the
refit model with the model without pseudo-labels and falls back when it looks worse or when a class
collapses, so a run never ends clearly worse than the prompt-only model.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibration import label_issues
from .head import fit_head, out_of_fold_proba, with_prior

log = logging.getLogger("promptclf")

ROUNDS = 3
KEEP_FRACTION = 0.5  # of the texts predicted as each class, the most confident share is kept
BALANCE = 2.0  # no class keeps more than BALANCE times the median class's number of pseudo-labels
SETTLED = 0.01  # stop when fewer than 1% of the kept labels change between rounds
# ``llm_label_budget="auto"`` asks a hosted LLM first for the pseudo-labels the model is surest of (this
# many per class, at least CHECK_TEXTS in all) and lets it label the hard texts only where its labels
# agree with the model's there by at least CHECK_KAPPA (Cohen's kappa: 0 is chance, 1 every label).
# On those texts the model is right 81-97% of the time (trec6 to sst2). The packaged LLMs reach 0.00 to
# 0.33 (SmolLM2 0.00 / 0.33 / 0.21 on sst2 / ag_news / trec6, Gemma 3 270M 0.03 / 0.31 / 0.01), a simulated
# LLM right on 80% of texts 0.77 / 0.60 / 0.61, on 70% 0.27 / 0.53 / 0.49 (BENCHMARKS.md, "Which LLM may
# label the pool"). A real LLM is right less often on the hard texts than on these: the bar errs on the
# side of not asking.
CHECK_PER_CLASS = 15
CHECK_TEXTS = 60
CHECK_KAPPA = 0.5
AUTO_LLM_LABELS = 500  # texts the LLM labels per labelling once trusted: the budget measured in BENCHMARKS.md
GUARD_MARGIN = 0.10  # fall back if the pseudo-labelled model is this much worse on the anchors
COLLAPSE = 0.3  # ... or if a class's share of predictions falls under 30% of what it was
# Issue 11 ablations, settled by bench/selftrain.py (BENCHMARKS.md, "Self-training variants"):
SECOND_VIEW = False  # co-training with a TF-IDF view: keep a pseudo-label only where both views agree
PRIOR_IN_ROUNDS = False  # refit each round with the zero-shot prior, as the base and final models are
CLUSTER_REFINE = False  # X-Class: a Gaussian mixture on the pool, started at the classes, relabels it first
RETRIEVAL = False  # the anchors as queries: each one's nearest pool texts inherit its class, first
RETRIEVED_PER_ANCHOR = 5
REFINE_DIMS = 64  # the mixture runs on the pool's leading principal components (X-Class uses PCA too)
# Each round's probabilities of a pool text averaged over its k nearest pool texts (itself included)
# before the confident ones are picked: a text's label then follows its neighbourhood, not only its own
# position. 0: off (BENCHMARKS.md, "Pool labels smoothed over neighbours").
NEIGHBOURS = 0


@dataclass
class SelfTrainResult:
    index: np.ndarray  # rows of the unlabeled pool that got a label
    labels: np.ndarray  # their class names
    confidence: np.ndarray
    labeler: np.ndarray  # "model" or "llm"
    report: dict[str, Any] = field(default_factory=dict)
    # every pool text's class by the model fit as ``train`` will fit it (anchors + kept pseudo-labels,
    # with the prior): what this run's model says of the pool (promptclf.crosscheck judges it)
    pool_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))


def _select(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Indices of the most confident KEEP_FRACTION per predicted class, capped for balance."""
    top, conf = proba.argmax(1), proba.max(1)
    quotas = {j: int(np.ceil(KEEP_FRACTION * np.sum(top == j))) for j in range(len(classes))}
    nonzero = [q for q in quotas.values() if q > 0]
    cap = int(np.ceil(BALANCE * np.median(nonzero))) if nonzero else 0
    chosen = []
    for j, q in quotas.items():
        idx = np.flatnonzero(top == j)
        chosen.append(idx[np.argsort(-conf[idx], kind="stable")][: min(q, cap)])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)


def nearest_neighbours(XU: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices of each row's ``k`` nearest rows of ``XU`` by cosine (itself among them), shape (n, k).

    Brute force in chunks of rows, so memory stays ``chunk x n`` floats for any pool size.
    """
    k = min(k, len(XU))
    Z = XU / np.maximum(np.linalg.norm(XU, axis=1, keepdims=True), 1e-12)
    out = np.empty((len(Z), k), dtype=np.int64)
    for s in range(0, len(Z), chunk):
        sim = Z[s : s + chunk] @ Z.T
        out[s : s + chunk] = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return out


def refine_by_clusters(XU: np.ndarray, proba: np.ndarray, random_state: int = 0) -> np.ndarray:
    """X-Class's class-oriented clustering: a Gaussian mixture (one component per class, shared
    covariance) on the pool's leading principal components, started at the classes' means under the
    current labels; its posterior replaces ``proba`` where the mixture converges."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    k = proba.shape[1]
    Z = PCA(n_components=min(REFINE_DIMS, XU.shape[0] - 1, XU.shape[1]), random_state=random_state).fit_transform(XU)
    weights = proba / np.maximum(proba.sum(0, keepdims=True), 1e-12)
    gmm = GaussianMixture(
        k, covariance_type="tied", means_init=weights.T @ Z, weights_init=np.full(k, 1.0 / k),
        max_iter=100, random_state=random_state, reg_covar=1e-4,
    )  # fmt: skip
    gmm.fit(Z)
    return gmm.predict_proba(Z) if gmm.converged_ else proba


def retrieved(
    X: np.ndarray, y_idx: np.ndarray, XU: np.ndarray, k: int, per_anchor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pool rows and classes from the anchors as queries: each anchor's ``per_anchor`` nearest pool
    texts inherit its class; a text two classes claim goes to the more similar anchor. Class-balanced:
    no class keeps more than the class with the fewest."""
    S = X @ XU.T  # unit vectors: cosine
    best = np.full(len(XU), -np.inf)
    label = np.full(len(XU), -1)
    for i in range(len(X)):
        top = np.argpartition(-S[i], min(per_anchor, len(XU) - 1))[:per_anchor]
        better = S[i, top] > best[top]
        best[top[better]], label[top[better]] = S[i, top[better]], y_idx[i]
    per_class = [np.flatnonzero(label == j) for j in range(k)]
    cap = min((len(r) for r in per_class if len(r)), default=0)
    keep = np.sort(np.concatenate([r[np.argsort(-best[r])][:cap] for r in per_class]).astype(int))
    return keep, label[keep]


class TextView:
    """A second view of the same texts for co-training: TF-IDF word and character n-grams + logistic
    regression. It sees what MiniLM's pooled vector blurs (trec6's "how many" vs "what"), and errs
    differently, so a pseudo-label both views agree on is more often right."""

    def __init__(self, anchor_texts: list[str], y: np.ndarray, pool_texts: list[str], random_state: int = 0) -> None:
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.word = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
        every = list(anchor_texts) + list(pool_texts)
        self.word.fit(every)
        self.char.fit(every)
        self.A = hstack([self.word.transform(anchor_texts), self.char.transform(anchor_texts)]).tocsr()
        self.U = hstack([self.word.transform(pool_texts), self.char.transform(pool_texts)]).tocsr()
        self.y, self.random_state = y, random_state

    def labels(self, sel: np.ndarray, sel_labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Class index per pool text, from a model on the anchors plus the given pseudo-labels."""
        from scipy.sparse import vstack
        from sklearn.linear_model import LogisticRegression

        Xf = vstack([self.A, self.U[sel]]) if len(sel) else self.A
        yf = np.concatenate([self.y, sel_labels]) if len(sel) else self.y
        m = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=self.random_state)
        m.fit(Xf, yf)
        return np.searchsorted(classes, m.predict(self.U))


def self_train(
    X: np.ndarray,
    y: np.ndarray,
    XU: np.ndarray,
    *,
    C: float,
    prior: np.ndarray | None = None,
    random_state: int = 0,
    llm_labeler: Any = None,
    view: TextView | None = None,
    prior_in_rounds: bool | None = None,
    sample_weight: np.ndarray | None = None,
) -> SelfTrainResult:
    """Pseudo-label ``XU`` starting from the labelled anchors ``X, y`` (descriptions, generated, user).

    ``view``: a second view (co-training): a pseudo-label is kept only where both views agree.
    ``prior_in_rounds``: refit each round with the zero-shot prior too (default ``PRIOR_IN_ROUNDS``).
    ``sample_weight``: per anchor (your examples may count more); pseudo-labels weigh 1.
    ``llm_labeler``: a ``PoolLabeler``, which labels the least confident of the texts left out.
    """
    prior_in_rounds = PRIOR_IN_ROUNDS if prior_in_rounds is None else prior_in_rounds

    def weights(n: int) -> np.ndarray | None:  # every fit puts the anchors first
        return None if sample_weight is None else np.concatenate([sample_weight, np.ones(n - len(sample_weight))])

    def fit(Xf: np.ndarray, yf: np.ndarray):
        return with_prior(fit_head(Xf, yf, weights(len(yf)), C=C, random_state=random_state), prior)

    agreed: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=int), np.zeros(0, dtype=str))

    def agree(sel: np.ndarray, labels: np.ndarray) -> np.ndarray:
        # The text view learns from the anchors and what both views agreed on before, never from the
        # candidates it is checking (it would learn the embedding view's mistakes and agree with them).
        nonlocal agreed
        if view is None:
            return sel
        other = view.labels(agreed[0], agreed[1], classes)
        kept = sel[other[sel] == labels[sel]]
        agreed = (kept, classes[labels[kept]])
        return kept

    base = fit(X, y)
    classes = base.classes_
    y_idx = np.searchsorted(classes, y)
    proba0 = base.predict_proba(XU)
    near = nearest_neighbours(XU, NEIGHBOURS) if NEIGHBOURS > 0 else None

    def smoothed(p: np.ndarray) -> np.ndarray:
        return p if near is None else p[near].mean(axis=1)

    proba = smoothed(proba0)
    proba = refine_by_clusters(XU, proba, random_state) if CLUSTER_REFINE else proba
    labels = proba.argmax(1)
    sel = agree(_select(proba, classes), labels)
    if RETRIEVAL:  # the retrieved texts seed the first round, in place of the model's confident picks
        sel, found = retrieved(X, y_idx, XU, len(classes), RETRIEVED_PER_ANCHOR)
        labels = labels.copy()
        labels[sel] = found
    rounds = 0

    def refit(Xf: np.ndarray, yf: np.ndarray):
        if prior_in_rounds:
            return fit(Xf, yf)
        return fit_head(Xf, yf, weights(len(yf)), C=C, random_state=random_state)

    for rounds in range(1, ROUNDS + 1):
        head = refit(np.vstack([X, XU[sel]]), np.concatenate([y, classes[labels[sel]]]))
        proba = smoothed(head.predict_proba(XU))
        new_labels = proba.argmax(1)
        new_sel = agree(_select(proba, classes), new_labels)
        changed = np.mean(new_labels[new_sel] != labels[new_sel]) if len(new_sel) else 0.0
        moved = len(np.setxor1d(sel, new_sel)) / max(1, len(sel))
        labels, sel = new_labels, new_sel
        log.info("self-training round %d: %d pseudo-labels, %.1f%% changed", rounds, len(sel), 100 * changed)
        if changed < SETTLED and moved < SETTLED:
            break
    conf = proba.max(1)

    # confident learning over anchors + pseudo-labels: drop pseudo-labels the rest contradicts
    Xa = np.vstack([X, XU[sel]])
    ya_idx = np.concatenate([y_idx, labels[sel]])
    oof = out_of_fold_proba(Xa, classes[ya_idx], C, prior=prior, random_state=random_state)
    dropped_cl = 0
    if oof is not None:
        issues = label_issues(ya_idx, oof)[len(y) :]
        dropped_cl = int(issues.sum())
        sel = sel[~issues]
    labeler = np.array(["model"] * len(sel), dtype=object)
    sel_labels = classes[labels[sel]]
    sel_conf = conf[sel]

    # the LLM for the least confident texts, within its budget
    llm_report: dict[str, Any] = {}
    if llm_labeler is not None and llm_labeler.consult(sel, sel_labels, sel_conf):
        margin = np.sort(proba, axis=1)
        margin = margin[:, -1] - margin[:, -2] if proba.shape[1] > 1 else margin[:, -1]
        rest = np.setdiff1d(np.arange(len(XU)), sel)
        hard = rest[np.argsort(margin[rest], kind="stable")][: llm_labeler.budget]
        answers = llm_labeler(hard)
        got = [(i, a) for i, a in zip(hard, answers) if a is not None]
        # asked: texts sent to the LLM now; reused: its answers from an earlier labelling of this pool
        llm_report = {"asked": llm_labeler.asked, "reused": llm_labeler.reused, "answered": len(got)}
        if got:
            idx = np.array([i for i, _ in got])
            sel = np.concatenate([sel, idx])
            sel_labels = np.concatenate([sel_labels, np.array([a for _, a in got], dtype=classes.dtype)])
            sel_conf = np.concatenate([sel_conf, conf[idx]])
            labeler = np.concatenate([labeler, np.array(["llm"] * len(got), dtype=object)])
    if llm_labeler is not None and llm_labeler.verdict is not None:
        llm_report["check"] = llm_labeler.verdict

    # the guard
    final = fit(np.vstack([X, XU[sel]]), np.concatenate([y, sel_labels]))
    pool_labels = final.classes_[final.predict_proba(XU).argmax(1)]
    guard = _guard(X, y, XU, sel, sel_labels, classes, C, proba0, pool_labels)
    report = {
        "pool": len(XU),
        "rounds": rounds,
        "pseudo_labels": len(sel),
        "second_view": view is not None,
        "prior_in_rounds": prior_in_rounds,
        "cluster_refine": CLUSTER_REFINE,
        "neighbours": NEIGHBOURS,
        "retrieval": RETRIEVAL,
        "by_labeler": dict(Counter(labeler.tolist())),
        "per_class": {str(c): int(np.sum(sel_labels == c)) for c in classes},
        "dropped_by_confident_learning": dropped_cl,
        "llm": llm_report,
        "guard": guard,
        # how much the pool moved the model: the share of it the final model labels as the anchors alone
        # did (the classifier tunes the encoder on the pool only where this leaves enough to learn)
        "agreement_with_anchors": round(float(np.mean(classes[proba0.argmax(1)] == pool_labels)), 4),
    }
    if guard["fallback"]:
        log.warning("self-training looked harmful (%s): training without pseudo-labels", guard["reason"])
        empty = np.zeros(0, dtype=int)
        none = np.zeros(0, dtype=classes.dtype), np.zeros(0), np.zeros(0, dtype=object)
        return SelfTrainResult(empty, *none, report, classes[proba0.argmax(1)])
    return SelfTrainResult(sel, sel_labels, sel_conf, labeler, report, pool_labels)


def _guard(
    X: np.ndarray,
    y: np.ndarray,
    XU: np.ndarray,
    sel: np.ndarray,
    sel_labels: np.ndarray,
    classes: np.ndarray,
    C: float,
    proba0: np.ndarray,
    pool_labels: np.ndarray,
) -> dict[str, Any]:
    """Is the pseudo-labelled model clearly worse than the one without? Two checks.

    1. A model trained on the pseudo-labels alone must still classify the anchors (descriptions,
       generated and user examples) nearly as well as the anchors classify themselves out of fold.
    2. No class may nearly vanish from the predictions on the pool.
    """
    out: dict[str, Any] = {"fallback": False, "reason": None}
    if len(set(sel_labels.tolist())) < len(classes):
        out.update(fallback=True, reason="a class received no pseudo-labels")
        return out
    oof = out_of_fold_proba(X, y, C)
    anchors_self = float(np.mean(classes[oof.argmax(1)] == y)) if oof is not None else None
    pseudo_only = fit_head(XU[sel], sel_labels, C=C)  # the pseudo-labels alone, without the prior
    anchors_pseudo = float(np.mean(pseudo_only.classes_[pseudo_only.predict_proba(X).argmax(1)] == y))
    out.update(anchor_accuracy_without=anchors_self, anchor_accuracy_pseudo_only=anchors_pseudo)
    if anchors_self is not None and anchors_pseudo < anchors_self - GUARD_MARGIN:
        out.update(fallback=True, reason=f"anchors {anchors_pseudo:.2f} vs {anchors_self:.2f}")
        return out
    share0 = np.bincount(proba0.argmax(1), minlength=len(classes)) / len(XU)
    share1 = np.bincount(np.searchsorted(classes, pool_labels), minlength=len(classes)) / len(XU)
    out["class_share_before"] = {str(c): round(float(s), 3) for c, s in zip(classes, share0)}
    out["class_share_after"] = {str(c): round(float(s), 3) for c, s in zip(classes, share1)}
    collapsed = [str(c) for c, a, b in zip(classes, share0, share1) if a > 0.05 and b < COLLAPSE * a]
    if collapsed:
        out.update(fallback=True, reason=f"class(es) {collapsed} collapsed")
    return out


class PoolLabeler:
    """Labels texts of the pool by index with an escalation link (the one way to ask an LLM for a
    label), at most ``budget`` of them: the least confident ones ``self_train`` picks.

    ``earlier``: the LLM's answers from earlier labellings of the same pool (text to class), asked with
    the same classes, descriptions and LLM. They are reused instead of asked again: a hosted LLM is paid
    per call, and unlabeled mode labels the pool twice when it fine-tunes (before and after), and again
    at every retrain. Answers given here join ``earlier``; ``asked`` and ``reused`` count the last call's.

    ``check``: first ask the LLM for texts the model is surest of (``consult``) and label nothing unless
    it agrees with the model there well beyond chance; ``question``: the digest of what it is asked
    (classes, descriptions, LLM), recorded in the verdict; ``last``: the verdict of an earlier check,
    which stands instead of asking again if it was of the same question and conclusive (not paid twice).
    """

    def __init__(
        self,
        link: Any,
        classes: np.ndarray,
        texts: list[str],
        budget: int,
        earlier: dict[str, str] | None = None,
        *,
        check: bool = False,
        question: str | None = None,
        last: dict[str, Any] | None = None,
    ) -> None:
        self.link, self.texts, self.budget = link, texts, budget
        self.classes = [str(c) for c in classes]
        self.earlier = {t: c for t, c in (earlier or {}).items() if c in self.classes}
        self.asked = self.reused = 0
        self.check, self.question = check, question
        stands = check and last and last.get("conclusive") and last.get("asked_with") == question
        self.verdict: dict[str, Any] | None = last if stands else None

    def consult(self, idx: np.ndarray, labels: np.ndarray, confidence: np.ndarray) -> bool:
        """Whether the LLM may label the hard texts: always, unless ``check``; then by ``verdict``, or by
        its labels of the texts at ``idx`` the model is surest of (``labels``, ``confidence``: the model's)."""
        if not self.check:
            return True
        if self.verdict is None:
            self.verdict = check_labeller(self.link, [self.texts[i] for i in idx], self.classes, labels, confidence)
            self.verdict["asked_with"] = self.question
        return bool(self.verdict["trusted"])

    def __call__(self, idx: np.ndarray) -> list[str | None]:
        from .escalation.links import label_texts

        texts = [self.texts[i] for i in idx]
        new = [t for t in dict.fromkeys(texts) if t not in self.earlier]
        self.asked, self.reused = len(new), len(texts) - len(new)
        got = dict(zip(new, label_texts(self.link, new, self.classes))) if new else {}
        self.earlier.update((t, c) for t, c in got.items() if c is not None)
        return [self.earlier.get(t) for t in texts]


def check_labeller(
    link: Any, texts: list[str], classes: list[str], labels: np.ndarray, confidence: np.ndarray
) -> dict[str, Any]:
    """Does the LLM behind ``link`` label well enough to be trusted with the texts the model is least sure of?

    Asked for the ``texts`` the model labelled (``labels``) most confidently, ``CHECK_PER_CLASS`` of each
    class (more for few classes, ``CHECK_TEXTS`` in all), an LLM worth asking agrees with those labels far
    beyond chance; one that answers one class for everything, or at random, does not. No label of yours
    is needed: the model's surest labels stand in for them (they are 81-97% right on the dev sets, so
    even a perfect LLM stays under full agreement). A text the LLM gave no answer for counts as a
    disagreement; a check where it answered under half of them is inconclusive (not reused later).
    """
    from sklearn.metrics import cohen_kappa_score

    from .escalation.links import label_texts

    labels = np.asarray(labels).astype(str)
    per_class = max(CHECK_PER_CLASS, -(-CHECK_TEXTS // max(1, len(classes))))
    picked = np.concatenate(
        [np.flatnonzero(labels == c)[np.argsort(-confidence[labels == c], kind="stable")][:per_class] for c in classes]
    ).astype(int)
    said = labels[picked].tolist()
    got = label_texts(link, [texts[i] for i in picked], classes) if len(picked) else []
    answered = sum(g is not None for g in got)
    agree = float(np.mean([g == s for g, s in zip(got, said)])) if got else 0.0
    kappa = float(cohen_kappa_score(said, ["" if g is None else g for g in got])) if len(set(said)) > 1 else 0.0
    kappa = 0.0 if not np.isfinite(kappa) else kappa
    conclusive = 2 * answered >= len(picked) > 0
    verdict = {
        "texts": len(picked),
        "answered": answered,
        "agreement": round(agree, 4),
        "kappa": round(kappa, 4),
        "min_kappa": CHECK_KAPPA,
        "conclusive": conclusive,
        "trusted": conclusive and kappa >= CHECK_KAPPA,
    }
    log.info(
        "the LLM %s trusted with the pool's hardest texts: on %d the model is surest of it agrees %.0f%% (kappa %.2f)",
        "is" if verdict["trusted"] else "is not",
        len(picked),
        100 * agree,
        kappa,
    )
    return verdict
