"""The correction loop: labels chosen by ``suggest`` versus at random, and whether thresholds keep their promise.

    .venv/bin/python bench/learning.py [--datasets sst2 ag_news trec6] [--pool 2000] [--budgets 8 16 32]

Per dev set, from the same start (the cached generated examples of bench/accuracy.py, then
``train(unlabeled=pool)`` on train-split texts with their labels hidden), a simulated annotator
answers from the hidden gold labels:

- *suggest*: rounds of ``suggest(pool, n=2k)`` (k classes; by default half uncertain, half random
  picks), each answer added with ``add_data_to_class`` and ``train()`` after each round, the way
  ``promptclf review`` retrains;
- *random*: the same number of pool texts drawn at random.

At 8, 16 and 32 labels per class (k x that many in all, whatever classes they fall in), the model is
retrained with self-training on the pool, as ``review`` does when it saves, and scored on the test
sample. *probe-8*: the head on 8 random real labels per class, no prompt. Calibration: target
precision 0.9 against the precision and coverage reached on the real test rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time

import numpy as np
from common import (
    OUT,
    SEED,
    machine,
    per_class_sample,
    pool_rows,
    prompts,
    publish,
    read_rows,
    scores,
    table,
    test_sample,
)

from promptclf import PromptClassifier, classifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.review import suggest as suggest_module
from promptclf.review.session import REVIEW_META

log = logging.getLogger("bench")
EXPLORE = 0.5  # suggest's default; --explore changes it
CEILING = {"sst2": 0.810, "ag_news": 0.879, "trec6": 0.851}  # probe-full, BENCHMARKS.md "Accuracy from a prompt"


def start(emb, cache, name: str, descs: dict[str, str], pool: list[str]) -> PromptClassifier:
    clf = PromptClassifier(embedder=emb, finetune=False, progress=False).use_embedding_cache(cache)
    clf.load_examples(OUT / f"{name}-direct-n32.jsonl", include_pseudo=False)
    clf.prompt_train(descs, generate=False, unlabeled=pool)
    return clf


def abstain(clf: PromptClassifier, texts: list[str], labels: list[str]) -> tuple[float, float]:
    import warnings

    with warnings.catch_warnings():  # the uncalibrated warning is the point of one column
        warnings.simplefilter("ignore")
        pred = clf.predict(texts, abstain=True)
    done = [(p, y) for p, y in zip(pred, labels) if p is not None]
    return (float(np.mean([p == y for p, y in done])) if done else float("nan")), len(done) / len(labels)


def measure(clf: PromptClassifier, pool: list[str], texts: list[str], labels: list[str]) -> dict:
    t0 = time.perf_counter()
    clf.train(unlabeled=pool)
    res = scores(labels, clf.predict(texts))
    res["precision"], res["coverage"] = abstain(clf, texts, labels)
    cal = clf.calibration_
    res["calibrated"] = bool(cal.get("calibrated"))
    res["calibrated_classes"] = f"{len(cal.get('calibrated_classes') or [])}/{len(clf.classes_)}"
    est = cal.get("estimate") or {}
    res["estimate"] = est.get("precision")
    res["estimate_interval"] = est.get("precision_interval")
    res["seconds"] = time.perf_counter() - t0
    return res


def curve(
    strategy: str, emb, cache, name, descs, pool, truth, budgets, texts, labels, rng: np.random.Generator
) -> dict[int, dict]:
    clf = start(emb, cache, name, descs, pool)
    k = len(clf.classes_)
    asked: list[str] = []
    out = {}
    order = list(rng.permutation(len(pool)))
    t0 = time.perf_counter()
    for per_class in budgets:
        while len(asked) < per_class * k:
            n = min(2 * k, per_class * k - len(asked))
            if strategy == "suggest":
                batch = [(s.text, s.pick) for s in clf.suggest(pool, n=n, explore=EXPLORE)]
            else:
                batch = []
                while len(batch) < n:
                    t = pool[order.pop()]
                    if t not in asked:
                        batch.append((t, "random"))
            for t, pick in batch:
                clf.add_data_to_class(truth[t], t, meta={**REVIEW_META, "pick": pick})
            batch = [t for t, _ in batch]
            asked += batch
            clf.train()  # what review's background retraining does
        res = measure(clf, pool, texts, labels)
        got = [truth[t] for t in asked]
        res["per_class_min"] = min(got.count(c) for c in map(str, clf.classes_))
        res["loop_seconds"] = time.perf_counter() - t0
        out[per_class] = res
        log.info("%s %s %d/class: %s", name, strategy, per_class, res)
    return out


def run(name: str, descs: dict[str, str], pool_size: int, budgets: list[int], emb, cache) -> dict:
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    rows = pool_rows(train, pool_size)
    pool, truth = [r["text"] for r in rows], {r["text"]: r["label"] for r in rows}
    emb.embed(texts + pool, cache=cache)
    res = {"dataset": name, "pool": len(pool)}
    base = start(emb, cache, name, descs, pool)
    res["start"] = scores(labels, base.predict(texts))
    res["start"]["precision"], res["start"]["coverage"] = abstain(base, texts, labels)
    res["start"]["calibrated"] = bool(base.calibration_.get("calibrated"))
    done = base.calibration_.get("calibrated_classes") or []
    res["start"]["calibrated_classes"] = f"{len(done)}/{len(base.classes_)}"
    probe = PromptClassifier(embedder=emb, progress=False).use_embedding_cache(cache)
    for c, xs in per_class_sample(train, 8).items():
        probe.add_data_to_class(c, xs)
    res["probe_8"] = scores(labels, probe.train().predict(texts))
    for strategy in ("suggest", "random"):
        res[strategy] = curve(
            strategy, emb, cache, name, descs, pool, truth, budgets, texts, labels, np.random.default_rng(SEED)
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--pool", type=int, default=2000, help="train-split texts as the unlabeled pool")
    ap.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 32], help="labels per class")
    ap.add_argument("--user-weight", type=float, default=None, help="try another promptclf USER_WEIGHT")
    ap.add_argument("--no-stratify", action="store_true", help="suggest without sharing out between classes")
    ap.add_argument("--explore", type=float, default=0.5, help="suggest's share of random picks")
    ap.add_argument("--calibrate-with-pseudo", action="store_true", help="calibration folds keep pseudo-labels")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.no_stratify:
        suggest_module.STRATIFY = False
    global EXPLORE
    EXPLORE = args.explore
    if args.calibrate_with_pseudo:
        classifier.CALIBRATE_WITHOUT_PSEUDO = False
    if args.user_weight is not None:
        classifier.USER_WEIGHT = args.user_weight
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb, cache = get_embedder(None), EmbeddingCache()
    all_prompts = prompts()
    t0 = time.perf_counter()
    results = [run(d, all_prompts[d], args.pool, args.budgets, emb, cache) for d in args.datasets]
    wall = time.perf_counter() - t0

    def f1(r):
        return r["macro_f1"]

    header = ["dataset", "start (prompt + unlabeled)", "probe-8"]
    for b in args.budgets:
        header += [f"suggest {b}", f"random {b}", "Δ pts"]
    header += ["probe-full (ceiling)"]
    rows = []
    for r in results:
        row = [r["dataset"], f1(r["start"]), f1(r["probe_8"])]
        for b in args.budgets:
            s, rd = f1(r["suggest"][b]), f1(r["random"][b])
            row += [s, rd, f"{100 * (s - rd):+.1f}"]
        rows.append([*row, CEILING.get(r["dataset"], "–")])
    cal_header = [
        "dataset", "labels", "calibrated", "precision reached", "coverage", "model's estimate [95%]", "gap to 0.9",
    ]  # fmt: skip

    def cal_row(r, label, m):
        iv = m.get("estimate_interval")
        est = f"{m['estimate']:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]" if m.get("estimate") is not None else "none"
        gap = abs(m["precision"] - 0.9)
        some = m["calibrated_classes"]
        done = "yes" if m["calibrated"] else "no" if some.startswith("0/") else some
        return [r["dataset"], label, done, m["precision"],
                f"{100 * m['coverage']:.0f}%", est, f"{gap:.3f}"]  # fmt: skip

    cal_rows = []
    for r in results:
        cal_rows.append(cal_row(r, "none (start)", r["start"]))
        for strategy in ("suggest", "random"):
            for b in args.budgets:
                cal_rows.append(cal_row(r, f"{b}/class, {strategy}", r[strategy][b]))
    mins = "; ".join(
        f"{r['dataset']} " + "/".join(str(r["suggest"][b]["per_class_min"]) for b in args.budgets) for r in results
    )
    flags = " ".join(a for a in sys.argv[1:] if a != "--no-write")
    cmd = f".venv/bin/python bench/learning.py {flags}".strip()
    weight = f"your examples weigh {classifier.USER_WEIGHT:g} in the head (`USER_WEIGHT`)"
    weight += ", suggestions shared out between predicted classes" if suggest_module.STRATIFY else ", not stratified"
    weight += f", {EXPLORE:.0%} of them random picks (`explore`)"
    weight += f"; calibration folds {'without' if classifier.CALIBRATE_WITHOUT_PSEUDO else 'with'} pseudo-labels"
    body = f"""## Correction loop: labels chosen by suggest vs at random

