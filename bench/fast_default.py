"""Issue 16: is the static fast path good enough to be on by default? Measured on the models the default
flow makes (the prompt, then the unlabeled pool; the encoder fine-tuned), not on full-label heads.

    .venv/bin/python bench/fast_default.py [sst2 ag_news trec6 newsgroups_long] [--no-write]

One child process per dataset. It starts where the accuracy table's runs start (bench/common.py's
``prompt_model``: the cached generated examples, nothing generated), sets the defaults
(``finetune="auto"``) plus ``fast=True`` and trains: *prompt* is ``prompt_train`` on the cached
examples (the encoder tuned on them), *+ unlabeled* then ``train(unlabeled=pool)`` with the accuracy
run's 5,000 train texts (labels hidden). Each model is saved and loaded as a user would (ONNX int8
serving) and predicts the fixed test sample with the fast path off (the default), and on with its
threshold chosen as before and as now. Speed: the loaded model's ``predict`` of the test sample in
those three ways and raw PyTorch ``SentenceTransformer.encode`` of the same texts (batch 64), taking
turns for ``--rounds`` rounds in the same process; the medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    answered_share,
    machine,
    pool_texts,
    prompt_model,
    prompts,
    publish,
    rates_taking_turns,
    scores,
    table,
    test_sample,
)

POOL = 5000
PER_CLASS = {"sst2": 96}  # what examples_per_class="auto" gives two classes; 32 for more
HEADER = [
    "dataset", "mode", "serving", "macro-F1", "Δ pts vs off", "static share (test)",
    "static share (estimated at training)", "texts it was estimated on", "texts/s (vs raw PyTorch)", "train s",
    ".clf MB",
]  # fmt: skip


WAYS = {
    "off": "fast path off (`fast=False`)",
    "before": "threshold as before: every training row, 2%",
    "on": "`fast=True`: real texts, 2%",
    "on1": '`fast="auto"` (default): real texts, 1%',
}


def refit_threshold(clf, *, real_only: bool, pool: list[str], max_loss: float):
    """The model's fast path with its threshold chosen again: on every training row (generated examples
    and descriptions included, out of fold, as the code before did) or on the real texts only and
    ``pool``, with the bound ``max_loss``. The static head is the same."""
    import dataclasses

    import numpy as np

    import promptclf.cascade as cascade

    texts, y, sources = clf._training_set()
    proba = lambda ts: clf.head_.predict_proba(clf._vectors(ts, progress=False))  # noqa: E731
    rows = set(texts)
    pool = [t for t in dict.fromkeys(pool) if t not in rows] if real_only else []
    real = np.isin(sources, cascade.REAL_SOURCES) if real_only else np.ones(len(texts), bool)
    fit = cascade.fit_fast_path(
        clf._static, texts, y, clf._llm_weights(sources), proba(texts), real=real, pool=pool,
        pool_proba=proba(pool) if pool else None, C=clf.head_.C_, cache=clf._cache,
        random_state=clf.random_state, max_loss=max_loss,
    )  # fmt: skip
    return dataclasses.replace(clf.fast_, threshold=fit.threshold, estimate=fit.estimate)


def measure(clf, mode: str, pool: list[str], texts: list[str], labels: list[str], raw, rounds: int) -> list[dict]:
    from promptclf import PromptClassifier

    paths = {
        "before": refit_threshold(clf, real_only=False, pool=pool, max_loss=0.02),
        "on1": refit_threshold(clf, real_only=True, pool=pool, max_loss=0.01),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.clf"
        clf.save(path)
        mb = path.stat().st_size / 1e6
        served = PromptClassifier.load(path)
    served.progress = False
    paths["on"] = paths["off"] = served.fast_

    def serve(way: str):
        served.set_params(fast=way != "off")
        served.fast_ = paths[way]
        return served

    fns = {"raw": lambda: raw.encode(texts, batch_size=64, normalize_embeddings=True)}
    fns |= {way: lambda way=way: serve(way).predict(texts) for way in WAYS}
    speed = rates_taking_turns(fns, len(texts), rounds)
    out = []
    for way in WAYS:
        m = serve(way)
        est = m.fast_.estimate
        out.append({
            "mode": mode, "way": way, "macro_f1": round(scores(labels, m.predict(texts))["macro_f1"], 4),
            "share_test": None if way == "off" else round(answered_share(m, texts), 4),
            "share_train": None if way == "off" else est["share"],
            "real_texts": None if way == "off" else est.get("real_texts", est["rows"]),
            "texts_s": round(speed[way]), "vs_raw": round(speed[way] / speed["raw"], 2), "clf_mb": round(mb, 1),
        })  # fmt: skip
    return out


def child(name: str, rounds: int) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from promptclf.embedders import EmbeddingCache, get_embedder
    from promptclf.embedders.local import resolve_model_path

    raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    emb, cache = get_embedder(None), EmbeddingCache()
    texts, labels = test_sample(name)
    raw.encode(texts[:64], batch_size=64)
    pool = pool_texts(name, POOL)
    clf = prompt_model(name, PER_CLASS.get(name, 32), cache, embedder=emb)
    clf.set_params(finetune="auto", fast=True)
    t0 = time.perf_counter()
    clf.prompt_train(prompts()[name], generate=False)  # as the accuracy table: "auto" tunes from the prompt
    seconds = time.perf_counter() - t0
    out = [{**r, "train_s": round(seconds)} for r in measure(clf, "prompt", [], texts, labels, raw, rounds)]
    t0 = time.perf_counter()
    clf.train(unlabeled=pool)
    seconds = time.perf_counter() - t0
    out += [{**r, "train_s": round(seconds)} for r in measure(clf, "+ unlabeled", pool, texts, labels, raw, rounds)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one dataset, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(child(args.one, args.rounds)))
        return
    results = {}
    for ds in args.datasets:
        cmd = [sys.executable, str(Path(__file__)), "--one", ds, "--rounds", str(args.rounds)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{ds} failed:\n{done.stderr[-3000:]}")
        results[ds] = json.loads(done.stdout.strip().splitlines()[-1])
        print(ds, json.dumps(results[ds]), flush=True)
    publish("fast-default", render(results, args.rounds), not args.no_write)


def render(results: dict[str, list[dict]], rounds: int) -> str:
    """The section, from each dataset's rows as ``child`` returns them."""
    rows = []
    for ds, res in results.items():
        off = {r["mode"]: r["macro_f1"] for r in res if r["way"] == "off"}
        for r in res:
            pct = lambda v: "" if v is None else f"{v:.0%}"  # noqa: E731
            rows.append([
                ds, r["mode"], WAYS[r["way"]], f"{r['macro_f1']:.3f}",
                "" if r["way"] == "off" else f"{100 * (r['macro_f1'] - off[r['mode']]):+.1f}",
                pct(r["share_test"]), pct(r["share_train"]), "" if r["real_texts"] is None else r["real_texts"],
                f"{r['texts_s']} ({r['vs_raw']:.2f}x)", r["train_s"], f"{r['clf_mb']:.1f}",
            ])  # fmt: skip
    sets = " ".join(results)
    return f"""## The static fast path on the default flow's models (issue 16)

{dt.date.today()}, {machine()}.
Regenerate with `.venv/bin/python bench/fast_default.py {sets}`.
Models as the accuracy table trains them (the cached generated examples; `finetune="auto"`, so the
encoder is fine-tuned; *+ unlabeled*: then `train(unlabeled=...)` with 5,000 train texts, labels
hidden), trained with a fast path; each saved and loaded as a user would (ONNX int8 serving), then
macro-F1 on the fixed test sample with the fast path off and on, its threshold chosen three ways:
as before this change (on every training row, generated examples and descriptions included, out of
fold; at most 2% of answers changed there), and as now, on real texts only (a person's examples and
pseudo-labelled texts, out of fold, and the `unlabeled` texts of that `train`), with the bound of
`fast=True` (2%) and of the default `fast="auto"` (1%). Under 100 real texts `fast=True` answers
nothing and "auto" adds no fast path: the same answers as off. All share the model and the static
head; only the threshold differs. *static share*: texts the static head answered on the test
sample, and as training estimated it (on the texts the threshold was chosen on). Speed: the loaded
model's `predict` of the test sample in those four ways, and raw PyTorch
`SentenceTransformer.encode` of the same texts (batch 64), taking turns {rounds} times in one
process; medians. newsgroups_long (if present) is held back from the dev sets.

{table(HEADER, rows)}
"""


if __name__ == "__main__":
    main()
