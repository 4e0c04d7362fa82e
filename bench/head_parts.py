"""Issue 11: what the head's parts do in frozen unlabeled mode (prior, confident learning, class weights). One run.

    .venv/bin/python bench/head_parts.py trec6 32

The product's unlabeled mode (encoder frozen) on the cached generated examples and the 5,000-text
pool; then retrained with the description prior off and/or ``filter_generated`` off, and plain
logistic regressions (with and without balanced class weights) on the same rows; macro-F1 on the
fixed test sample.
"""

from __future__ import annotations

import sys

from common import pool_texts, prompt_model, scores, test_sample
from sklearn.linear_model import LogisticRegression


def main() -> None:
    name, per_class = sys.argv[1], int(sys.argv[2])
    texts_t, labels_t = test_sample(name)
    pool = pool_texts(name)
    clf = prompt_model(name, per_class).train(unlabeled=pool)

    def f1() -> float:
        return round(scores(labels_t, clf.predict(texts_t))["macro_f1"], 4)

    print(name, "product", f1(), "C", clf.head_.C_, "prior", clf.prior_weight, flush=True)
    prior = clf.prior_weight
    for filtering in (True, False):
        for weight in (prior, 0.0):
            clf.set_params(filter_generated=filtering, prior_weight=weight).train()
            dropped = clf.training_summary_["dropped_by_confident_learning"]
            print(name, "filter_generated", filtering, "prior_weight", weight, f1(), "dropped", dropped, flush=True)
    tr, y, _ = clf.training_data()
    X, Xt = clf._vectors(tr), clf._vectors(texts_t)
    for cw in (None, "balanced"):
        m = LogisticRegression(C=1.0, max_iter=3000, class_weight=cw).fit(X, y)
        print(name, "plain LR, class_weight", cw, round(scores(labels_t, list(m.predict(Xt)))["macro_f1"], 4))


if __name__ == "__main__":
    main()
