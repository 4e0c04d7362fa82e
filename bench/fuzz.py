"""Fuzz the model-file loader: thousands of mutations of a real small model, counts in BENCHMARKS.md.

    .venv/bin/python bench/fuzz.py [--n 3000] [--seed 1] [--no-write]

The model is trained on a few sst2 train rows with the packaged MiniLM, frozen, and served on ONNX fp32, as
a user would load it. Each mutated file must be refused with a ``ModelFileError`` or load and then
predict, summarise, give its curves and retrain without any other exception. ``--n-fast`` more
mutate a second model's static fast path (64 rows per class: enough real texts for the default to
add one): its members and the manifest's part about them, with matching checksums
(``tests.fuzzing.focused``), so the content reaches the loader instead of failing the checksums.
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
from tests.fuzzing import MUTATIONS, focused, run


def trained(work: Path, per_class: int) -> Path:
    """A model on ``per_class`` sst2 train rows per class, saved; from 64 on it has a fast path. The
    encoder stays the packaged one (``finetune=False``): a tuned one makes every mutated file 45 MB
    (about 1.3 files a second instead of 50); tests/test_finetune_model.py checks that member
    (tampered, truncated, misshapen, over its bound)."""
    clf = PromptClassifier(progress=False, finetune=False)
    for label, texts in per_class_sample(read_rows("sst2", "train"), per_class).items():
        clf.add_data_to_class(label, texts)
    clf.prompt_train({"positive": "A movie review praising the film.", "negative": "A review criticising the film."},
                     generate=False)  # fmt: skip
    if per_class >= 64 and clf.fast_ is None:  # the fast kinds would fuzz a model without the members
        raise SystemExit("the model for the fast path's mutations has no fast path")
    path = work / f"model-{per_class}.clf"
    clf.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--n-fast", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logging.getLogger("promptclf").setLevel(logging.ERROR)  # mutated files warn a lot; we count outcomes

    work = Path(tempfile.mkdtemp(prefix="promptclf-fuzz-"))
    model, fast_model = trained(work, 16), trained(work, 64)
    emb = get_embedder("onnx:all-MiniLM-L6-v2")
    fast = focused("fast/")
    t0 = time.perf_counter()
    res = run(model, args.n, args.seed, work, emb)
    res_fast = run(fast_model, args.n_fast, args.seed, work, emb, mutations=fast)
    wall = time.perf_counter() - t0
    rows = []
    for r, kinds in ((res, MUTATIONS), (res_fast, fast)):
        for kind in kinds:
            c = r["counts"][kind]
            rows.append([kind, sum(c.values()), c.get("refused", 0), c.get("loaded", 0), c.get("bug", 0)])
    n = args.n + args.n_fast
    rows.append(["all", n, *(sum(r[i] for r in rows) for i in (2, 3, 4))])
    bugs, slow = res["bugs"] + res_fast["bugs"], res["slow"] + res_fast["slow"]
    body = (
        "## Model-file fuzzing\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with "
        f"`.venv/bin/python bench/fuzz.py --n {args.n} --n-fast {args.n_fast} --seed {args.seed}`.\n"
        f"{args.n} mutations of a small real model (16 sst2 rows per class, packaged MiniLM, served on ONNX fp32),\n"
        f"round-robin over the first kinds below; then {args.n_fast} of the *fast* kinds, on the same model trained\n"
        "on 64 rows per class, which gives it the static fast path: its members and the manifest's part about\n"
        "them, checksums made to match so the content reaches the loader. *refused*: a `ModelFileError`;\n"
        "*loaded*: the file loaded, then\n"
        "predicted, summarised (`info`), gave its curves and retrained with no exception but promptclf's own;\n"
        "*other exception*: anything else, which is a bug. The suite runs 350 of the same (tests/test_fuzz.py).\n\n"
        + table(["mutation", "files", "refused", "loaded and usable", "other exception"], rows)
        + f"\n\nWall time {wall:.0f} s ({1000 * wall / n:.0f} ms a file); slowest cases over 5 s: {len(slow)}.\n"
    )
    if bugs:
        body += "\nFailures:\n" + "\n".join(f"- {b}" for b in bugs[:20]) + "\n"
    publish("fuzz", body, not args.no_write)


if __name__ == "__main__":
    main()
