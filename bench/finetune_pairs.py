"""Issue 11, prompt-only fine-tuning: do more pairs help a small training set? From the prompt alone the
set is the descriptions and a few hundred generated examples: one pass of SetFit-style pairs is 5 to 15
training steps. `finetune.MIN_PAIRS` repeats the draws until a minimum (SetFit draws 20 pairs per example).

    .venv/bin/python bench/finetune_pairs.py 0,4000,200/pair trec6 sst2 ag_news emotion6 [--per-class 32]
        [--first 32,64,96] [--classes joy,sadness] [--budget-s 300] [--loss triplet --epochs 4]

A minimum `N/pair` sets `finetune.MIN_PAIRS_PER_CLASS_PAIR` instead: N pairs per pair of classes.
`--first`: train on the first N generated examples per class of the `--per-class` file, each N in turn
(a file is generated in order, and a larger count tops up a smaller file, so its first N per class are
what a run of N per class keeps). `--classes`: a task of only these classes (descriptions, generated
examples and test rows of the others left out), e.g. a two-class task carved from a held-back set.
`--loss triplet`: `finetune.LOSS = "triplet"` (BatchAllTripletLoss on the examples, no pairs: the minimum
is then ignored) for `--epochs` epochs (default `finetune.TRIPLET_EPOCHS`).

Prints, per dataset and minimum: macro-F1 of `PromptClassifier(finetune=True)` trained from the cached
generated examples (bench/generators.py makes them, `--per-class` of them per class), points over the
zero-shot description match, tuning steps and wall time of `prompt_train`.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from accuracy import zero_shot
from common import OUT, scores, task

import promptclf.finetune as F
from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder


def first_per_class(src: Path, n: int | None, classes: list[str] | None, dst: Path) -> Path:
    """The first ``n`` generated examples per class of a cached example file (of ``classes`` only), as a
    new file (pseudo-labels that runs with a pool saved there are left out, as ``include_pseudo=False`` does)."""
    taken: dict[str, int] = {}
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for line in f:
            row = json.loads(line)
            c = row["class_name"]
            if row.get("source", "generated") != "generated" or (classes is not None and c not in classes):
                continue
            room = len(row["examples"]) if n is None else max(0, n - taken.get(c, 0))
            if room:
                row["examples"] = row["examples"][:room]
                taken[c] = taken.get(c, 0) + len(row["examples"])
                out.write(json.dumps(row) + "\n")
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("minimums", help="comma-separated MIN_PAIRS values (0: one pass) or N/pair per pair of classes")
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--per-class", type=int, default=32, help="which cached example file: n per class")
    ap.add_argument("--first", default=None, help="comma-separated: train on the first N examples per class")
    ap.add_argument("--classes", default=None, help="comma-separated: a task of only these classes")
    ap.add_argument("--budget-s", type=float, default=300, help="finetune_budget_s")
    ap.add_argument("--loss", choices=["pairs", "triplet"], default="pairs", help="finetune.LOSS")
    ap.add_argument("--epochs", type=int, default=None, help="finetune.TRIPLET_EPOCHS (with --loss triplet)")
    args = ap.parse_args()
    F.LOSS = args.loss
    if args.epochs is not None:
        F.TRIPLET_EPOCHS = args.epochs
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb, cache = get_embedder(None), EmbeddingCache()
    only = args.classes.split(",") if args.classes else None
    firsts = [int(n) for n in args.first.split(",")] if args.first else [None]
    tmp = Path(tempfile.mkdtemp())
    for name in args.datasets:
        _, descs, texts, labels = task(name if only is None else f"{name}:{args.classes}")
        zs = scores(labels, zero_shot(emb, cache, descs, emb.embed(texts, cache=cache)))["macro_f1"]
        for mp, first in ((m, f) for m in args.minimums.split(",") for f in firsts):
            examples = first_per_class(OUT / f"{name}-direct-n{args.per_class}.jsonl", first, only, tmp / "ex.jsonl")
            per_pair = mp.endswith("/pair")
            F.MIN_PAIRS = 0 if per_pair else int(mp)
            F.MIN_PAIRS_PER_CLASS_PAIR = int(mp.removesuffix("/pair")) if per_pair else 0
            t = time.perf_counter()
            clf = PromptClassifier(embedder=emb, finetune=True, finetune_budget_s=args.budget_s, progress=False)
            clf.use_embedding_cache(cache)
            clf.load_examples(examples, include_pseudo=False)
            clf.prompt_train(descs, generate=False)
            f1 = scores(labels, clf.predict(texts))["macro_f1"]
            rep = clf.encoder_["report"]
            print(
                f"{name}{'' if only is None else ':' + args.classes} n={first or args.per_class} min_pairs={mp} "
                f"loss={rep['settings']['loss']} epochs={rep['settings']['epochs']} "
                f"zero-shot={zs:.3f} f1={f1:.3f} "
                f"({100 * (f1 - zs):+.1f}) pairs={rep['pairs']} steps={rep['steps']} "
                f"budget_hit={rep['stopped_by_budget']} "
                f"{time.perf_counter() - t:.0f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
