"""Issue 11, prompt-only fine-tuning: do more pairs help a small training set? From the prompt alone the
set is the descriptions and a few hundred generated examples: one pass of SetFit-style pairs is 5 to 15
training steps. `finetune.MIN_PAIRS` repeats the draws until a minimum (SetFit draws 20 pairs per example).

    .venv/bin/python bench/finetune_pairs.py 0,4000 trec6 sst2 ag_news emotion6

Prints, per dataset and minimum: macro-F1 of `PromptClassifier(finetune=True)` trained from the cached
generated examples (bench/accuracy.py), tuning steps and wall time of `prompt_train`.
"""

from __future__ import annotations

import logging
import sys
import time

from common import OUT, prompts, scores, test_sample

import promptclf.finetune as F
from promptclf import PromptClassifier
from promptclf.embedders import get_embedder


def main() -> None:
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb = get_embedder(None)
    minimums = [int(v) for v in sys.argv[1].split(",")]
    for name in sys.argv[2:]:
        texts, labels = test_sample(name)
        for mp in minimums:
            F.MIN_PAIRS = mp
            t = time.perf_counter()
            clf = PromptClassifier(embedder=emb, finetune=True, finetune_budget_s=300, progress=False)
            clf.load_examples(OUT / f"{name}-direct-n32.jsonl", include_pseudo=False)
            clf.prompt_train(prompts()[name], generate=False)
            f1 = scores(labels, clf.predict(texts))["macro_f1"]
            steps = clf.encoder_["report"]["steps"]
            print(f"{name} min_pairs={mp} f1={f1:.3f} steps={steps} {time.perf_counter() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
