"""Whether to learn from the generated examples, decided on your unlabeled texts without labels.

The LLM writes examples in its own style. On most data they add to what the class descriptions
say; on some they pull the model away from it (on a held-back set of short first-person posts, a
model trained on them landed under the plain description match, with and without the user's texts).
With a pool of real texts the two can be told apart without a label: self-training runs from the
descriptions with the generated examples and from the descriptions (and your own examples) without
them, and each run labels the pool. A TF-IDF word n-gram classifier, a view of the texts that shares
nothing with the embedder or the LLM, is cross-validated on each labelling. Labels that follow the
texts' own wording are easier for it to reproduce than labels pulled off course by a stranger's
style, so the labelling it reproduces better wins (bench/fallback.py measures how often that picks
the better model, and what a wrong pick costs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ENABLED = True  # bench/fallback.py turns it off to measure what it changes
MAX_TEXTS = 5000  # a random sample of a larger pool is judged (the check's cost stays seconds)
FOLDS = 3
# The generated examples are set aside only when the other labelling is learnt better by more than
# this, a little over the score's fold-to-fold noise on a few thousand texts. bench/fallback.py judged
# its 19 runs with 0 / 0.005 / 0.01 / 0.02: 0.02 picked the better model most often (16 of 19) and
# never cost an unmodified generated set anything; smaller margins set aside good examples of long
# posts (newsgroups: -4.5 points) and cost trec6 a point. Chosen on those runs: held-back sets test it.
MARGIN = 0.02


def learnability(texts: list[str], labels: np.ndarray, classes: np.ndarray, random_state: int = 0) -> float:
    """Macro-F1 (over every class in ``classes``) with which TF-IDF word uni- and bigrams + logistic
    regression, cross-validated, reproduce ``labels`` on ``texts``.

    A class the labelling never uses scores 0, so a labelling that drops classes loses.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import KFold

    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2 or len(texts) < 2 * FOLDS:
        return 0.0
    V = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(texts)
    pred = np.empty_like(labels)
    for train, test in KFold(FOLDS, shuffle=True, random_state=random_state).split(texts):
        if len(set(labels[train].tolist())) < 2:  # a fold with one class predicts it
            pred[test] = labels[train][0]
            continue
        m = LogisticRegression(C=10.0, max_iter=1000, class_weight="balanced", random_state=random_state)
        pred[test] = m.fit(V[train], labels[train]).predict(V[test])
    return float(f1_score(labels, pred, labels=list(classes), average="macro", zero_division=0))


def compare(
    texts: list[str],
    with_generated: np.ndarray,
    without_generated: np.ndarray,
    classes: np.ndarray,
    random_state: int = 0,
) -> dict[str, Any]:
    """Judge two labellings of the same pool texts; ``keep_generated`` says which one won.

    Returns a report: both learnability scores, how often the labellings agree, the pool size
    judged, and the verdict.
    """
    idx = np.arange(len(texts))
    if len(idx) > MAX_TEXTS:
        idx = np.sort(np.random.default_rng(random_state).choice(len(texts), MAX_TEXTS, replace=False))
    sample = [texts[i] for i in idx]
    a = learnability(sample, np.asarray(with_generated)[idx], classes, random_state)
    b = learnability(sample, np.asarray(without_generated)[idx], classes, random_state)
    return {
        "judged_texts": len(idx),
        "learnability_with_generated": round(a, 4),
        "learnability_without_generated": round(b, 4),
        "agreement": round(float(np.mean(np.asarray(with_generated) == np.asarray(without_generated))), 4),
        "keep_generated": bool(b <= a + MARGIN),
    }
