"""Issue 16: with real labels, may the fast path's threshold be set by what it costs, not by how often
it disagrees?

    .venv/bin/python bench/fast_bound.py [sst2 ag_news trec6 emotion6] [--no-write]

The fast path answers where its static head disagrees with the main model on at most 1% of the real
texts (``cascade.choose_threshold``). Each disagreement is counted as an error, but where the two
disagree the static head (static vectors and word columns) is often the one that is right. With real
labels that can be counted: the *net* loss of a threshold is, over the labelled rows, the rows where
the static head is wrong and the main model right, less those where it is right and the main model
wrong, both heads out of fold. A threshold with a net loss of at most 1% would answer more texts
(faster) and still lose at most a point, if the estimate holds on new text. This measures whether
it does.

Per set: the product's model on the whole train split with its labels (the encoder frozen,
``fast="auto"``), as bench/speed.py trains it. Out-of-fold probabilities of the main head (its C and
description prior) and of the static head (the same rows, its C); the threshold by each rule; then
on the fixed test sample the share the static head answers and the cascade's macro-F1 against the
main model alone (exact vectors, the fast path off). *disagreement, in-sample* is the product's rule
(the main model's answers on its own training rows); *disagreement, out of fold* counts against the
main head's out-of-fold answers instead.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
from common import machine, per_class_sample, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier
from promptclf.cascade import choose_threshold, features, threshold_for_cost
from promptclf.embedders import EmbeddingCache
from promptclf.head import out_of_fold_proba

BOUNDS = (0.01, 0.02)
SETUP = """Per set, the product's model on the whole train split with its labels (encoder frozen, `fast="auto"`,
as bench/speed.py trains it). Out of fold on those rows: the main head (its C and description prior) and
the static head (static vectors and word columns). Thresholds at each bound by three rules: *disagreement,
in-sample*, the product's (the static head's out-of-fold answers against the main model's answers on its
own training rows); *disagreement, out of fold* (against the main head's out-of-fold answers); *net loss*
(per labelled row +1 where the static head is wrong and the main head right, -1 the other way round, both
out of fold: what answering that row costs in correct answers). Then, on the fixed test sample, the share
the static head answers and the cascade's macro-F1 against the main model alone (exact vectors)."""
HEADER = [
    "dataset", "rows", "out-of-fold accuracy: main / static head", "main model (test)", "bound", "rule",
    "threshold", "static share (test)", "cascade macro-F1 (test)", "Δ pts vs main",
]  # fmt: skip


def run(name: str) -> list[list[object]]:
    cache = EmbeddingCache()
    clf = PromptClassifier(fast="auto", finetune=False, progress=False).use_embedding_cache(cache)
    for label, xs in per_class_sample(read_rows(name, "train"), 10**9).items():
        clf.add_data_to_class(label, xs)
    clf.train()
    texts, y, sources = clf._training_set()
    w, C, classes = clf._llm_weights(sources), clf.head_.C_, clf.classes_
    X = clf._vectors(texts)
    main_oof = out_of_fold_proba(X, y, C, w, prior=clf._prior(np.unique(y)), random_state=0)
    main_in = classes[clf.head_.predict_proba(X).argmax(1)]
    fast = clf.fast_
    static_oof = out_of_fold_proba(features(clf._static, texts, fast.words, cache), y, C, w, random_state=0)
    s_pred, conf, m_pred = classes[static_oof.argmax(1)], static_oof.max(1), classes[main_oof.argmax(1)]
    net = ((s_pred != y) & (m_pred == y)).astype(float) - ((s_pred == y) & (m_pred != y))

    test, labels = test_sample(name)
    clf.set_params(fast=False)
    P_main = clf.predict_proba(test)
    P_static = fast.proba(clf._static, test)
    f_main = scores(labels, list(classes[P_main.argmax(1)]))["macro_f1"]
    rows = []
    for bound in BOUNDS:
        rules = {
            "disagreement, in-sample (the product)": choose_threshold(conf, s_pred == main_in, bound)[0],
            "disagreement, out of fold": choose_threshold(conf, s_pred == m_pred, bound)[0],
            "net loss, labels, out of fold": threshold_for_cost(conf, net, bound)[0],
        }
        for rule, threshold in rules.items():
            sure = P_static.max(1) >= threshold
            f1 = scores(labels, list(classes[np.where(sure[:, None], P_static, P_main).argmax(1)]))["macro_f1"]
            rows.append([name, len(y), f"{(m_pred == y).mean():.3f} / {(s_pred == y).mean():.3f}", f"{f_main:.3f}",
                         f"{bound:.0%}", rule, f"{threshold:.3f}", f"{sure.mean():.0%}", f"{f1:.3f}",
                         f"{100 * (f1 - f_main):+.1f}"])  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [r for d in args.datasets for r in run(d)]
    body = (
        "## The fast path's bound with real labels: disagreement or net loss (issue 16)\n\n"
        f"{dt.date.today()}, {machine()}. Regenerate with `.venv/bin/python bench/fast_bound.py "
        f"{' '.join(args.datasets)}`.\n" + SETUP + "\n\n" + table(HEADER, rows)
    )  # fmt: skip
    publish("fast-bound", body, not args.no_write)


if __name__ == "__main__":
    main()
