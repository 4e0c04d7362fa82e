"""One two-threaded ONNX Runtime session, or single-threaded sessions running batches side by side.

    .venv/bin/python bench/onnx_parallel.py [--rounds 5] [--no-write]

The embedder a loaded `.clf` predicts with (MiniLM, ONNX int8, batches of 16 sorted texts). *one
session on every CPU* is how it ran before (``intra_op_num_threads`` = the CPUs, batches one after
another); *side by side* is how it runs now (``OnnxEmbedder.embed_batch``: one thread per
session call, one call per CPU at a time; a lone text on every CPU). Each figure comes from a fresh
process; the variants and raw PyTorch ``SentenceTransformer.encode`` (batch 64, the speed table's reference)
take turns, ``--rounds`` times, and the table has the medians. Texts: every test text of sst2 (1,821),
ag_news (1,000) and trec6 (500), each set embedded in one call; *one text*: the median wall time of
embedding the first 100 sst2 test texts one call each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time

from common import ROOT, machine, publish, read_rows, table

SETS = ("sst2", "ag_news", "trec6")
VARIANTS = {
    "reference": "raw `SentenceTransformer.encode` (reference)",
    "before": "ONNX int8, one session on every CPU (before)",
    "after": "ONNX int8, single-threaded sessions side by side (default)",
}


def child(variant: str) -> dict[str, float]:
    texts = {ds: [r["text"] for r in read_rows(ds, "test")] for ds in SETS}
    if variant == "reference":
        from sentence_transformers import SentenceTransformer

        from promptclf.embedders.local import resolve_model_path

        raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
        embed = lambda ts: raw.encode(ts, batch_size=64, normalize_embeddings=True)  # noqa: E731
    else:
        from promptclf.embedders import onnx_backend
        from promptclf.embedders.onnx_backend import OnnxInt8Embedder

        if variant == "before":  # one session computing on every CPU, the batches one at a time
            cpus = onnx_backend.workers()
            one_at_a_time = onnx_backend.run_batches
            onnx_backend.run_batches = lambda sess, batches, workers: one_at_a_time(sess, batches, 1)
            OnnxInt8Embedder._session = lambda self, threads: onnx_backend._load(self.model, True, cpus)
        emb = OnnxInt8Embedder()
        embed = emb.embed
    embed(texts["sst2"][:64])
    out = {}
    for ds in SETS:
        t = time.perf_counter()
        embed(texts[ds])
        out[ds] = len(texts[ds]) / (time.perf_counter() - t)
    one = []
    for text in texts["sst2"][:100]:
        t = time.perf_counter()
        embed([text])
        one.append(time.perf_counter() - t)
    out["one"] = 1000 * statistics.median(one)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for v in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", v], capture_output=True, text=True, check=True, cwd=ROOT
            )
            runs[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(v, runs[v][-1], flush=True)
    # ratios within each round (the machine's load drifts between rounds), then their medians
    rows = []
    for v, label in VARIANTS.items():
        row: list[object] = [label]
        for ds in SETS:
            speed = statistics.median(r[ds] for r in runs[v])
            ratio = statistics.median(r[ds] / ref[ds] for r, ref in zip(runs[v], runs["reference"]))
            gain = statistics.median(r[ds] / b[ds] for r, b in zip(runs[v], runs["before"]))
            row.append(f"{speed:.0f} ({ratio:.2f}x; {gain:.2f})")
        row.append(f"{statistics.median(r['one'] for r in runs[v]):.1f} ms")
        rows.append(row)
    command = f".venv/bin/python bench/onnx_parallel.py --rounds {args.rounds}"
    body = f"""## ONNX sessions: one on every CPU, or single-threaded side by side (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `{command}`.
The embedder a loaded `.clf` predicts with (MiniLM, ONNX int8, batches of 16 sorted texts): *one
session on every CPU*, as before (the batches one after another, each computed on every CPU), or
single-threaded sessions side by side, as now (`OnnxEmbedder.embed_batch`: one batch per CPU at a
time; a lone text, which cannot be split, on a session computing on every CPU). A fresh process per
figure; the two and raw PyTorch `SentenceTransformer.encode` (batch 64, the speed table's reference)
take turns, {args.rounds} rounds. Texts: every test text of sst2
(1,821), ag_news (1,000) and trec6 (500), each set in one call; *one text*: median time to embed one of
the first 100 sst2 test texts alone. Cells: texts/s (ratio to the reference; ratio to *before*), the
medians of the rounds' ratios.

{table(["serving", *SETS, "one text"], rows)}
"""
    publish("onnx-parallel", body, write=not args.no_write)


if __name__ == "__main__":
    main()
