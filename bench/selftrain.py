"""Self-training variants (issue 11, items 3-4), on the cached generated examples and 5,000 unlabeled
train texts per dev set, frozen MiniLM. Seconds per dataset once the pool is embedded.

    .venv/bin/python bench/selftrain.py [--no-write]

*default*: as shipped. *prior in rounds*: the self-training rounds refit with the zero-shot prior, as
the base and final models do. *co-training*: a TF-IDF word + character n-gram view, retrained each
round on the anchors and the pseudo-labels both views agreed on before; a pseudo-label is kept only where
both views agree. *cluster refinement*: X-Class's Gaussian mixture on the pool relabels it before the
first round. *retrieval*: the anchors as queries, their nearest pool texts seed the first round.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from common import OUT, machine, pool_rows, prompts, publish, read_rows, scores, table, test_sample

import promptclf.selftrain as st
from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder

VARIANTS = {
    "default": {},
    "prior in rounds": {"PRIOR_IN_ROUNDS": True},
    "co-training": {"SECOND_VIEW": True},
    "cluster refinement": {"CLUSTER_REFINE": True},
    "retrieval": {"RETRIEVAL": True},
}


def run(name: str, descs: dict[str, str], emb, cache) -> dict:
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    rows = pool_rows(train, 5000)
    pool, truth = [r["text"] for r in rows], {r["text"]: r["label"] for r in rows}
    out = {}
    for variant, flags in VARIANTS.items():
        saved = {k: getattr(st, k) for k in flags}
        for k, v in flags.items():
            setattr(st, k, v)
        try:
            t = time.perf_counter()
            clf = PromptClassifier(embedder=emb, finetune=False, progress=False).use_embedding_cache(cache)
            clf.load_examples(OUT / f"{name}-direct-n32.jsonl", include_pseudo=False)
            clf.prompt_train(descs, generate=False, unlabeled=pool)
            seconds = time.perf_counter() - t
        finally:
            for k, v in saved.items():
                setattr(st, k, v)
        pseudo = [(x, c) for c, xs in clf.get_data(include_generated=False, include_pseudo=True).items() for x in xs]
        rep = clf.self_training_report_
        out[variant] = {
            "f1": scores(labels, clf.predict(texts))["macro_f1"],
            "n": len(pseudo),
            "acc": float(np.mean([truth[x] == c for x, c in pseudo])) if pseudo else float("nan"),
            "fallback": rep["guard"]["fallback"],
            "s": seconds,
        }
        logging.info("%s %s: %s", name, variant, out[variant])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6", "newsgroups_long"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb, cache = get_embedder(None), EmbeddingCache()
    rows = []
    for name in args.datasets:
        res = run(name, prompts()[name], emb, cache)
        for variant, r in res.items():
            fb = "yes" if r["fallback"] else "no"
            rows.append([name, variant, r["f1"], r["n"], r["acc"], fb, f"{r['s']:.0f}"])
    body = (
        "## Self-training variants (issue 11)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/selftrain.py`\n"
        "(after bench/accuracy.py, whose cached generated examples it uses). Prompt + 5,000 unlabeled train texts,\n"
        "frozen MiniLM, macro-F1 on the accuracy table's test samples; pseudo-label accuracy against the hidden\n"
        "labels. *prior in rounds*: self-training rounds refit with the zero-shot prior (the base and final\n"
        "models always have it). *co-training*: a TF-IDF word (1-2) + character (2-5) n-gram logistic\n"
        "regression, retrained each round on the anchors and the pseudo-labels both views agreed on before; a\n"
        "pseudo-label is kept only where both views agree. *cluster refinement*: X-Class's class-oriented\n"
        "clustering, a Gaussian mixture (a component per class, tied covariance) on the pool's 64 leading\n"
        "principal components, started at the class means under the base model's labels; its posterior picks\n"
        "the first round's pseudo-labels. *retrieval*: each anchor (description, generated example) as a\n"
        "query, its 5 nearest pool texts inherit its class (class-balanced) and seed the first round.\n"
        "*s*: the first variant includes embedding the pool. emotion6 and newsgroups_long are not dev sets\n"
        "(pools of 660 and 1,471 texts).\n\n"
        + table(["dataset", "variant", "macro-F1", "pseudo-labels", "their accuracy", "guard fell back", "s"], rows)
        + "\n"
    )
    publish("selftrain", body, not args.no_write)


if __name__ == "__main__":
    main()
