"""Accuracy from a prompt alone vs what a user would do otherwise, on the real dev datasets.

    .venv/bin/python bench/accuracy.py [--datasets sst2 ag_news trec6] [--examples-per-class 32]

Per dataset, in one run and with one embedder: zero-shot (nearest class description), a linear
probe on 8 real examples per class, a linear probe on the full train split (the ceiling), and the
prompt-trained classifier (descriptions only, default local LLM). Generated examples are kept in
bench/out/ so a rerun reuses them; --fresh regenerates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

import numpy as np
from common import OUT, machine, per_class_sample, prompts, read_rows, scores, table, test_sample, write_section

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder

log = logging.getLogger("bench")
ACC_HEADER = ["dataset", "zero-shot", "probe-8", "prompt", "prompt − zero-shot (pts)", "probe-full", "prompt accuracy"]
GEN_HEADER = [
    "dataset",
    "LLM calls",
    "tokens",
    "wall s",
    "kept",
    "kept / expand calls",
    "dropped by confident learning",
]


def zero_shot(emb, cache, descs: dict[str, str], X: np.ndarray) -> list[str]:
    names = list(descs)
    D = emb.embed([descs[c] for c in names], cache=cache)
    return [names[j] for j in (X @ D.T).argmax(1)]


def probe(emb, cache, data: dict[str, list[str]], texts: list[str]) -> list[str]:
    clf = PromptClassifier(embedder=emb, progress=False)
    clf._cache_obj = cache
    for c, xs in data.items():
        clf.add_data_to_class(c, xs)
    return clf.train().predict(texts)


def calibration_honesty(clf: PromptClassifier, texts: list[str], labels: list[str]) -> tuple[float, float]:
    pred = clf.predict(texts, abstain=True)
    answered = [(p, y) for p, y in zip(pred, labels) if p is not None]
    if not answered:
        return float("nan"), 0.0
    return float(np.mean([p == y for p, y in answered])), len(answered) / len(labels)


def run(name: str, descs: dict[str, str], n: int, strategy: str, fresh: bool, emb, cache) -> dict:
    texts, labels = test_sample(name)
    X = emb.embed(texts, cache=cache)
    res: dict = {"dataset": name, "n_test": len(texts)}
    res["zero_shot"] = scores(labels, zero_shot(emb, cache, descs, X))
    train = read_rows(name, "train")
    res["probe_8"] = scores(labels, probe(emb, cache, per_class_sample(train, 8), texts))
    res["probe_full"] = scores(labels, probe(emb, cache, per_class_sample(train, 10**9), texts))

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}-{strategy}-n{n}.jsonl"
    if fresh and path.exists():
        path.unlink()
    clf = PromptClassifier(
        embedder=emb, examples_per_class=n, strategy=strategy, saved_examples_path=path, progress=False
    )
    clf._cache_obj = cache
    t0 = time.perf_counter()
    clf.prompt_train(descs)
    res["train_seconds"] = time.perf_counter() - t0
    res["prompt"] = scores(labels, clf.predict(texts))
    res["abstain_precision"], res["abstain_coverage"] = calibration_honesty(clf, texts, labels)
    res["generation"] = clf.generation_report_
    res["summary"] = clf.training_summary_
    log.info("%s: %s", name, {k: v for k, v in res.items() if k not in ("generation", "summary")})
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--examples-per-class", type=int, default=32)
    ap.add_argument("--strategy", default="direct", choices=["direct", "summaries"])
    ap.add_argument("--fresh", action="store_true", help="regenerate instead of reusing bench/out/")
    ap.add_argument("--no-write", action="store_true", help="print, don't update BENCHMARKS.md")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    emb, cache = get_embedder(None), EmbeddingCache()
    all_prompts = prompts()
    results = [
        run(d, all_prompts[d], args.examples_per_class, args.strategy, args.fresh, emb, cache) for d in args.datasets
    ]

    acc_rows = [
        [
            r["dataset"],
            r["zero_shot"]["macro_f1"],
            r["probe_8"]["macro_f1"],
            r["prompt"]["macro_f1"],
            f"{100 * (r['prompt']['macro_f1'] - r['zero_shot']['macro_f1']):+.1f}",
            r["probe_full"]["macro_f1"],
            r["prompt"]["accuracy"],
        ]
        for r in results
    ]
    gen_rows = []
    for r in results:
        g = r["generation"]
        gen_rows.append(
            [
                r["dataset"],
                g["calls"],
                g["prompt_tokens"] + g["completion_tokens"],
                f"{g['seconds']:.0f}",
                g["kept"],
                g["kept_ratio"],
                r["summary"]["dropped_by_confident_learning"],
            ]
        )
    cal_rows = [
        [r["dataset"], f"{100 * r['abstain_coverage']:.0f}%", r["abstain_precision"], r["prompt"]["accuracy"]]
        for r in results
    ]
    cmd = "make bench  # or: .venv/bin/python bench/accuracy.py --examples-per-class " + str(args.examples_per_class)
    body = f"""## Accuracy from a prompt alone

{dt.date.today().isoformat()}, {machine()}. Regenerate with `{cmd}`
(`--fresh` to regenerate the synthetic data too; otherwise bench/out/ is reused).
Macro-F1 on a fixed sample of at most {results[0]["n_test"] if results else 1000} test rows per dataset; all columns use
the packaged all-MiniLM-L6-v2. *zero-shot*: nearest class description. *probe-8* / *probe-full*: the same
head on 8 real labelled examples per class / on the whole train split (the ceiling for this embedder).
*prompt*: `PromptClassifier(examples_per_class={args.examples_per_class}).prompt_train(descriptions)` with the default
local LLM (SmolLM2-135M), no labelled rows. Goal: prompt at least +5 points over zero-shot on every set.

{table(ACC_HEADER, acc_rows)}

Generation cost (default local LLM, 2 cores):

{table(GEN_HEADER, gen_rows)}

Calibration honesty: `predict(abstain=True)` at the default target precision 0.9 (thresholds set on
out-of-fold synthetic data), measured on the real test rows:

{table(["dataset", "rows answered", "precision on answered", "accuracy without abstaining"], cal_rows)}
"""
    print(body)
    if not args.no_write:
        write_section("accuracy", body)


if __name__ == "__main__":
    main()
