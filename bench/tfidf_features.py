"""Issue 11: would TF-IDF features beside the vectors help the head in unlabeled mode? One run.

    .venv/bin/python bench/tfidf_features.py trec6 32 [False|auto]

The product's unlabeled mode on the cached generated examples (bench/out) and the accuracy run's
5,000-text pool, with the encoder frozen (``False``) or the default fine-tuning (``auto``). Then, on
the rows the product trained on (descriptions, generated examples, pseudo-labels), a plain logistic
regression on the vectors against the same with word 1-2-gram or character 2-5-gram TF-IDF columns
beside them (weights 0.3, 0.6, 1.0), and TF-IDF alone; macro-F1 on the fixed test sample.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp
from common import pool_texts, prompt_model, scores, test_sample
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

VIEWS = {
    "word 1-2-grams": {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 2},
    "char 2-5-grams": {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2,
                       "max_features": 50_000},
}  # fmt: skip


def main() -> None:
    name, per_class = sys.argv[1], int(sys.argv[2])
    tune = {"False": False, "auto": "auto"}[sys.argv[3] if len(sys.argv) > 3 else "False"]
    texts_t, labels_t = test_sample(name)
    pool = pool_texts(name)
    clf = prompt_model(name, per_class).set_params(finetune=tune).train(unlabeled=pool)
    print("product", round(scores(labels_t, clf.predict(texts_t))["macro_f1"], 4), flush=True)
    tr, labels, sources = clf.training_data()
    y = np.array(labels)
    X, Xt = clf._vectors(tr), clf._vectors(texts_t)

    def f1(a, b, C: float = clf.head_.C_) -> float:
        m = LogisticRegression(C=C, max_iter=3000).fit(a, y)
        return round(scores(labels_t, list(m.predict(b)))["macro_f1"], 4)

    print("vectors", f1(X, Xt), "rows", dict(zip(*np.unique(sources, return_counts=True))), flush=True)
    for view, kw in VIEWS.items():
        v = TfidfVectorizer(**kw).fit(tr + pool)
        T, Tt = v.transform(tr), v.transform(texts_t)
        print(view, "alone", f1(T, Tt, C=10), flush=True)
        for w in (0.3, 0.6, 1.0):
            both, both_t = sp.hstack([sp.csr_matrix(X), w * T]).tocsr(), sp.hstack([sp.csr_matrix(Xt), w * Tt]).tocsr()
            print(view, "beside the vectors, weight", w, f1(both, both_t), flush=True)


if __name__ == "__main__":
    main()
