"""Multi-label classes (goemotions) and long documents (newsgroups_long): issue 15.

    .venv/bin/python bench/multilabel.py [--part multilabel longdocs] [--pool 5000] [--examples 16]
        [--no-write]

Generated examples come from bench/out/{goemotions-direct-n16,newsgroups_long-direct-n32}.jsonl. The
GoEmotions file is made here if missing (or topped up), with the default local LLM and
`PromptClassifier(multi_label=True, examples_per_class=N).prompt_train(prompts)`, its cost kept beside it;
the newsgroups file is bench/generators.py's. Test rows: a fixed sample of at most 1,000 (seed 0). Pools:
train-split texts, labels hidden.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
from common import SEED, machine, prompts, publish, read_rows, table
from generators import generate, store_path

from promptclf import PromptClassifier, multilabel
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.errors import GenerationError
from promptclf.generation import pipeline
from promptclf.store import ExampleStore

ML_HEADER = ["model", "micro-F1", "macro-F1", "labels / text", "texts with none", "s"]
LONG_HEADER = ["model", "truncate", "chunk", "Δ pts"]
COST_HEADER = ["mode", "texts/s", "tokens/s", "chunks / text", "relative texts/s"]


def sample(rows: list[dict[str, str]], n: int = 1000) -> list[dict[str, str]]:
    idx = np.random.default_rng(SEED).permutation(len(rows))[:n]
    return [rows[i] for i in idx]


def ml_scores(classes: list[str], truth: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    mlb = MultiLabelBinarizer(classes=classes)
    Yt, Yp = mlb.fit_transform(truth), mlb.transform(pred)
    return {
        "micro": float(f1_score(Yt, Yp, average="micro", zero_division=0)),
        "macro": float(f1_score(Yt, Yp, average="macro", zero_division=0)),
        "per_text": float(Yp.sum(1).mean()),
        "none": float((Yp.sum(1) == 0).mean()),
    }


def classifier(emb, cache, descs, store, **settings) -> PromptClassifier:
    clf = PromptClassifier(embedder=emb, progress=False, **{"finetune": False, **settings}).use_embedding_cache(cache)
    if store is not None and store.exists():
        clf.load_examples(store, include_pseudo=False)
    clf.prompts_ = dict(descs)
    return clf


def generated(emb, cache, descs: dict[str, str], n: int) -> tuple[Path, dict]:
    """The cached multi-label examples (made or topped up now by bench/generators.py's ``generate``),
    and what making them cost in all (empty if unknown)."""
    path = store_path("goemotions", "smollm2", n)
    try:
        cost = generate("goemotions", descs, "smollm2", n, emb, cache, multi_label=True)
    except GenerationError as e:  # a class with nothing kept: the others are stored and still count
        print("generation:", str(e).split(";")[0], flush=True)
        spent = path.with_suffix(".cost.json")
        cost = json.loads(spent.read_text()) if spent.exists() else {}
    return path, cost if cost.get("kept") is not None else {}


def run_multilabel(emb, cache, pool_size: int, n_examples: int) -> tuple[str, str]:
    descs = prompts()["goemotions"]
    classes = sorted(descs)
    test = sample(read_rows("goemotions", "test"))
    texts, truth = [r["text"] for r in test], [r["labels"].split("|") for r in test]
    train = read_rows("goemotions", "train")
    pool = [r["text"] for r in train[:pool_size]]
    store, cost = generated(emb, cache, descs, n_examples) if n_examples else (None, {})
    kept = {}
    if store is not None and store.exists():
        saved = ExampleStore.load(store, attach=False)
        kept = {c: saved.count(c, "generated") for c in classes}
    X = emb.embed(texts, cache=cache)
    D = emb.embed([descs[c] for c in classes], cache=cache)
    S = X @ D.T
    rows = []

    def add(name: str, pred: list[list[str]], seconds: float | str = "") -> None:
        s = ml_scores(classes, truth, pred)
        rows.append([name, s["micro"], s["macro"], f"{s['per_text']:.2f}", f"{100 * s['none']:.0f}%", seconds])
        print(rows[-1], flush=True)

    add("zero-shot: nearest description (top 1)", [[classes[j]] for j in S.argmax(1)])
    # per-class cosine thresholds tuned on the train labels: zero-shot scores with a labelled tuning step
    Xtr = emb.embed([r["text"] for r in train], cache=cache)
    Str = Xtr @ D.T
    Ytr = np.array([[c in r["labels"].split("|") for c in classes] for r in train])
    th = []
    for j in range(len(classes)):
        grid = np.quantile(Str[:, j], np.linspace(0.5, 0.999, 60))
        f1s = [
            2 * (Ytr[:, j] & (Str[:, j] >= g)).sum() / max(1, Ytr[:, j].sum() + (Str[:, j] >= g).sum()) for g in grid
        ]
        th.append(grid[int(np.argmax(f1s))])
    add("zero-shot: per-class cosine thresholds (tuned on train labels)", [
        [classes[j] for j in range(len(classes)) if s[j] >= th[j]] for s in S
    ])  # fmt: skip

    variants = [
        ("prompt (descriptions only)", {}, False, None),
        ("prompt, min_labels=1", {"min_labels": 1}, False, None),
        ("prompt, unweighted binary heads", {"CLASS_WEIGHT": None}, False, None),
        ("prompt, unweighted, min_labels=1", {"CLASS_WEIGHT": None, "min_labels": 1}, False, None),
        ("prompt + unlabeled", {}, True, None),
        ("prompt + unlabeled, min_labels=1", {"min_labels": 1}, True, None),
    ]
    if store is not None:
        variants += [
            (f"prompt + generated ({n_examples}/class)", {}, False, store),
            (f"prompt + generated ({n_examples}/class), min_labels=1", {"min_labels": 1}, False, store),
            (
                f"prompt + generated ({n_examples}/class), encoder tuned, min_labels=1",
                {"min_labels": 1, "finetune": True},
                False,
                store,
            ),
            ("prompt + generated + unlabeled", {}, True, store),
            ("prompt + generated + unlabeled, min_labels=1", {"min_labels": 1}, True, store),
        ]
    for name, change, with_pool, examples in variants:
        saved = {k: getattr(multilabel, k) for k in change if k.isupper()}
        settings = {k: v for k, v in change.items() if not k.isupper()}
        for k, v in change.items():
            if k.isupper():
                setattr(multilabel, k, v)
        try:
            clf = classifier(emb, cache, descs, examples, multi_label=True, **settings)
            t0 = time.perf_counter()
            clf.train(unlabeled=pool if with_pool else None)
            guard = (clf.self_training_report_ or {}).get("guard", {}) if with_pool else {}
            add(
                name + (" (guard fell back)" if guard.get("fallback") else ""),
                clf.predict(texts),
                round(time.perf_counter() - t0),
            )
        finally:
            for k, v in saved.items():
                setattr(multilabel, k, v)

    ceiling = PromptClassifier(embedder=emb, multi_label=True, progress=False).use_embedding_cache(cache)
    for r in train:
        for c in r["labels"].split("|"):
            ceiling.add_data_to_class(c, r["text"])
    t0 = time.perf_counter()
    ceiling.train()
    add(
        f"one-vs-rest probe on all {len(train)} train rows, thresholds at target precision 0.9",
        ceiling.predict(texts),
        round(time.perf_counter() - t0),
    )
    # the ceiling proper: the same heads, each class's threshold at its out-of-fold F1 optimum
    P, L = ceiling._oof_proba_, ceiling._oof_labels_
    curves = multilabel.pr_curves_ovr(L == 1, L >= 0, P, ceiling.classes_)
    best = []
    for c in ceiling.classes_:
        cur = curves.get(str(c))
        if cur is None:
            best.append(multilabel.FALLBACK_THRESHOLD)
            continue
        p, r = cur["precision"][:-1], cur["recall"][:-1]
        best.append(float(cur["thresholds"][int(np.argmax(2 * p * r / np.maximum(p + r, 1e-12)))]))
    Pt = ceiling.predict_proba(texts)
    add(
        f"one-vs-rest probe on all {len(train)} train rows, thresholds at each class's F1 optimum (ceiling)",
        [[str(c) for c, p, b in zip(ceiling.classes_, row, best) if p >= b] for row in Pt],
    )
    if not cost:
        return table(ML_HEADER, rows), "Descriptions only: no examples were generated (`--examples 0`)."
    secs = cost.get("seconds") or 0
    counts = sorted(kept.get(c, 0) for c in classes)
    gen = (
        f"Generated examples: {cost.get('kept')} kept of {cost.get('calls')} LLM calls in {secs / 60:.0f} minutes "
        f"({60 * cost.get('kept', 0) / max(secs, 1):.1f} kept per minute), all runs that made the file; per class "
        f"{counts[0]} to {counts[-1]} (median {counts[len(counts) // 2]}) of {n_examples} asked for."
    )
    return table(ML_HEADER, rows), gen


def run_longdocs(emb, cache, pool_size: int) -> tuple[str, str]:
    descs = prompts()["newsgroups_long"]
    classes = sorted(descs)
    test = sample(read_rows("newsgroups_long", "test"))
    texts, truth = [r["text"] for r in test], [r["label"] for r in test]
    pool = [r["text"] for r in read_rows("newsgroups_long", "train")[:pool_size]]
    store = store_path("newsgroups_long", "smollm2", 32)
    from sklearn.metrics import f1_score

    def f1(pred: list[str]) -> float:
        return float(f1_score(truth, pred, average="macro", labels=classes))

    rows: dict[str, dict[str, float]] = {}
    for mode in ("truncate", "chunk"):
        X = emb.embed(texts, cache=cache, long_texts=mode)
        D = emb.embed([descs[c] for c in classes], cache=cache)
        rows.setdefault("zero-shot (nearest description)", {})[mode] = f1([classes[j] for j in (X @ D.T).argmax(1)])
        clf = classifier(emb, cache, descs, store, long_texts=mode).train()
        rows.setdefault("prompt", {})[mode] = f1(clf.predict(texts))
        clf = classifier(emb, cache, descs, store, long_texts=mode, finetune=False).train(unlabeled=pool)
        rows.setdefault(f"prompt + {len(pool)} unlabeled", {})[mode] = f1(clf.predict(texts))
        print(mode, {k: v[mode] for k, v in rows.items()}, flush=True)
    acc = table(
        LONG_HEADER,
        [[k, v["truncate"], v["chunk"], f"{100 * (v['chunk'] - v['truncate']):+.1f}"] for k, v in rows.items()],
    )

    # cost: embedding the test texts from scratch (no cache), same embedder, both modes in this run
    w = emb.window()
    tokens = sum(w.n_tokens(t) for t in texts)
    from promptclf.embedders.chunking import split

    n_chunks = sum(len(split(t, w)) for t in texts)
    cost = []
    base = None
    for mode in ("truncate", "chunk"):
        emb.embed(texts[:20], long_texts=mode)  # warm
        t0 = time.perf_counter()
        emb.embed(texts, long_texts=mode)
        s = time.perf_counter() - t0
        seen = sum(min(w.n_tokens(t), w.max_tokens) for t in texts) if mode == "truncate" else tokens
        base = base or len(texts) / s
        per = 1.0 if mode == "truncate" else n_chunks / len(texts)
        cost.append([mode, f"{len(texts) / s:.1f}", f"{seen / s:.0f}", f"{per:.2f}", f"{len(texts) / s / base:.2f}"])
    return acc, table(COST_HEADER, cost)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", nargs="+", default=["multilabel", "longdocs"])
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--examples", type=int, default=16, help="generated examples per GoEmotions class (0: none)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    emb, cache = get_embedder("onnx:all-MiniLM-L6-v2"), EmbeddingCache()
    stamp = f"{dt.date.today()}, {machine()}"
    cmd = (
        "`.venv/bin/python bench/multilabel.py"
        + (f" --part {' '.join(args.part)}" if args.part != ["multilabel", "longdocs"] else "")
        + (f" --examples {args.examples}" if args.examples != 16 else "")
        + "`"
    )
    if "multilabel" in args.part:
        results, gen = run_multilabel(emb, cache, args.pool, args.examples)
        body = f"""## Multi-label classes (issue 15)

{stamp}. Regenerate with {cmd}.
GoEmotions (28 labels, 15% of test rows with two or more), first 1,000 test rows of a
fixed permutation; pool = the first {args.pool} train texts, labels hidden. Embedder: the packaged MiniLM (ONNX).
*labels / text*: how many labels the model gives per text (the test rows have 1.18 on average); *texts with
none*: rows it gives no label. *s*: training wall time (embeddings cached). *prompt* rows without "generated"
train from the 28 descriptions alone; *generated*: examples written by the packaged SmolLM2 (multi-label
filter: an example is kept while its own description is among its {pipeline.MULTI_LABEL_AGREEMENT_RANK} nearest).

{results}

{gen}
"""
        publish("multilabel", body, not args.no_write)
    if "longdocs" in args.part:
        acc, cost = run_longdocs(emb, cache, args.pool)
        body = f"""## Long documents (issue 15)

{stamp}. Regenerate with {cmd}.
newsgroups_long (five coarse topics, posts of 250-2,000 words), every test row; macro-F1. *truncate*: MiniLM's
window only (the first 254 word pieces); *chunk* (default): overlapping chunks on sentence boundaries, the
document vector the mean of its chunks'. Generated examples: 32 per class or fewer (cached). Pool: the
train split, labels hidden.

{acc}

Cost of embedding the test documents from scratch (ONNX fp32, this run; tokens/s counts the word pieces the
encoder actually reads):

{cost}
"""
        publish("longdocs", body, not args.no_write)


if __name__ == "__main__":
    main()
