"""How many texts (and padded tokens) one ONNX Runtime call should take: speed and memory.

    .venv/bin/python bench/onnx_batching.py [--no-write]

Each setting runs in a fresh process (ONNX Runtime's memory arena grows to the largest call it has
seen and never shrinks, so memory can only be read from a clean start). The embedder is the one a
loaded `.clf` predicts with (MiniLM, ONNX int8). Texts: the 1,821 sst2 test sentences embedded all at
once (*sorted set*) and as a server's micro-batches would come (*batches of 64*, in arrival order);
200 newsgroups_long posts (*long*, chunked to the 256-token window: 3-4 chunks a post); *RSS +*: how
much the process grew over its first embedding of a few short texts by the end. Median of 3 passes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import ROOT, machine, publish, read_rows, table

SETTINGS = [(64, None), (32, None), (16, None), (8, None), (16, 2048), (16, 1024), (16, 512), (16, 256)]


def child(batch_size: int, max_tokens: int | None) -> dict:
    import psutil

    from promptclf.embedders.onnx_backend import OnnxInt8Embedder

    short = [r["text"] for r in read_rows("sst2", "test")]
    long = [r["text"] for r in read_rows("newsgroups_long", "test")][:200]
    emb = OnnxInt8Embedder(batch_size=batch_size, max_tokens=max_tokens)
    emb.embed(short[:8])
    rss0 = psutil.Process().memory_info().rss
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        emb.embed(short)
        whole = len(short) / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(0, 1280, 64):
            emb.embed(short[i : i + 64])
        b64 = 1280 / (time.perf_counter() - t)
        t = time.perf_counter()
        emb.embed(long)
        runs.append((whole, b64, len(long) / (time.perf_counter() - t)))
    rss = (psutil.Process().memory_info().rss - rss0) / 2**20
    return {k: statistics.median(r[i] for r in runs) for i, k in enumerate(("whole", "b64", "long"))} | {"rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        bs, mt = args.child
        print(json.dumps(child(int(bs), None if mt == "none" else int(mt))))
        return
    figs = {}
    for bs, mt in SETTINGS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(bs), str(mt or "none")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        figs[(bs, mt)] = json.loads(out.stdout.strip().splitlines()[-1])
        print(bs, mt, figs[(bs, mt)], flush=True)
    base = figs[(64, None)]
    rows = [
        [
            bs,
            mt or "-",
            f"{f['whole']:.0f} ({f['whole'] / base['whole']:.2f})",
            f"{f['b64']:.0f} ({f['b64'] / base['b64']:.2f})",
            f"{f['long']:.1f} ({f['long'] / base['long']:.2f})",
            f"{f['rss']:.0f}",
        ]
        for (bs, mt), f in figs.items()
    ]
    body = (
        "## ONNX batching: texts and tokens per call\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/onnx_batching.py`.\n"
        "MiniLM ONNX int8 (the serving default), a fresh process per row. Texts/s (ratio to the old\n"
        "setting, 64 texts per call and no token cap); *RSS +* MiB the process grew while embedding them.\n"
        "*max tokens*: padded tokens (rows x longest) per call.\n\n"
        + table(
            ["texts per call", "max tokens", "sst2 sorted set", "sst2 batches of 64", "long posts", "RSS + MiB"], rows
        )
        + "\n"
    )
    publish("onnx-batching", body, not args.no_write)


if __name__ == "__main__":
    main()
