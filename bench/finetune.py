"""Issue 11, first question: does fine-tuning the encoder on what the classifier believes pass the
frozen-encoder ceiling? Uses the generated examples cached by bench/accuracy.py (bench/out/).

    .venv/bin/python bench/finetune.py [--budget 240] [--datasets sst2 ag_news trec6] [--no-write]

Per dataset: the default model with 5,000 unlabeled train texts (frozen MiniLM, as in the accuracy
table); then the encoder fine-tuned (SetFit-style pairs, CosineSimilarityLoss) on the descriptions,
generated examples and that model's pseudo-labels; then the head and self-training again on the
fine-tuned vectors (one outer round, as PESCO does). Also prompt-only: fine-tuned on descriptions and
generated examples alone. Macro-F1 on the same fixed test sample.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from common import OUT, SEED, machine, per_class_sample, prompts, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.embedders.local import resolve_model_path
from promptclf.finetune import finetune, finetuned_embedder

log = logging.getLogger("bench")
POOL = 5000
HEADER = ["dataset", "prompt", "prompt, ft", "Δ pts", "s", "+ unlabeled", "+ unlabeled, ft", "Δ pts", "s",
          "ft steps", "probe-full"]  # fmt: skip


def base_model(emb, cache, descs, path, pool=None) -> PromptClassifier:
    clf = PromptClassifier(embedder=emb, progress=False).use_embedding_cache(cache)
    clf.load_examples(path, include_pseudo=False)  # the accuracy run stored its pseudo-labels there too
    clf.prompt_train(descs, generate=False)
    return clf.train(unlabeled=pool) if pool is not None else clf


def tuned(clf: PromptClassifier, budget: float, name: str):
    texts, labels, sources = clf.training_data()  # descriptions, generated, pseudo-labels, with provenance
    model, rep = finetune(resolve_model_path("all-MiniLM-L6-v2"), texts, labels, sources, budget_s=budget, seed=SEED)
    return finetuned_embedder(model, name), rep


def run(name: str, descs: dict[str, str], budget: float) -> dict:
    texts, labels = test_sample(name)
    path = OUT / f"{name}-direct-n32.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} missing: run bench/accuracy.py first (it caches the generated examples)")
    train = read_rows(name, "train")
    rows = [train[i] for i in np.random.default_rng(SEED).permutation(len(train))[:POOL]]
    pool = [r["text"] for r in rows]
    emb, cache = get_embedder(None), EmbeddingCache()
    res: dict = {"dataset": name}

    prompt_only = base_model(emb, cache, descs, path)
    res["prompt"] = scores(labels, prompt_only.predict(texts))["macro_f1"]
    t = time.perf_counter()
    ft_emb, rep = tuned(prompt_only, budget, f"{name}-prompt")
    ft = base_model(ft_emb, EmbeddingCache(), descs, path)
    res["prompt_ft"] = scores(labels, ft.predict(texts))["macro_f1"]
    res["prompt_ft_s"] = time.perf_counter() - t
    res["prompt_ft_report"] = rep.as_dict()

    frozen = base_model(emb, cache, descs, path, pool)
    res["unlabeled"] = scores(labels, frozen.predict(texts))["macro_f1"]
    t = time.perf_counter()
    ft_emb, rep = tuned(frozen, budget, f"{name}-unlabeled")
    ft = base_model(ft_emb, EmbeddingCache(), descs, path, pool)  # head + self-training on the new vectors
    res["unlabeled_ft"] = scores(labels, ft.predict(texts))["macro_f1"]
    res["unlabeled_ft_s"] = time.perf_counter() - t
    res["unlabeled_ft_report"] = rep.as_dict()
    res["fallback"] = ft.self_training_report_["guard"]["fallback"]

    full = PromptClassifier(embedder=emb, progress=False).use_embedding_cache(cache)
    for label, xs in per_class_sample(train, 10**9).items():  # as bench/accuracy.py's probe-full
        full.add_data_to_class(label, xs)
    res["probe_full"] = scores(labels, full.train().predict(texts))["macro_f1"]
    log.info("%s: %s", name, res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=240.0)
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    all_prompts = prompts()
    rows = []
    for name in args.datasets:
        r = run(name, all_prompts[name], args.budget)
        d_prompt = f"{100 * (r['prompt_ft'] - r['prompt']):+.1f}"
        d_unlabeled = f"{100 * (r['unlabeled_ft'] - r['unlabeled']):+.1f}"
        rows.append([
            name, r["prompt"], r["prompt_ft"], d_prompt, f"{r['prompt_ft_s']:.0f}",
            r["unlabeled"], r["unlabeled_ft"], d_unlabeled, f"{r['unlabeled_ft_s']:.0f}",
            r["unlabeled_ft_report"]["steps"], r["probe_full"],
        ])  # fmt: skip
    body = (
        "## Fine-tuning the encoder (issue 11, first measurement)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with "
        f"`.venv/bin/python bench/finetune.py --budget {args.budget:g}` (after bench/accuracy.py).\n"
        "Macro-F1, same test samples and cached generated examples as the accuracy table. *ft*: the packaged\n"
        "MiniLM fine-tuned (sentence-transformers' trainer, SetFit-style pairs with `CosineSimilarityLoss`,\n"
        "1 epoch, sequences cut at 64 tokens, batch 32, lr 2e-5, time budget above) on what the model believes:\n"
        "descriptions and generated examples (prompt only), plus the frozen model's pseudo-labels (+ unlabeled);\n"
        "then head and self-training again on the fine-tuned vectors. *s*: fine-tune + re-embed + retrain\n"
        "wall time on 2 cores. *probe-full*: the frozen encoder with every real train label (the ceiling).\n\n"
        + table(HEADER, rows)
        + "\n"
    )
    publish("finetune", body, not args.no_write)


if __name__ == "__main__":
    main()
