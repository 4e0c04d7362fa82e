"""Issue 16: what the static fast path's first stage could be, measured by how much it can answer.

    .venv/bin/python bench/fast_features.py [--datasets sst2 ag_news trec6 emotion6] [--no-write]

The fast path's speed is the share of texts its first stage answers without changing the main
model's answer. Per dataset, one main model (the head on the frozen packaged MiniLM, ONNX fp32, fit
on 3,000 real labelled train rows) and a pool of 5,000 other train texts (their labels unused). Each
first stage is fit on the main model's world and scored on the fixed test sample by:

- agreement with the main model's answers;
- the share of test texts it answers where its answered texts disagree with the main model on at
  most 1% / 2% of all texts. The threshold is chosen on the test texts themselves: an oracle, the same
  for every row, that ranks first stages by what they could answer; it is not what training chooses
  (that is ``cascade.fit_fast_path``, bench/fast_default.py measures it).

First stages: the product's (``fit_head`` on the static vectors and the 3,000 true labels); a
scikit-learn logistic regression (C=1, classes balanced, as ``fit_head``) on the static vectors fit to
the main model's answers on the 3,000 rows and the pool; the same with word 1-2-gram or character
2-4-gram TF-IDF columns beside the static vectors (fit on the same texts); word TF-IDF alone.
Featurising speed: texts/s of each feature step over the test texts, one process, after a warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from common import machine, publish, read_rows, table, test_sample

from promptclf.cascade import choose_threshold
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.head import fit_head

HEADER = ["dataset", "first stage", "agrees with main", "answers at 1%", "answers at 2%"]
SPEED_HEADER = ["featurising", "texts/s (test texts of all sets)"]


def word_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def char_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=50_000)


def run(name: str, emb, static) -> tuple[list[list[object]], list[str]]:
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    train = read_rows(name, "train")
    order = np.random.default_rng(1).permutation(len(train))
    rows = [train[i] for i in order[:3000]]
    pool = [train[i]["text"] for i in order[3000:8000]]
    texts, y = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    test, _ = test_sample(name)
    cache = EmbeddingCache()
    X, XP, XT = (emb.embed(t, cache=cache) for t in (texts, pool, test))
    main = fit_head(X, y, None, C=1.0)

    def answers(Z: np.ndarray) -> np.ndarray:
        return main.classes_[main.predict_proba(Z).argmax(1)]

    everything, taught = texts + pool, np.concatenate([answers(X), answers(XP)])
    on_test = answers(XT)
    S, ST = static.embed(everything), static.embed(test)

    def row(label: str, P: np.ndarray, classes: np.ndarray) -> list[object]:
        agree = classes[P.argmax(1)] == on_test
        shares = [choose_threshold(P.max(1), agree, loss)[1] for loss in (0.01, 0.02)]
        return [name, label, float(agree.mean()), *(f"{100 * s:.0f}%" for s in shares)]

    def fitted(F, FT, label: str) -> list[object]:
        m = LogisticRegression(C=1.0, class_weight="balanced", max_iter=3000).fit(F, taught)  # as fit_head does
        return row(label, m.predict_proba(FT), m.classes_)

    product = fit_head(S[: len(texts)], y, None, C=1.0)
    out = [row("static vectors, `fit_head` on the true labels (today's)", product.predict_proba(ST), product.classes_)]
    out.append(fitted(S, ST, "static vectors, fit to the main model's answers (+ pool)"))
    for label, make in (("word 1-2-gram TF-IDF", word_tfidf), ("character 2-4-gram TF-IDF", char_tfidf)):
        vec = make().fit(everything)
        F, FT = vec.transform(everything), vec.transform(test)
        beside = hstack([F, csr_matrix(S)]).tocsr(), hstack([FT, csr_matrix(ST)]).tocsr()
        out.append(fitted(*beside, f"static + {label}"))
        if make is word_tfidf:
            out.append(fitted(F, FT, f"{label} alone"))
    return out, test


def speeds(texts: list[str], emb, static) -> list[list[object]]:
    word, char = word_tfidf().fit(texts), char_tfidf().fit(texts)
    out = []
    for label, fn in (
        ("static vectors (promptclf's reader)", lambda: static.embed(texts)),
        ("word 1-2-gram TF-IDF (scikit-learn)", lambda: word.transform(texts)),
        ("character 2-4-gram TF-IDF (scikit-learn)", lambda: char.transform(texts)),
        ("MiniLM, ONNX int8 (what the first stage saves)", lambda: emb.embed(texts)),
    ):
        fn()
        t = time.perf_counter()
        fn()
        out.append([label, f"{len(texts) / (time.perf_counter() - t):,.0f}"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    emb = get_embedder({"kind": "onnx", "model": "all-MiniLM-L6-v2"})
    static = get_embedder({"kind": "model2vec", "model": "all-MiniLM-L6-v2"})
    rows, tests = [], []
    for name in args.datasets:
        r, t = run(name, emb, static)
        rows += r
        tests += t
    int8 = get_embedder({"kind": "onnx-int8", "model": "all-MiniLM-L6-v2"})
    body = f"""## What the fast path's first stage could answer (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/fast_features.py`.
{__doc__.split(chr(10), 3)[3].strip()}

{table(HEADER, rows)}

{table(SPEED_HEADER, speeds(tests, int8, static))}
"""
    publish("fast-features", body, write=not args.no_write)


if __name__ == "__main__":
    main()
