"""The static head's vote: with your own labels, do the texts the static head is not sure of gain from the
mean of both heads' probabilities (``FastPath.blend``, its weight chosen out of fold at training)?

    .venv/bin/python bench/fast_blend.py [--datasets sst2 ag_news trec6 emotion6] [--per-class 50 200 1000 0]
        [--no-write]

Per dataset and number of real labels per class (0: the whole train split), a model trained as a user
with those labels would train it (the defaults: frozen encoder, ``fast="auto"``), then the fixed test
sample predicted by the model as trained (PyTorch vectors, as in the process that trained it) four ways:
the transformer alone (``fast=False``), the cascade with no vote (weight 0: before), the weight training
chose, and a fixed 0.5 (a reference, not a setting). Abstention at the default target precision (0.9,
thresholds set out of fold on the labels) with weight 0 and with the chosen one: the share answered
and the precision of those answers on the test texts. Unlabeled mode is not in the table: with
pseudo-labels only the weight is 0 by construction (they are the main model's own answers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from common import machine, per_class_sample, publish, read_rows, table, test_f1

from promptclf import PromptClassifier

HEADER = [
    "dataset", "labels / class", "rows", "static share", "weight chosen", "transformer alone", "cascade, no vote",
    "cascade, chosen vote", "cascade, vote 0.5", "chosen − no vote (pts)", "abstain: answered / precision, no vote",
    "abstain: answered / precision, chosen", "train s",
]  # fmt: skip


def abstained(clf: PromptClassifier, texts: list[str], labels: list[str]) -> str:
    out = clf.predict(texts, abstain=True)
    answered = [i for i, p in enumerate(out) if p is not None]
    precision = np.mean([out[i] == labels[i] for i in answered]) if answered else float("nan")
    return f"{len(answered) / len(texts):.0%} / {precision:.3f}"


def row(ds: str, per_class: int) -> list[object]:
    clf = PromptClassifier(progress=False, finetune=False)
    n = 0
    for label, xs in per_class_sample(read_rows(ds, "train"), per_class or 10**9).items():
        clf.add_data_to_class(label, xs)
        n += len(xs)
    t = time.perf_counter()
    clf.train()
    train_s = time.perf_counter() - t
    texts, labels, f1, alone = test_f1(clf, ds)  # the ways below differ only in how the two heads' probabilities mix
    fast = clf.fast_
    if fast is None:
        return [ds, per_class or "all", n, "no fast path", "", alone, "", "", "", "", "", "", f"{train_s:.0f}"]
    chosen = fast.blend
    fast.blend = 0.0
    before, abst_before = f1(), abstained(clf, texts, labels)
    fast.blend = 0.5
    half = f1()
    fast.blend = chosen
    now, abst_now = f1(), abstained(clf, texts, labels)
    share = f"{fast.estimate['share']:.0%}"
    return [ds, per_class or "all", n, share, f"{chosen:g}", alone, before, now, half, f"{100 * (now - before):+.1f}",
            abst_before, abst_now, f"{train_s:.0f}"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--per-class", nargs="+", type=int, default=[50, 200, 1000, 0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for per_class in args.per_class:
        for ds in args.datasets:
            rows.append(row(ds, per_class))
            print(rows[-1], flush=True)
    body = f"""## The static head's vote (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/fast_blend.py`.
Models trained on real labels only (N per class from the train split, "all" the whole split; the
defaults: frozen encoder, `fast="auto"`), macro-F1 on the fixed test sample. *static share*: the share
of the training run's real texts the static head answered; *weight chosen*: the static head's weight in
the texts it leaves to the transformer, chosen at training out of fold on the labels (0 with fewer than
100 labelled rows left to the transformer). *transformer alone*: `fast=False`; *no vote*: the cascade
as before (weight 0); *vote 0.5*: a fixed weight, for reference. Abstention at the default target
precision 0.9: the share of test texts answered and the precision of those answers. emotion6 is held
out from the dev sets (a GoEmotions stand-in; its train split has 659 rows, so 200 and 1,000 per class
are the same model).

{table(HEADER, rows)}
"""
    publish("fast-blend", body, write=not args.no_write)


if __name__ == "__main__":
    main()
