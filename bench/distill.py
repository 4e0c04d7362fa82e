"""A distilled encoder (``distill=True``): speed and macro-F1 against the full one, as ratios of one run.

    .venv/bin/python bench/distill.py [--sets sst2,ag_news,trec6,emotion6] [--fast] [--no-write]

Per set, two models on the whole train split (real labels, the encoder not fine-tuned, as the speed
table's): the packaged MiniLM, and the same with ``distill=True`` (its half-layer copy distilled on
those texts, the head fit on the copy's vectors). Each is saved and loaded as a user would (ONNX
int8, the default), and scored on the fixed test sample; on the sst2 test texts both predict against
raw ``SentenceTransformer.encode``. Each model trains in a fresh process, so one cannot warm the next.
``--budget``: the distillation's time budget (``finetune_budget_s``; the encoder is not fine-tuned
here). ``--fast``: both models with ``fast=True`` (the static head answers what it is sure of, the encoder
the rest), published as its own section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import FRESH_ENV, ROOT, answered_share, interleaved, machine, publish, read_rows, scores, table, test_sample
from speed import F1_SETS, PY, timed

from promptclf import PromptClassifier
from promptclf import distill as D
from promptclf.embedders.local import resolve_model_path

TRAIN = """
import json, sys, time
sys.path.insert(0, {bench!r})
from common import per_class_sample, read_rows
from promptclf import PromptClassifier
clf = PromptClassifier(finetune=False, distill={distil}, fast={fast}, finetune_budget_s={budget}, progress=False)
for label, xs in per_class_sample(read_rows({ds!r}, "train"), 10**9).items():
    clf.add_data_to_class(label, xs)
t = time.perf_counter()
clf.train()
seconds = time.perf_counter() - t
clf.save({path!r})
student = (clf.__dict__.get("encoder_") or {{}}).get("report", {{}}).get("student") or {{}}
print(json.dumps({{"seconds": seconds, "student": student}}))
"""


HEADER = ["dataset", "full", "distilled", "Δ pts", "train s (full / distilled)", "distilled on",
          ".clf MB (full / distilled)"]  # fmt: skip


def train(ds: str, distil: bool, path: Path, fast: bool, budget: float) -> dict:
    code = TRAIN.format(bench=str(ROOT / "bench"), distil=distil, fast=fast, budget=budget, ds=ds, path=str(path))
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=FRESH_ENV, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(F1_SETS))
    ap.add_argument("--fast", action="store_true", help="both models with the static fast path")
    ap.add_argument("--budget", type=float, default=300.0, help="finetune_budget_s: the distillation's budget here")
    ap.add_argument("--section", default=None, help="publish under this section instead")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    sets = args.sets.split(",")
    f1_rows, paths = [], {}
    for ds in sets:
        test_texts, test_labels = test_sample(ds)
        row, cost, shares = [ds], [], []
        for distil in (False, True):
            path = paths[ds, distil] = tmp / f"{ds}-{distil}.clf"
            info = train(ds, distil, path, args.fast, args.budget)
            served = PromptClassifier.load(path)
            served.progress = False
            row.append(scores(test_labels, served.predict(test_texts))["macro_f1"])
            cost.append((info, path.stat().st_size / 2**20))
            if args.fast:
                shares.append(f"{answered_share(served, test_texts):.0%}")
        (full, mb_full), (small, mb_small) = cost
        st = small["student"]
        cut = " (budget)" if st.get("stopped_by_budget") else ""
        on = f"{st['pairs']} texts, {st['steps']} steps{cut}" if st else f"not distilled (under {D.MIN_TEXTS:,} texts)"
        row += [f"{100 * (row[2] - row[1]):+.1f}", f"{full['seconds']:.0f} / {small['seconds']:.0f}", on,
                f"{mb_full:.1f} / {mb_small:.1f}"]  # fmt: skip
        if args.fast:
            row.append(" / ".join(shares))
        f1_rows.append(row)
        print(row, flush=True)

    # speed on the sst2 test texts: raw PyTorch, the full model and the distilled one (both int8)
    texts = [r["text"] for r in read_rows("sst2", "test")]
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    raw.encode(texts[:64], batch_size=64)
    t_raw = timed(lambda: raw.encode(texts, batch_size=64, normalize_embeddings=True))
    speed_rows = [["raw `SentenceTransformer.encode` (reference)", f"{len(texts) / t_raw:.0f}", "1.00x", "", ""]]
    base = "sst2" if "sst2" in sets else sets[0]
    names = ["full MiniLM, ONNX int8 (default)", "distilled, ONNX int8 (`distill=True`)"]
    if args.fast:
        names = [f"static head + {n.replace(' (default)', '')}" for n in names]
    for distil, name in zip((False, True), names):
        path = paths[base, distil]
        served = PromptClassifier.load(path)
        served.progress = False
        served.predict(texts[:64])
        share = f", static head answered {answered_share(served, texts):.0%}" if args.fast else ""
        t = timed(lambda served=served: served.predict(texts))
        code = f"import promptclf; promptclf.load({str(path)!r}).predict(['a fine film'])"
        cold = interleaved({name: code}, repeat=3)[name]
        speed_rows.append([name, f"{len(texts) / t:.0f}", f"{t_raw / t:.2f}x", f"{cold:.2f} s", share.lstrip(", ")])
    ratio = float(speed_rows[2][2][:-1]) / float(speed_rows[1][2][:-1])
    speed_rows[2][4] = f"{ratio:.2f}x the full model" + (f"; {speed_rows[2][4]}" if args.fast else "")

    header = HEADER + (["static share (full / distilled)"] if args.fast else [])
    title, section = (
        ("A distilled encoder behind the static fast path", "distill-fast")
        if args.fast
        else ("A distilled encoder", "distill")
    )
    fast_note = (
        "\nEvery model here is trained with `fast=True`: a head on static (model2vec) vectors answers the texts "
        "it is sure of, the encoder (full or distilled) the rest; *static share*: test texts the static head "
        "answered.\n"
        if args.fast
        else ""
    )
    if args.budget != 300:
        title += f", distilled for at most {args.budget:g} s"
    flag = (" --fast" if args.fast else "") + (f" --budget {args.budget:g}" if args.budget != 300 else "")
    flag += f" --section {args.section}" if args.section else ""
    body = f"""## {title} (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/distill.py{flag}`.
`distill=True` replaces the encoder by a copy keeping layers {list(D.KEEP_LAYERS)} of MiniLM's six,
trained ({D.EPOCHS} epochs, `MSELoss`, learning rate {D.LEARNING_RATE:g}, at most {D.MAX_TEXTS:,} texts) to
reproduce the full encoder's vectors of the model's own texts, and fits the head on the copy's vectors.
Each model: the whole train split with its real labels, the encoder not fine-tuned (as in the speed
table), trained in a fresh process, saved, loaded as a user would (ONNX int8, the default), macro-F1 on
the fixed test sample. emotion6 is held out. *train s*: wall seconds of `train()` (embedding, head,
thresholds; distillation included); *.clf MB*: the saved file (the distilled copy travels in it).
{fast_note}
{table(header, f1_rows)}

Speed: each loaded `.clf` ({base}) predicts the {len(texts):,} sst2 test texts (embedding + head + bookkeeping)
against raw PyTorch encode of the same texts at batch size 64; cold start is a fresh process that loads
the `.clf` and predicts one text (the int8 graphs are made at save, on this machine).

{table(["serving", "texts/s", "vs reference", "cold start", ""], speed_rows)}
"""
    publish(args.section or section, body, write=not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
