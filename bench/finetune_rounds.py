"""Issue 11, unlabeled mode: do the fine-tuning budget, a second outer round, more pseudo-labels or another loss change
the result?

    .venv/bin/python bench/finetune_rounds.py ag_news [default budget600 rounds2 keep70 minpairs0 triplet]
        [triplet:m0.5:e1 confident2 distill distill150] [--per-class 32] [--save DIR]

One dataset, one child process per variant (each its own fresh state). Each variant: the head on the
cached generated examples (bench/accuracy.py makes them) with the encoder frozen, then
`train(unlabeled=...)` on the accuracy run's pool (5,000 train texts, labels hidden) with the default
`finetune="auto"`, which fine-tunes. Variants: *default*; *budgetN*: `finetune_budget_s=N`; *rounds2*:
`classifier.OUTER_ROUNDS = 2` (tune, relabel the pool, tune again from the base on the new labels,
relabel); *keepNN*: self-training keeps the most confident NN% of each class's pool texts
(`selftrain.KEEP_FRACTION`, default 50); *minpairs0*: no per-pair-of-classes minimum
(`finetune.MIN_PAIRS_PER_CLASS_PAIR = 0`); *triplet*: `finetune.LOSS = "triplet"` (BatchAllTripletLoss),
with options `:mX` (margin X, default `TRIPLET_MARGIN`) and `:eN` (N epochs, default `TRIPLET_EPOCHS`);
*confident2*: pseudo-labels at or over their class's median confidence anchor twice as many pairs;
*distill*: `distill=True` (the tuned encoder then distilled into half its layers, issue 16); *distillN*:
the same with the distillation alone stopped after N seconds (fine-tuning keeps its budget). ``--save DIR``
keeps each variant's model as ``DIR/<dataset>-<variant>.clf``.
Prints per variant: macro-F1 on the accuracy table's test sample, wall seconds of `train`, the tuning
report (pairs, steps, seconds, whether the budget stopped it) and self-training's rounds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import pool_rows, prompt_model, read_rows, scores, test_sample

POOL = 5000


def weigh_confident_pseudo_labels(clf, F) -> None:
    """*confident2*: in the fine-tuning pairs, a pseudo-label at or over its class's median confidence
    anchors twice as many pairs as the rest (trust 2 instead of 1); the head and self-training unchanged.
    Wraps `finetune.finetune`, which the classifier imports when it tunes."""
    plain = F.finetune
    F.TRUST["pseudo_confident"] = 2

    def weighted(model_path, texts, labels, sources, **kw):
        conf = {(e.text, e.class_name): e.meta.get("confidence", 0.0) for e in clf._store.examples(("pseudo",))}
        by_class: dict[str, list[float]] = {}
        for (_, c), p in conf.items():
            by_class.setdefault(c, []).append(p)
        median = {c: sorted(v)[len(v) // 2] for c, v in by_class.items()}
        sources = [
            "pseudo_confident" if s == "pseudo" and conf.get((t, c), 0.0) >= median.get(c, 1.0) else s
            for t, c, s in zip(texts, labels, sources)
        ]
        return plain(model_path, texts, list(labels), sources, **kw)

    F.finetune = weighted


def one(name: str, per_class: int, variant: str, save: Path | None = None) -> dict:
    import promptclf.classifier as K
    import promptclf.finetune as F
    import promptclf.selftrain as S
    from promptclf.embedders import EmbeddingCache, get_embedder

    named = ("default", "rounds2", "minpairs0", "confident2", "distill")
    known = variant in named or variant.split(":")[0] == "triplet"
    numbered = ("budget", "keep", "distill")
    if not (known or any(variant.startswith(p) and variant.removeprefix(p).isdigit() for p in numbered)):
        raise SystemExit(f"unknown variant {variant!r}")
    emb, cache = get_embedder(None), EmbeddingCache()
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    pool = [r["text"] for r in pool_rows(train, POOL)]
    clf = prompt_model(name, per_class, cache, embedder=emb)
    clf.set_params(finetune="auto")
    if variant.startswith("budget"):
        clf.set_params(finetune_budget_s=float(variant.removeprefix("budget")))
    elif variant == "rounds2":
        K.OUTER_ROUNDS = 2
    elif variant.startswith("keep"):
        S.KEEP_FRACTION = int(variant.removeprefix("keep")) / 100
    elif variant == "minpairs0":
        F.MIN_PAIRS_PER_CLASS_PAIR = 0
    elif variant.startswith("triplet"):
        F.LOSS = "triplet"
        for opt in variant.split(":")[1:]:  # triplet:m0.5:e1 = margin 0.5, one epoch
            if opt[0] == "m":
                F.TRIPLET_MARGIN = float(opt[1:])
            elif opt[0] == "e":
                F.TRIPLET_EPOCHS = int(opt[1:])
    elif variant == "confident2":
        weigh_confident_pseudo_labels(clf, F)
    elif variant == "distill":
        clf.set_params(distill=True)
    elif variant.startswith("distill"):
        import promptclf.distill as D

        clf.set_params(distill=True)
        seconds, full = float(variant.removeprefix("distill")), D.distill
        D.distill = lambda *a, budget_s, **k: full(*a, budget_s=min(budget_s, seconds), **k)
    t0 = time.perf_counter()
    clf.train(unlabeled=pool)
    st = clf.self_training_report_
    if save is not None:  # for looking at the model afterwards (head-side experiments on its vectors)
        clf.save(save / f"{name}-{variant}.clf")
    return {
        "variant": variant,
        "macro_f1": round(scores(labels, clf.predict(texts))["macro_f1"], 4),
        "train_s": round(time.perf_counter() - t0),
        "finetune": {k: v for k, v in clf.encoder_["report"].items() if k != "settings"},
        "self_training_rounds": st.get("rounds"),
        "pseudo_labels": st.get("pseudo_labels"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("variants", nargs="*", default=["default", "budget600", "rounds2"])
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--save", type=Path, help="save each variant's model in this folder as <dataset>-<variant>.clf")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.dataset, args.per_class, args.one, args.save)))
        return
    for v in args.variants:
        cmd = [sys.executable, str(Path(__file__)), args.dataset, "--per-class", str(args.per_class), "--one", v]
        cmd += ["--save", str(args.save)] if args.save else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
