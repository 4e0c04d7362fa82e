"""Fuzz the model-file loader: thousands of mutations of a real small model, counts in BENCHMARKS.md.

    .venv/bin/python bench/fuzz.py [--n 3000] [--seed 1] [--no-write]

The model is trained on a few sst2 train rows with the packaged MiniLM and served on ONNX fp32, as
a user would load it. Each mutated file must be refused with a ``ModelFileError`` or load and then
predict, summarise, give its curves and retrain without any other exception.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, per_class_sample, publish, read_rows, table
from promptclf import PromptClassifier
from promptclf.embedders import get_embedder
from tests.fuzzing import MUTATIONS, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logging.getLogger("promptclf").setLevel(logging.ERROR)  # mutated files warn a lot; we count outcomes

    work = Path(tempfile.mkdtemp(prefix="promptclf-fuzz-"))
    clf = PromptClassifier(progress=False)
    for label, texts in per_class_sample(read_rows("sst2", "train"), 16).items():
        clf.add_data_to_class(label, texts)
    clf.prompt_train({"positive": "A movie review praising the film.", "negative": "A review criticising the film."},
                     generate=False)  # fmt: skip
    model = work / "model.clf"
    clf.save(model)
    emb = get_embedder("onnx:all-MiniLM-L6-v2")
    t0 = time.perf_counter()
    res = run(model, args.n, args.seed, work, emb)
    wall = time.perf_counter() - t0
    rows = []
    for kind in MUTATIONS:
        c = res["counts"][kind]
        rows.append([kind, sum(c.values()), c.get("refused", 0), c.get("loaded", 0), c.get("bug", 0)])
    rows.append(["all", args.n, *(sum(r[i] for r in rows) for i in (2, 3, 4))])
    body = (
        "## Model-file fuzzing\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with "
        f"`.venv/bin/python bench/fuzz.py --n {args.n} --seed {args.seed}`.\n"
        f"{args.n} mutations of a small real model (16 sst2 rows per class, packaged MiniLM, served on ONNX fp32),\n"
        "round-robin over the kinds below. *refused*: a `ModelFileError`; *loaded*: the file loaded, then\n"
        "predicted, summarised (`info`), gave its curves and retrained with no exception but promptclf's own;\n"
        "*other exception*: anything else, which is a bug. The suite runs 350 of the same (tests/test_fuzz.py).\n\n"
        + table(["mutation", "files", "refused", "loaded and usable", "other exception"], rows)
        + f"\n\nWall time {wall:.0f} s ({1000 * wall / args.n:.0f} ms a file); slowest cases over 5 s: "
        f"{len(res['slow'])}.\n"
    )
    if res["bugs"]:
        body += "\nFailures:\n" + "\n".join(f"- {b}" for b in res["bugs"][:20]) + "\n"
    publish("fuzz", body, not args.no_write)


if __name__ == "__main__":
    main()
