"""Issue 11, prompt-only fine-tuning: do more pairs help a small training set? From the prompt alone the
set is the descriptions and a few hundred generated examples: one pass of SetFit-style pairs is 5 to 15
training steps. `finetune.MIN_PAIRS` repeats the draws until a minimum (SetFit draws 20 pairs per example).

    .venv/bin/python bench/finetune_pairs.py 0,4000,200/pair trec6 sst2 ag_news emotion6 [--per-class 32]
        [--budget-s 300]

A minimum `N/pair` sets `finetune.MIN_PAIRS_PER_CLASS_PAIR` instead: N pairs per pair of classes.

Prints, per dataset and minimum: macro-F1 of `PromptClassifier(finetune=True)` trained from the cached
generated examples (bench/generators.py makes them, `--per-class` of them per class), points over the
zero-shot description match, tuning steps and wall time of `prompt_train`.
"""

from __future__ import annotations

import argparse
import logging
import time

from accuracy import zero_shot
from common import OUT, prompts, scores, test_sample

import promptclf.finetune as F
from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("minimums", help="comma-separated MIN_PAIRS values (0: one pass) or N/pair per pair of classes")
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--per-class", type=int, default=32, help="which cached example file: n per class")
    ap.add_argument("--budget-s", type=float, default=300, help="finetune_budget_s")
    args = ap.parse_args()
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb, cache = get_embedder(None), EmbeddingCache()
    for name in args.datasets:
        texts, labels = test_sample(name)
        descs = prompts()[name]
        zs = scores(labels, zero_shot(emb, cache, descs, emb.embed(texts, cache=cache)))["macro_f1"]
        for mp in args.minimums.split(","):
            per_pair = mp.endswith("/pair")
            F.MIN_PAIRS = 0 if per_pair else int(mp)
            F.MIN_PAIRS_PER_CLASS_PAIR = int(mp.removesuffix("/pair")) if per_pair else 0
            t = time.perf_counter()
            clf = PromptClassifier(embedder=emb, finetune=True, finetune_budget_s=args.budget_s, progress=False)
            clf.use_embedding_cache(cache)
            clf.load_examples(OUT / f"{name}-direct-n{args.per_class}.jsonl", include_pseudo=False)
            clf.prompt_train(descs, generate=False)
            f1 = scores(labels, clf.predict(texts))["macro_f1"]
            rep = clf.encoder_["report"]
            print(
                f"{name} n={args.per_class} min_pairs={mp} zero-shot={zs:.3f} f1={f1:.3f} "
                f"({100 * (f1 - zs):+.1f}) pairs={rep['pairs']} steps={rep['steps']} "
                f"budget_hit={rep['stopped_by_budget']} "
                f"{time.perf_counter() - t:.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
