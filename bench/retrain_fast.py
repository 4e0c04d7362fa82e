"""Trust: does the static fast path keep its bound when a model trained with unlabeled texts is trained
again without them (a correction, then ``train()``)?

    .venv/bin/python bench/retrain_fast.py DIR [sst2 ag_news trec6] [--no-write]

DIR holds unlabeled-mode models as the default flow makes them, saved by ``bench/finetune_rounds.py <set>
default --examples <set>-direct-nauto.jsonl --save DIR`` (the cached examples, the encoder tuned on them,
then ``train(unlabeled=...)`` with the accuracy run's 5,000 pool texts; files ``DIR/<set>-default.clf``).
Each row loads the file as a user would (ONNX int8 serving, the fast path as trained) and predicts the
accuracy table's fixed test sample: *as saved*; *as saved, fast path off*; then ``train()`` with no
unlabeled texts, saved and loaded again: *retrained, as before* (the pseudo-labels kept from the pool bound
the static head's threshold alone: ``cascade.real_rows`` as if their pool were there) and *retrained, now*
(they count only beside their pool). *estimated*: the share of real texts the static head was to answer
at training, and on how many texts that was estimated; *test*: the share it answered of the test sample.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import answered_share, machine, publish, scores, table, test_sample

HEADER = ["dataset", "model", "macro-F1", "Δ pts vs fast path off", "static share (test)",
          "static share (estimated)", "texts it was estimated on"]  # fmt: skip
WAYS = {
    "saved": "as saved (trained with its pool)",
    "off": "as saved, fast path off",
    "before": "retrained without the pool, as before",
    "now": "retrained without the pool, now",
}


def one(path: Path, name: str) -> dict:
    import promptclf.cascade as cascade
    from promptclf import PromptClassifier

    texts, labels = test_sample(name)
    out: dict = {}

    def measure(clf, way: str) -> None:
        est = (clf.fast_.estimate if clf.fast_ is not None else {}) if clf.fast else {}
        out[way] = {
            "macro_f1": round(scores(labels, clf.predict(texts))["macro_f1"], 4),
            "test_share": round(answered_share(clf, texts), 4) if clf.fast and clf.fast_ is not None else 0.0,
            "estimated_share": est.get("share"),
            "estimated_on": est.get("real_texts"),
        }

    measure(PromptClassifier.load(path), "saved")
    measure(PromptClassifier.load(path).set_params(fast=False), "off")
    now = cascade.real_rows
    for way in ("before", "now"):
        cascade.real_rows = (lambda s, with_pool: now(s, True)) if way == "before" else now
        clf = PromptClassifier.load(path).set_params(progress=False).train()
        with tempfile.TemporaryDirectory() as d:
            clf.save(Path(d) / "m.clf")
            measure(PromptClassifier.load(Path(d) / "m.clf"), way)
    cascade.real_rows = now
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("datasets", nargs="*", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one dataset, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.dir / f"{args.one}-default.clf", args.one)))
        return
    rows = []
    for name in args.datasets:
        cmd = [sys.executable, __file__, str(args.dir), "--one", name]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        off = res["off"]["macro_f1"]
        for way, label in WAYS.items():
            r = res[way]
            share = "no fast path" if r["estimated_share"] is None else f"{r['estimated_share']:.0%}"
            if way == "off":
                share = ""
            rows.append([name, label, r["macro_f1"], f"{100 * (r['macro_f1'] - off):+.1f}",
                         f"{r['test_share']:.0%}", share, r["estimated_on"] or ""])  # fmt: skip
        print(json.dumps({name: res}), file=sys.stderr)
    body = (
        "## The fast path after a retrain without the pool\n\n"
        f"{machine()}. Regenerate with `.venv/bin/python bench/retrain_fast.py DIR` (DIR: models saved by "
        "`bench/finetune_rounds.py <set> default --examples <set>-direct-nauto.jsonl --save DIR`).\n"
        + (__doc__ or "").split("\n\n", 2)[2].strip()
        + "\n\n"
        + table(HEADER, rows)
    )
    publish("retrain-fast", body, not args.no_write)


if __name__ == "__main__":
    main()
