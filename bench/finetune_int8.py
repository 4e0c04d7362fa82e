"""A fine-tuned encoder served as int8 (the default at load) against its fp32 graph.

    .venv/bin/python bench/finetune_int8.py [--no-write]

Per dataset: the cached generated examples (bench/out/<name>-direct-n32.jsonl) + a pool of train-split
texts, ``finetune=True`` with a 150 s budget, saved; the loaded file is scored on the fixed test sample
with the tuned graph in fp32 (``embedder="onnx:..."`` at load) and quantised to int8 (the default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from common import OUT, machine, pool_rows, prompts, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier

SETS = {"emotion6": 660, "trec6": 2000}  # dataset: pool size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for ds, pool_n in SETS.items():
        texts, labels = test_sample(ds)
        train = read_rows(ds, "train")
        pool = [r["text"] for r in pool_rows(train, pool_n)]
        clf = PromptClassifier(finetune=True, finetune_budget_s=150, progress=False)
        clf.load_examples(OUT / f"{ds}-direct-n32.jsonl", include_pseudo=False)
        clf.prompt_train(prompts()[ds], unlabeled=pool, generate=False)
        path = Path(tempfile.mkdtemp()) / "m.clf"
        clf.save(path)
        fp32 = PromptClassifier.load(path, embedder="onnx:all-MiniLM-L6-v2")
        int8 = PromptClassifier.load(path)
        assert int8._tuned.quantized and not fp32._tuned.quantized
        f32, f8 = (scores(labels, m.set_params(progress=False).predict(texts))["macro_f1"] for m in (fp32, int8))
        rows.append([ds, pool_n, f"{f32:.3f}", f"{f8:.3f}", f"{100 * (f8 - f32):+.1f}"])
        print(rows[-1], flush=True)
    body = f"""## Fine-tuned encoder served as int8

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/finetune_int8.py`.
A model fine-tuned on the cached generated examples and a pool of unlabeled train-split texts (150 s
budget), loaded with its tuned graph in fp32 and, the default, quantised to int8 by the packaged
model's recipe (per channel, 7-bit weights); macro-F1 on the fixed test sample.

{table(["dataset", "pool", "fp32", "int8 (default)", "int8 − fp32 (pts)"], rows)}
"""
    publish("finetune-int8", body, write=not args.no_write)


if __name__ == "__main__":
    main()