{dt.date.today().isoformat()}, {machine()}. Regenerate with `{cmd}` ({wall / 60:.0f} min).
Simulated annotator: answers come from the hidden gold labels of {args.pool:,} train-split texts (the
pool). Start: the cached generated examples of bench/accuracy.py + `train(unlabeled=pool)`. *suggest*:
rounds of `suggest(pool, n=2k)`, answers added with `add_data_to_class`, `train()` after each round (as
`promptclf review` retrains); *random*: as many pool texts drawn at random. At each budget (labels per
class times k, in all) the model is retrained with self-training on the pool, as review does when it
saves. Macro-F1 on the fixed test sample (at most 1,000 rows). *probe-8*: the head on 8 random real
labels per class, no prompt. *probe-full*: the head on the whole train split (from the accuracy
section, same embedder and test sample). SetFit was not run (not in the pinned set). This run:
{weight}.

Goal: suggest-8 at least 5 points above random-8 on every set, and at or above probe-full on
2 of 3.

{table(header, rows)}

Fewest labels any class got from suggest at each budget: {mins}.

Do the thresholds keep their promise? `predict(abstain=True)` at target precision 0.9 on the real test
rows. *calibrated*: thresholds chosen on real labels alone (at least 5 per class among your examples and
randomly picked reviewed texts; uncertain picks are no fair sample and don't count); "4/6": the classes
that have 5 are calibrated on theirs, the others keep thresholds chosen on synthetic and pseudo-labelled
rows (and `predict(abstain=True)` names them in its warning). *model's estimate*: its cross-validated
estimate of the precision its thresholds deliver, from the real labels (none without any). Goal: within
0.05 of 0.9 after 16 reviewed labels per class.

{table(cal_header, cal_rows)}

What the choices were worth (runs of this script on 2026-11-23 with the flags shown, `--no-write`, same
pool and start; macro-F1 suggest / random at 32 labels per class, and calibration on sst2):

| choice | sst2 | ag_news | trec6 |
|---|---|---|---|
| pure uncertainty picks (`--explore 0 --no-stratify`) | 0.782 / 0.773 | 0.870 / 0.856 | 0.767 / 0.770 |
| your examples weigh 5 (`--user-weight 5 --explore 0 --no-stratify`) | 0.748 / 0.762 | 0.846 / 0.857 | 0.822 / 0.803 |
| default (half random picks, stratified, weight 1) | see the first table | | |

- Weight 5 for your examples helps trec6 (+3 to +5 points) and costs sst2 and ag_news 1 to 3: on
  average a wash, so `USER_WEIGHT` stays 1.
- Calibrating on uncertain picks (`--explore 0`, folds with pseudo-labels): sst2 thresholds chosen
  on 8/16/32 suggested labels per class delivered 0.81/0.78/0.79 precision where the model estimated
  1.00/0.97/0.90. Hence random picks (`explore=0.5`), and only they and your own examples calibrate.
- Folds with pseudo-labels in them (`--calibrate-with-pseudo`, sst2; the run was stopped after sst2):
  suggest 16/32 per class delivered 0.830/0.804 with estimates 1.00/0.93, against 0.821/0.875 without
  them; random 8/16: 0.862/0.864 against 0.858/0.909. Without pseudo-labels the folds model a weaker
  classifier than the one deployed, so the estimate comes out low (pessimistic) while the precision
  delivered is nearer the target: a promise kept is the point, so folds leave pseudo-labels out.
"""
    publish("learning", body, write=not args.no_write)


if __name__ == "__main__":
    main()
