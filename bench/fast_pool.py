"""Issue 16: does the static head learn the model's answers on the unlabeled pool (``cascade.POOL_ANSWERS``),
or does the pool only bound it, as before?

    .venv/bin/python bench/fast_pool.py DIR [sst2 ag_news trec6 emotion6] [--rounds 3] [--no-write]

DIR holds unlabeled-mode models as the default flow makes them, saved by ``bench/finetune_rounds.py <set>
default --examples <set>-direct-nauto.jsonl --save DIR`` (files ``DIR/<set>-default.clf``). Each is loaded
as a user would load it (ONNX int8 serving) and its fast path fitted again the way ``train(unlabeled=pool)``
fits it (the model's own ``_fit_fast`` on its training rows and the same 5,000-text pool), with the switch
off (before: the static head fit on the training rows, the pool only bounding its threshold) and on (now),
at the bound of the default ``fast="auto"`` (1%) and of ``fast=True`` (2%). The main model is the same in
every row. Macro-F1 of the loaded model's ``predict`` on the fixed test sample, the share of those texts the
static head answered, and the speed: ``predict`` of the test sample each way and raw PyTorch
``SentenceTransformer.encode`` of the same texts (batch 64), taking turns for ``--rounds`` rounds; medians.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import (
    answered_share,
    machine,
    pool_texts,
    publish,
    rates_taking_turns,
    scores,
    table,
    test_sample,
)

import promptclf.cascade as cascade

POOL = 5000
HEADER = ["dataset", "bound", "static head fit on", "macro-F1", "Δ pts vs off", "static share (test)",
          "static share (estimated at training)", "texts/s (vs raw PyTorch)"]  # fmt: skip
FIT_ON = {False: "training rows (before)", True: "+ the pool, with the model's answers"}


def rows_for(path: Path, name: str, raw, rounds: int) -> list[list[object]]:
    from promptclf import PromptClassifier

    clf = PromptClassifier.load(path)
    clf.progress = False
    texts, labels = test_sample(name)
    pool = pool_texts(name, POOL)
    train_texts, y, sources = clf._training_set()
    ways = {}
    for bound, fast in (("1% (default)", "auto"), ("2% (`fast=True`)", True)):
        for value in (False, True):
            cascade.POOL_ANSWERS = value
            clf.fast = fast
            ways[bound, value] = clf._fit_fast(train_texts, y, sources, pool)
    cascade.POOL_ANSWERS = True

    def serve(way):
        clf.fast = way is not None
        if way is not None:
            clf.fast_ = ways[way]
        return clf

    fns = {"raw": lambda: raw.encode(texts, batch_size=64, normalize_embeddings=True)}
    fns |= {way: lambda way=way: serve(way).predict(texts) for way in (None, *ways)}
    speed = rates_taking_turns(fns, len(texts), rounds)
    off = scores(labels, list(serve(None).predict(texts)))["macro_f1"]
    out = [[name, "", "fast path off", f"{off:.3f}", "", "", "",
            f"{speed[None]:.0f} ({speed[None] / speed['raw']:.2f}x)"]]  # fmt: skip
    for (bound, value), fast in ways.items():
        m = serve((bound, value))
        f1 = scores(labels, list(m.predict(texts)))["macro_f1"]
        out.append([name, bound, FIT_ON[value], f"{f1:.3f}", f"{100 * (f1 - off):+.1f}",
                    f"{answered_share(m, texts):.0%}", f"{fast.estimate['share']:.0%}",
                    f"{speed[bound, value]:.0f} ({speed[bound, value] / speed['raw']:.2f}x)"])  # fmt: skip
    for row in out:
        print(" | ".join(map(str, row)), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("sets", nargs="*", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    from promptclf.embedders.local import resolve_model_path

    raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    raw.encode(["warm up"] * 64, batch_size=64)
    rows = [r for name in args.sets for r in rows_for(args.dir / f"{name}-default.clf", name, raw, args.rounds)]
    body = f"""## The static head learns the model's answers on the pool (issue 16)

{time.strftime("%Y-%m-%d")}, {machine()}. Regenerate with `.venv/bin/python bench/fast_pool.py DIR`
(DIR: the models `bench/finetune_rounds.py <set> default --examples <set>-direct-nauto.jsonl --save DIR`
saves). Each unlabeled-mode model (the prompt, then `train(unlabeled=...)` with 5,000 train texts, labels
hidden; the encoder fine-tuned) is loaded as a user would (ONNX int8 serving) and its fast path fitted
again as that `train` fits it, on the same rows and pool: the static head fit on the training rows with
the pool only bounding its threshold (before), or fit on the pool too, each pool text labelled with the
main model's answer, the threshold then chosen on its out-of-fold probabilities (`cascade.POOL_ANSWERS`,
now). Macro-F1 of `predict` on the fixed test sample; *static share*: test texts the static head
answered, and as training estimated it; speed: `predict` of the test sample against raw PyTorch
`SentenceTransformer.encode` of the same texts (batch 64), taking turns for {args.rounds} rounds, medians.
emotion6 is held out from the dev sets (its pool is its 659 train texts).

{table(HEADER, rows)}
"""
    publish("fast-pool", body, not args.no_write)


if __name__ == "__main__":
    main()
