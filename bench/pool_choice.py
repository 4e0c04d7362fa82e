"""Issue 11, unlabeled mode: can the pool itself say, without labels, whether tuning the encoder on it helps?

    .venv/bin/python bench/pool_choice.py sst2 ag_news trec6 emotion6 newsgroups_long [--first-only]
        [--examples-suffix auto]

One dataset per child process. Each: the prompt-tuned model (the cached generated examples,
``OUT/<set>-direct-n<suffix>.jsonl``, encoder tuned on them as `prompt_train` does by default), then
*kept*: `train(unlabeled=pool)` with `finetune=False` (the prompt-tuned encoder labels the pool and stays,
the head is refit) and *tuned*: `train(unlabeled=pool)` with the default `finetune="auto"` (first labels
from both encoders, the encoder tuned again on the pool from the base, the pool relabelled; always, as
before the choice: `POOL_TUNING_MAX_AGREEMENT` set over 1). Before either, *first*: the pool's first
labelling as training does it (the base and the prompt-tuned encoder side by side) and its
`agreement_with_anchors` (the share of the pool its final labels give the class the examples alone
give), what `classifier._pool_tuning` reads; `--first-only` stops there. For each
model: macro-F1 on the accuracy table's test sample (labels: only to score), its labels of the whole pool,
and candidate label-free signals: TF-IDF learnability of each model's pool labels (`crosscheck.learnability`),
the agreement between the two, between each and the prompt-only model, and self-training's reports.
Prints one JSON line per set.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import pool_rows, prompt_model, read_rows, scores, test_sample

POOL = 5000


def signals(name: str, suffix: str, first_only: bool = False) -> dict:
    import promptclf.classifier as K
    from promptclf.crosscheck import learnability
    from promptclf.embedders import EmbeddingCache, get_embedder

    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    rows = pool_rows(train, POOL)
    pool, hidden = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    emb, cache = get_embedder(None), EmbeddingCache()
    clf = prompt_model(name, 0, cache, f"{name}-direct-n{suffix}.jsonl", embedder=emb, finetune="auto")
    classes = np.array(clf.classes_)
    out: dict = {"dataset": name}
    truth = dict(zip(pool, hidden))

    def pseudo_right() -> float:
        pseudo = clf._store.examples(("pseudo",))
        return round(float(np.mean([truth.get(e.text) == e.class_name for e in pseudo] or [0.0])), 4)

    def look(tag: str) -> np.ndarray:
        proba = clf.predict_proba(pool)
        pred = classes[proba.argmax(1)]
        top2 = np.sort(proba, 1)[:, -2:]
        st = getattr(clf, "self_training_report_", {}) or {}
        pseudo = list(clf._store.examples(("pseudo",)))
        out[tag] = {
            "macro_f1": round(scores(labels, clf.predict(texts))["macro_f1"], 4),
            "pool_right": round(float(np.mean(pred == hidden)), 4),
            "learnability": round(learnability(pool, pred, classes), 4),
            "mean_top": round(float(top2[:, 1].mean()), 4),
            "mean_margin": round(float((top2[:, 1] - top2[:, 0]).mean()), 4),
            "pseudo_labels": len(pseudo),
            "pseudo_right": pseudo_right(),
            "pseudo_learnability": round(
                learnability([e.text for e in pseudo], np.array([e.class_name for e in pseudo]), classes), 4
            )
            if pseudo
            else None,
            "self_training": {k: v for k, v in st.items() if k in ("rounds", "pseudo_labels", "generated_examples")},
        }
        return pred

    prompt_pred = look("prompt")
    # the first labelling of the pool as training does it (both encoders side by side): what
    # classifier._pool_tuning reads
    t0 = time.perf_counter()
    clf._pseudo_label(pool, clf._first_labeller())
    st = clf.self_training_report_
    out["first"] = {
        "agreement_with_anchors": st["agreement_with_anchors"],
        "pseudo_right": pseudo_right(),
        "seconds": round(time.perf_counter() - t0),
    }
    if first_only:
        return out
    t0 = time.perf_counter()
    clf.set_params(finetune=False)
    clf.train(unlabeled=pool)
    out["kept_s"] = round(time.perf_counter() - t0)
    kept = look("kept")
    t0 = time.perf_counter()
    clf.set_params(finetune="auto")
    K.POOL_TUNING_MAX_AGREEMENT = 1.01  # tuned on the pool whatever it agrees (as before the choice)
    clf.train(unlabeled=pool)
    out["tuned_s"] = round(time.perf_counter() - t0)
    tuned = look("tuned")
    out["agree_kept_tuned"] = round(float(np.mean(kept == tuned)), 4)
    out["agree_prompt_kept"] = round(float(np.mean(prompt_pred == kept)), 4)
    out["agree_prompt_tuned"] = round(float(np.mean(prompt_pred == tuned)), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--examples-suffix", default="auto")
    ap.add_argument("--first-only", action="store_true", help="stop after the first labelling of the pool")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: one set, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(signals(args.datasets[0], args.examples_suffix, args.first_only)))
        return
    for name in args.datasets:
        cmd = [sys.executable, str(Path(__file__)), name, "--examples-suffix", args.examples_suffix, "--one"]
        cmd += ["--first-only"] if args.first_only else []
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(out.returncode)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
