"""Prediction speed, cold start, memory and generation cost, as ratios measured in one run.

    .venv/bin/python bench/speed.py [--lines 100000]

The machine is shared and noisy: compare the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, per_class_sample, prompts, read_rows, table, write_section

from promptclf import PromptClassifier
from promptclf.embedders.local import resolve_model_path

PY = sys.executable
GEN_HEADER = ["LLM", "kept", "LLM calls", "tokens", "tokens / kept example", "kept / minute", "kept / expand calls"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def timed(fn, repeat: int = 3) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def fresh_process(code: str, repeat: int = 3) -> float:
    """Wall time of a new interpreter running ``code`` (median of ``repeat``)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([PY, "-c", code], check=True, env=ENV, cwd=ROOT, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_rss_mib(args: list[str], stdin_path: Path) -> float:
    """Peak RSS of a child process, read from wait4's rusage (KiB on Linux)."""
    with open(stdin_path, "rb") as f:
        proc = subprocess.Popen(args, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(proc.stderr.read().decode()[-2000:])
    return usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    train = read_rows("sst2", "train")
    texts = [r["text"] for r in train[:2000]]

    clf = PromptClassifier(progress=False)
    for label, xs in per_class_sample(train, 16).items():
        clf.add_data_to_class(label, xs)
    model = tmp / "sst2.clf"
    clf.train().save(model)

    # 1. throughput: loaded .clf vs raw sentence-transformers on the same texts and batch size
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    loaded = PromptClassifier.load(model)
    loaded.progress = False
    bs = loaded._embedder.batch_size
    raw.encode(texts[:64], batch_size=bs)
    loaded.predict(texts[:64])
    t_raw = timed(lambda: raw.encode(texts, batch_size=bs, normalize_embeddings=True))
    t_clf = timed(lambda: loaded.predict(texts))

    # 2. cold start: fresh process, load and predict one text
    mpath = resolve_model_path("all-MiniLM-L6-v2")
    cold_clf = fresh_process(f"import promptclf; promptclf.load({str(model)!r}).predict(['a fine film'])")
    cold_raw = fresh_process(
        "from sentence_transformers import SentenceTransformer; "
        f"SentenceTransformer({mpath!r}, device='cpu').encode(['a fine film'])"
    )
    cold_import = fresh_process("import promptclf")

    # 3. memory of the streaming CLI: many lines vs few
    small, big = tmp / "small.txt", tmp / "big.txt"
    pool = [t.replace("\n", " ") for t in texts]
    small.write_text("\n".join(pool[i % len(pool)] for i in range(1000)) + "\n")
    big.write_text("\n".join(pool[i % len(pool)] for i in range(args.lines)) + "\n")
    cli = [PY, "-m", "promptclf", "predict", str(model), "-"]
    rss_small = peak_rss_mib(cli, small)
    t = time.perf_counter()
    rss_big = peak_rss_mib(cli, big)
    t_big = time.perf_counter() - t

    # 4. generation with the default local LLM
    gen = PromptClassifier(examples_per_class=8, progress=False)
    gen.prompt_train(prompts()["sst2"])
    g = gen.generation_report_
    tokens = g["prompt_tokens"] + g["completion_tokens"]

    rows = [
        ["predict throughput, 2,000 sst2 texts", f"{len(texts) / t_clf:.0f} texts/s",
         f"{len(texts) / t_raw:.0f} texts/s", f"{t_clf / t_raw:.3f}x time ({100 * (t_clf / t_raw - 1):+.1f}%)"],
        ["cold start: new process, load, predict 1 text", f"{cold_clf:.2f} s", f"{cold_raw:.2f} s",
         f"{cold_clf / cold_raw:.2f}x"],
        ["`import promptclf` alone", f"{cold_import:.2f} s", "", ""],
        [f"peak RSS of `promptclf predict`, {args.lines:,} vs 1,000 lines", f"{rss_big:.0f} MiB",
         f"{rss_small:.0f} MiB", f"{rss_big / rss_small:.2f}x ({args.lines / t_big:.0f} lines/s)"],
    ]  # fmt: skip
    gen_rows = [[
        g["llm"], g["kept"], g["calls"], tokens, f"{tokens / max(1, g['kept']):.0f}",
        f"{60 * g['kept'] / g['seconds']:.1f}", g["kept_ratio"],
    ]]  # fmt: skip
    body = f"""## Speed, cold start, memory

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/speed.py` (part of `make bench`).
Ratios are measured in one run on a shared machine; the absolute numbers move, the ratios much less.
Reference column: raw `SentenceTransformer.encode` of the same packaged all-MiniLM-L6-v2, same texts and
batch size ({bs}); cold start compares a fresh process that loads a `.clf` and predicts one text with one that
loads the raw model and encodes one text.

{table(["measure", "promptclf", "reference", "ratio"], rows)}

Generation with the default local LLM (`examples_per_class=8`, sst2 descriptions):

{table(GEN_HEADER, gen_rows)}
"""
    print(body)
    if not args.no_write:
        write_section("speed", body)
    json.dump({"t_clf": t_clf, "t_raw": t_raw}, sys.stderr)


if __name__ == "__main__":
    main()
