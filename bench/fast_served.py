"""The fast path's bound: against the main head's answers, or against the answers the model would serve
without the fast path (the mix of both heads, where the static head has a vote)?

    .venv/bin/python bench/fast_served.py [--datasets sst2 ag_news trec6 emotion6] [--per-class 200 0]
        [--no-write]

Per dataset and number of real labels per class (0: the whole train split), one model trained as a user
with those labels would train it (frozen encoder, ``fast="auto"``); then its fast path fitted again four
ways on the same training rows: the bound of ``fast="auto"`` (1%) and of ``fast=True`` (2%), each against
the main head's answers (``cascade.BOUND_ON_SERVED = False``, before) and against the served mix (now).
The static head and the vote's weight are the same in all four; only the threshold moves. Macro-F1 on
the fixed test sample, predicted in the training process (PyTorch vectors), and the share of those
texts the static head answered (the rest cost a transformer pass each: the share sets the speed).
"""

from __future__ import annotations

import argparse
import datetime as dt

from common import answered_share, embed_once, machine, per_class_sample, publish, read_rows, scores, table, test_sample

import promptclf.cascade as cascade
from promptclf import PromptClassifier

HEADER = [
    "dataset", "labels / class", "fast", "weight", "bound against", "threshold", "static share (training's real texts)",
    "static share (test)", "macro-F1", "transformer alone", "Δ pts vs bound on the main head",
]  # fmt: skip


def rows_for(ds: str, per_class: int) -> list[list[object]]:
    clf = PromptClassifier(progress=False, finetune=False)
    for label, xs in per_class_sample(read_rows(ds, "train"), per_class or 10**9).items():
        clf.add_data_to_class(label, xs)
    clf.train()
    texts, labels = test_sample(ds)
    embed_once(clf, texts)
    f1 = lambda: scores(labels, list(clf.predict(texts)))["macro_f1"]  # noqa: E731
    clf.fast = False
    alone = f1()
    train_texts, y, sources = clf._training_set()
    out = []
    for fast in ("auto", True):
        before = None
        for served in (False, True):
            cascade.BOUND_ON_SERVED = served
            clf.fast = fast
            clf.fast_ = clf._fit_fast(train_texts, y, sources, None)
            now = f1()
            before = now if before is None else before
            out.append([ds, per_class or "all", "auto (1%)" if fast == "auto" else "True (2%)", f"{clf.fast_.blend:g}",
                        "served mix" if served else "main head", round(clf.fast_.threshold, 3),
                        f"{clf.fast_.estimate['share']:.0%}", f"{answered_share(clf, texts):.0%}", now,
                        alone, f"{100 * (now - before):+.1f}"])  # fmt: skip
            print(out[-1], flush=True)
    cascade.BOUND_ON_SERVED = True
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--per-class", nargs="+", type=int, default=[200, 0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [r for per_class in args.per_class for ds in args.datasets for r in rows_for(ds, per_class)]
    body = f"""## The fast path's bound against the answers served (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/fast_served.py`.
Models trained on real labels (N per class from the train split, "all" the whole split; frozen encoder),
their fast path fitted again four ways on the same rows: the bound of `fast="auto"` (1% of the real
texts' answers changed) and of `fast=True` (2%), counted against the main head's answers (before) or
against the answers the model serves without the fast path (the mix of both heads by the vote's
weight; the same as the main head's where the weight is 0). *static share*: the texts the static head
answers itself. Macro-F1 on the fixed test sample; *transformer alone*: `fast=False`.
emotion6 is held out from the dev sets.

{table(HEADER, rows)}
"""
    publish("fast-served", body, write=not args.no_write)


if __name__ == "__main__":
    main()
