"""Issue 16: how far may ``fast=True`` loosen its bound where the static head votes (``cascade.VOTE_MAX_LOSS``)?

    .venv/bin/python bench/fast_vote_bound.py [--datasets sst2 ag_news trec6 emotion6] [--per-class 200 0]
        [--models DIR] [--bounds 0.02 0.025 0.03 0.04] [--no-write]

Per dataset and number of real labels per class (0: the whole train split), one model trained as a user with
those labels would train it with ``fast=True`` (frozen encoder, as bench/speed.py trains it); with ``--models
DIR`` also the default flow's unlabeled-mode models ``DIR/<set>-default.clf`` (the prompt, then
``train(unlabeled=...)`` with 5,000 train texts; saved by ``bench/finetune_rounds.py <set> default --save
DIR``), whose only real labels are pseudo-labels, so the static head never votes. Each model's fast path is
fitted again at every bound (``cascade.MAX_LOSS`` and ``VOTE_MAX_LOSS`` both set to it: the bound is that
whether or not the static head votes) on the same rows (and pool). The static head and its vote are the same
at every bound; only the threshold moves. Macro-F1 of ``predict`` on the fixed test sample (the transformer's
vectors of those texts computed once), the share of them the static head answered, and the transformer alone
(``fast=False``). *fast=True takes*: the bound the product chooses for that model.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from common import answered_share, machine, per_class_sample, pool_texts, publish, read_rows, table, test_f1

import promptclf.cascade as cascade
from promptclf import PromptClassifier

POOL = 5000
HEADER = ["dataset", "model", "vote weight", "bound", "fast=True takes", "static share (test)", "macro-F1",
          "transformer alone", "Δ pts vs alone"]  # fmt: skip


def sweep(clf: PromptClassifier, name: str, model: str, pool: list[str] | None, bounds: list[float]) -> list[list]:
    texts, _, f1, alone = test_f1(clf, name)
    train_texts, y, sources = clf._training_set()
    clf.fast = True
    before = cascade.MAX_LOSS, cascade.VOTE_MAX_LOSS
    out = []
    try:
        for bound in bounds:
            cascade.MAX_LOSS = cascade.VOTE_MAX_LOSS = bound
            clf.fast_ = clf._fit_fast(train_texts, y, sources, pool)
            takes = before[1] if clf.fast_.blend else before[0]
            now = f1()
            out.append([name, model, f"{clf.fast_.blend:g}", f"{bound:.1%}", "yes" if bound == takes else "",
                        f"{answered_share(clf, texts):.0%}", f"{now:.3f}", f"{alone:.3f}",
                        f"{100 * (now - alone):+.1f}"])  # fmt: skip
            print(" | ".join(map(str, out[-1])), flush=True)
    finally:
        cascade.MAX_LOSS, cascade.VOTE_MAX_LOSS = before
    return out


def labelled_rows(name: str, per_class: int, bounds: list[float]) -> list[list]:
    clf = PromptClassifier(progress=False, finetune=False, fast=True)
    for label, xs in per_class_sample(read_rows(name, "train"), per_class or 10**9).items():
        clf.add_data_to_class(label, xs)
    clf.train()
    return sweep(clf, name, f"{per_class} labels per class" if per_class else "every label", None, bounds)


def default_flow_rows(path: Path, name: str, bounds: list[float]) -> list[list]:
    clf = PromptClassifier.load(path)
    clf.progress = False
    pool = pool_texts(name, POOL)
    return sweep(clf, name, "default flow (prompt + 5,000 unlabeled)", pool, bounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--per-class", nargs="+", type=int, default=[200, 0])
    ap.add_argument("--models", type=Path, help="a folder of the default flow's models, <set>-default.clf")
    ap.add_argument("--bounds", nargs="+", type=float, default=[0.02, 0.025, 0.03, 0.04])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [r for n in args.per_class for ds in args.datasets for r in labelled_rows(ds, n, args.bounds)]
    if args.models:
        for ds in args.datasets:
            rows += default_flow_rows(args.models / f"{ds}-default.clf", ds, args.bounds)
    body = f"""## The bound of fast=True where the static head votes (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/fast_vote_bound.py --models DIR`
(DIR: the models `bench/finetune_rounds.py <set> default --save DIR` saves).
Models trained with `fast=True` on real labels (N per class from the train split, or every label; frozen
encoder), and the default flow's unlabeled-mode models (the prompt, then 5,000 unlabeled train texts: their
real labels are pseudo-labels, so the static head never votes), loaded. Each model's fast path fitted again
at every bound on the same rows: the share of the real texts' served answers the static head may change.
The static head and its vote weight are the same at every bound, only the threshold moves. *fast=True
takes*: the bound training chooses (`cascade.VOTE_MAX_LOSS` where the weight is over 0, `cascade.MAX_LOSS`
elsewhere). Macro-F1 on the fixed test sample; *static share*: its texts the static head answered (the
rest cost a transformer pass each: the share sets the speed); *transformer alone*: `fast=False`. emotion6
is held out from the dev sets.

{table(HEADER, rows)}
"""
    publish("fast-vote-bound", body, write=not args.no_write)


if __name__ == "__main__":
    main()
