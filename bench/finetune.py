"""Issue 11: does fine-tuning the encoder on what the classifier believes pass the frozen-encoder
ceiling, and what does it cost? Uses the generated examples cached by bench/accuracy.py (bench/out/).

    .venv/bin/python bench/finetune.py [--budget 300] [--datasets sst2 ag_news trec6 emotion6 newsgroups_long]
                                       [--co-training] [--no-write]

Per dataset, in a child process of its own (so its peak RSS is its own), everything through the public
API on the same cached generated examples: prompt only, frozen and `finetune=True`; prompt + up to 5,000
unlabeled train texts (labels hidden), frozen and `finetune=True` (pseudo-labels from the frozen
encoder, fine-tune, relabel with the tuned encoder, head on its vectors); optionally the same with the
TF-IDF second view (co-training) on. Cost of the fine-tuned run with unlabeled texts: `train()` wall
time end to end, the child's peak RSS, the `.clf` size against the frozen model's, and the predict
throughput of both files loaded as production loads them (ONNX Runtime, no PyTorch for the tuned graph).
emotion6 (a GoEmotions stand-in for a held-back set, bench/common.py) and newsgroups_long are not dev
sets: they check that a default chosen on the dev sets holds elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    OUT,
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

POOL = 5000
HEADER = [
    "dataset", "prompt", "prompt, ft", "Δ pts", "+ unlabeled", "+ unlabeled, ft", "Δ pts", "co-training, ft",
    "probe-full", "train s (ft)", "ft steps", "peak RSS MiB", ".clf MB frozen / ft", "predict ft / frozen",
]  # fmt: skip


def model(emb, cache, descs, path, **settings):
    from promptclf import PromptClassifier

    clf = PromptClassifier(embedder=emb, progress=False, **{"finetune": False, **settings})  # frozen unless asked
    if cache is not None:
        clf.use_embedding_cache(cache)
    clf.load_examples(path, include_pseudo=False)  # the accuracy run stored its pseudo-labels there too
    return clf.prompt_train(descs, generate=False)


def throughput(path: Path, texts: list[str]) -> float:
    """Texts per second of a loaded file's predict (best of 3, after a warm-up call)."""
    from promptclf import PromptClassifier

    clf = PromptClassifier.load(path)
    clf.predict(texts[:32])
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        clf.predict(texts)
        best = max(best, len(texts) / (time.perf_counter() - t))
    return best


def one(name: str, budget: float, co_training: bool) -> dict:
    from promptclf import PromptClassifier, selftrain
    from promptclf.embedders import EmbeddingCache, get_embedder

    descs = prompts()[name]
    texts, labels = test_sample(name)
    path = OUT / f"{name}-direct-n32.jsonl"
    if not path.exists():
        raise SystemExit(f"{path} missing: run bench/accuracy.py --datasets {name} first (it caches the examples)")
    train = read_rows(name, "train")
    pool = [r["text"] for r in pool_rows(train, POOL)]
    emb, cache = get_embedder(None), EmbeddingCache()

    def f1(clf) -> float:
        return scores(labels, clf.predict(texts))["macro_f1"]

    res: dict = {"dataset": name, "pool": len(pool)}
    res["prompt"] = f1(model(emb, cache, descs, path))
    res["prompt_ft"] = f1(model(emb, None, descs, path, finetune=True, finetune_budget_s=budget).train())
    frozen = model(emb, cache, descs, path).train(unlabeled=pool)
    res["unlabeled"] = f1(frozen)
    tuned = model(emb, None, descs, path, finetune=True, finetune_budget_s=budget)
    t = time.perf_counter()
    tuned.train(unlabeled=pool)
    res["train_s"] = time.perf_counter() - t
    res["unlabeled_ft"] = f1(tuned)
    res["steps"] = tuned.encoder_["report"]["steps"]
    res["fallback"] = tuned.self_training_report_["guard"]["fallback"]
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "frozen.clf", Path(d) / "tuned.clf"
        frozen.save(a)
        tuned.save(b)
        res["clf_mb"] = (a.stat().st_size / 1e6, b.stat().st_size / 1e6)
        res["predict_ratio"] = throughput(b, texts) / throughput(a, texts)
    if co_training:
        selftrain.SECOND_VIEW = True
        cotrained = model(emb, None, descs, path, finetune=True, finetune_budget_s=budget)
        res["cotrain_ft"] = f1(cotrained.train(unlabeled=pool))
        selftrain.SECOND_VIEW = False
    full = PromptClassifier(embedder=emb, progress=False).use_embedding_cache(cache)
    for label, xs in per_class_sample(train, 10**9).items():  # as bench/accuracy.py's probe-full
        full.add_data_to_class(label, xs)
    res["probe_full"] = f1(full.train())
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6", "newsgroups_long"])
    ap.add_argument(
        "--co-training",
        nargs="*",
        default=[],
        metavar="DATASET",
        help="also fine-tune with the TF-IDF second view on, for these datasets",
    )
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one dataset, print JSON
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    if args.one:
        print("RESULT " + json.dumps(one(args.one, args.budget, args.one in args.co_training)), flush=True)
        return
    results = []
    for name in args.datasets:
        cmd = [sys.executable, __file__, "--one", name, "--budget", str(args.budget)]
        cmd += ["--co-training", *args.co_training] if args.co_training else []
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        line = next((s for s in out.stdout.splitlines() if s.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(line[7:]))
        logging.info("%s", results[-1])
    rows = []
    for r in results:
        rows.append([
            r["dataset"] + ("" if r["pool"] >= POOL else f" (pool {r['pool']:,})"),
            r["prompt"], r["prompt_ft"], f"{100 * (r['prompt_ft'] - r['prompt']):+.1f}",
            r["unlabeled"], r["unlabeled_ft"], f"{100 * (r['unlabeled_ft'] - r['unlabeled']):+.1f}",
            r.get("cotrain_ft", "not run"), r["probe_full"], f"{r['train_s']:.0f}", r["steps"],
            f"{r['peak_rss_mib']:.0f}", f"{r['clf_mb'][0]:.1f} / {r['clf_mb'][1]:.1f}", f"{r['predict_ratio']:.2f}",
        ])  # fmt: skip
    cmd = f".venv/bin/python bench/finetune.py --budget {args.budget:g}"
    cmd += " --co-training " + " ".join(args.co_training) if args.co_training else ""
    body = (
        "## Fine-tuning the encoder (issue 11)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `{cmd}` (after bench/accuracy.py,\n"
        "which caches the generated examples). Macro-F1 on the accuracy table's test samples, through the\n"
        "public API. *ft*: `PromptClassifier(finetune=True)`: the packaged MiniLM fine-tuned (sentence-\n"
        "transformers' trainer, SetFit-style pairs, `CosineSimilarityLoss`, 1 epoch, sequences cut at 64\n"
        f"tokens, batch 32, lr 2e-5, budget {args.budget:g} s) on descriptions and generated examples (prompt\n"
        "only) plus the frozen model's pseudo-labels (+ unlabeled: up to 5,000 train texts, labels hidden),\n"
        "then the pool relabelled and the head fit on the tuned vectors. *co-training, ft*: the same with the\n"
        "TF-IDF second view choosing the pseudo-labels. *probe-full*: the frozen encoder with every real\n"
        "train label (the ceiling to pass). Cost columns are for *+ unlabeled, ft*: `train()` wall time, the\n"
        "peak RSS of the process that ran this row, file sizes, and the predict throughput of the loaded\n"
        "tuned file over the loaded frozen one (both on ONNX Runtime, same texts, same run). emotion6 and\n"
        "newsgroups_long are not dev sets (bench/common.py says what emotion6 is).\n\n" + table(HEADER, rows) + "\n"
    )
    publish("finetune", body, not args.no_write)


if __name__ == "__main__":
    main()
