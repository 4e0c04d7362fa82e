"""Prediction speed, cold start, memory and generation cost, as ratios measured in one run.

    .venv/bin/python bench/speed.py [--lines 100000]

The machine is shared and noisy: compare the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    FRESH_ENV,
    ROOT,
    answered_share,
    interleaved,
    machine,
    per_class_sample,
    prompts,
    publish,
    read_rows,
    scores,
    section_args,
    section_heading,
    table,
    test_sample,
)

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache
from promptclf.embedders.local import resolve_model_path

PY = sys.executable
ROUNDS = 5  # of the throughput rows, taking turns
COLD_REPEATS = 9  # fresh processes per cold-start row, taking turns
BACKENDS = {
    "PyTorch (sentence-transformers)": "sentence-transformers:all-MiniLM-L6-v2",
    "ONNX fp32": "onnx:all-MiniLM-L6-v2",
    "ONNX int8 (fast path off)": "onnx-int8:all-MiniLM-L6-v2",
}
# the fast path in front of ONNX int8: by default (fast="auto", 1% bound) and with fast=True (2%, 3% with a vote)
SERVED_FAST = {'default: fast path (`fast="auto"`) + ONNX int8': "auto", "fast path (`fast=True`) + ONNX int8": True}
F1_SETS = ("sst2", "ag_news", "trec6", "emotion6")  # emotion6 is held out from the dev sets
F1_HEADER = [
    "dataset", *BACKENDS, *SERVED_FAST, "int8 − PyTorch (pts)", "default − PyTorch (pts)",
    "fast=True − PyTorch (pts)", "static share (default)", "static share (fast=True)",
]  # fmt: skip
GEN_HEADER = ["LLM", "kept", "LLM calls", "tokens", "tokens / kept example", "kept / minute", "kept / expand calls"]


def timed(fn, repeat: int = 3) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def peak_rss_mib(args: list[str], stdin_path: Path) -> float:
    """Peak RSS of a ``promptclf`` CLI run, reported by the child itself at exit.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child of this (large)
    process would report this process's peak.
    """
    assert args[:3] == [PY, "-m", "promptclf"]
    code = (
        "import atexit, runpy, sys\n"
        "def hwm():\n"
        "    kb = next(x.split()[1] for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
        "    print('RSS', kb, file=sys.stderr)\n"
        "atexit.register(hwm)\n"
        f"sys.argv = ['promptclf', *{args[3:]!r}]\n"
        "runpy.run_module('promptclf', run_name='__main__')\n"
    )
    with open(stdin_path, "rb") as f:
        out = subprocess.run(
            [PY, "-c", code], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=FRESH_ENV, cwd=ROOT
        )
    lines = [x for x in out.stderr.decode().splitlines() if x.startswith("RSS ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return int(lines[-1].split()[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true")
    section_args(ap, "speed")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    # the sst2 test texts: unseen in training, so the fast path's share is what it is on new text
    texts = [r["text"] for r in read_rows("sst2", "test")]

    # models on the whole train split, one per dataset and fast setting: F1 of each way to serve them
    paths: dict[tuple[str, object], Path] = {}
    for ds in F1_SETS:
        cache = EmbeddingCache()  # the two models of a dataset embed the same texts once
        for fast in SERVED_FAST.values():
            head = PromptClassifier(fast=fast, finetune=False, progress=False).use_embedding_cache(cache)
            for label, xs in per_class_sample(read_rows(ds, "train"), 10**9).items():
                head.add_data_to_class(label, xs)
            paths[ds, fast] = tmp / f"{ds}-{fast}.clf"
            head.train().save(paths[ds, fast])
    model = paths["sst2", "auto"]
    small, big = tmp / "small.txt", tmp / "big.txt"
    pool = [t.replace("\n", " ") for t in texts]
    small.write_text("\n".join(pool[i % len(pool)] for i in range(1000)) + "\n")
    big.write_text("\n".join(pool[i % len(pool)] for i in range(args.lines)) + "\n")

    # 1. throughput: a loaded .clf on each backend vs raw sentence-transformers, same texts and batch size
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    bs = 64
    raw.encode(texts[:64], batch_size=bs)
    mpath = resolve_model_path("all-MiniLM-L6-v2")
    ways = [(name, spec, model) for name, spec in BACKENDS.items()]
    ways += [(name, None, paths["sst2", fast]) for name, fast in SERVED_FAST.items()]
    loaded = []
    for _, spec, path in ways:
        served = PromptClassifier.load(path, embedder=spec)
        if spec is not None:
            served.set_params(fast=False)
        served.progress = False
        served.predict(texts[:64])
        loaded.append(served)
    # the reference and every backend take turns: the machine's load drifts over the minutes one pass
    # takes, and a ratio of two passes minutes apart moved by a tenth. Texts/s: the best round of each;
    # the ratio: the median over rounds of that round's ratio (raw PyTorch was the noisiest row here)
    runs = [lambda: raw.encode(texts, batch_size=bs, normalize_embeddings=True)]
    runs += [lambda served=served: served.predict(texts) for served in loaded]
    per_run = list(zip(*([timed(run, repeat=1) for run in runs] for _ in range(ROUNDS))))
    best = [min(ts) for ts in per_run]
    ratio = [statistics.median(r / t for r, t in zip(per_run[0], ts)) for ts in per_run]
    t_raw = best[0]
    # cold start: a fresh process loads and predicts one text; the reference loads the raw model and
    # encodes it. The rows take turns, nine times (one row's median of three moved 0.24-0.35 s between
    # runs on a busy machine), and the import of promptclf alone with them
    codes = {"reference": "from sentence_transformers import SentenceTransformer; "
             f"SentenceTransformer({mpath!r}, device='cpu').encode(['a fine film'])",
             "import": "import promptclf"}  # fmt: skip
    for name, spec, path in ways:
        off = "" if spec is None else "c.fast = False; "
        codes[name] = (
            f"import promptclf; c = promptclf.load({str(path)!r}, embedder={spec!r}); {off}c.predict(['a fine film'])"
        )
    cold = interleaved(codes, repeat=COLD_REPEATS)
    cold_raw = cold["reference"]
    rows = [["raw `SentenceTransformer.encode` (reference)", f"{len(texts) / t_raw:.0f}", "1.00x", f"{cold_raw:.2f} s",
             "1.00x", "", ""]]  # fmt: skip
    for (name, spec, path), served, t, x in zip(ways, loaded, best[1:], ratio[1:]):
        cli = [PY, "-m", "promptclf", "predict", str(path), "-"] + (
            [] if spec is None else ["--embedder", spec, "--no-fast"]
        )
        rss = peak_rss_mib(cli, small)
        share = f"static head answered {answered_share(served, texts):.0%}" if spec is None else ""
        rows.append([name, f"{len(texts) / t:.0f}", f"{x:.2f}x", f"{cold[name]:.2f} s", f"{cold_raw / cold[name]:.2f}x",
                     f"{rss:.0f} MiB", share])  # fmt: skip
    cold_import = cold["import"]

    # 2. macro-F1 of each way to serve the same trained model
    f1_rows = []
    for ds in F1_SETS:
        test_texts, test_labels = test_sample(ds)
        f1s = []
        for spec in BACKENDS.values():
            served = PromptClassifier.load(paths[ds, "auto"], embedder=spec).set_params(fast=False)
            f1s.append(scores(test_labels, served.predict(test_texts))["macro_f1"])
        shares = []
        for fast in SERVED_FAST.values():
            served = PromptClassifier.load(paths[ds, fast])
            f1s.append(scores(test_labels, served.predict(test_texts))["macro_f1"])
            shares.append(f"{answered_share(served, test_texts):.0%}" if served.fast_ is not None else "no fast path")
        f1_rows.append([ds, *f1s, *(f"{100 * (f - f1s[0]):+.1f}" for f in f1s[2:]), *shares])

    # 3. memory of the streaming CLI (default backend): many lines vs few
    cli = [PY, "-m", "promptclf", "predict", str(model), "-"]
    rss_small = peak_rss_mib(cli, small)
    t = time.perf_counter()
    rss_big = peak_rss_mib(cli, big)
    t_big = time.perf_counter() - t
    mem_rows = [[f"{args.lines:,} lines", f"{rss_big:.0f} MiB", f"{args.lines / t_big:.0f} lines/s"],
                ["1,000 lines", f"{rss_small:.0f} MiB", ""], ["ratio", f"{rss_big / rss_small:.2f}x", ""]]  # fmt: skip

    # 4. generation with the default local LLM
    gen = PromptClassifier(examples_per_class=8, progress=False)
    gen.prompt_train(prompts()["sst2"])
    g = gen.generation_report_
    tokens = g["prompt_tokens"] + g["completion_tokens"]
    gen_rows = [[
        g["llm"], g["kept"], g["calls"], tokens, f"{tokens / max(1, g['kept']):.0f}",
        f"{60 * g['kept'] / g['seconds']:.1f}", g["kept_ratio"],
    ]]  # fmt: skip
    title, command = section_heading("Speed, cold start, memory", "bench/speed.py", args.section, "speed")
    body = f"""## {title}

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python {command}` (part of `make bench`).
Ratios are measured in one run on a shared machine, the reference and each backend taking turns over
{ROUNDS} rounds (texts/s: each one's best round; *vs reference*: the median of the rounds' ratios); the
absolute numbers move, the ratios much less.
Reference: raw `SentenceTransformer.encode` of the same packaged all-MiniLM-L6-v2 on the same
{len(texts):,} sst2 test texts at batch size 64. A loaded `.clf` trained with the defaults on the whole
sst2 train split predicts those texts (embedding + head + bookkeeping) on each backend with the fast path
off; then as it loads, with the fast path in front of ONNX int8 (the default, `fast="auto"`: its static
head answers where it changes at most 1% of the answers on the training run's real texts); and a
`.clf` trained with `fast=True` (2%, or 3% where its static head votes, as with these labels). Cold start is a
fresh process that loads a `.clf` and predicts
one text, against one that loads the raw model and encodes one text (median of {COLD_REPEATS} fresh
processes per row, the rows taking turns); RSS is the peak of `promptclf
predict` over 1,000 lines. `import promptclf` alone takes {cold_import:.2f} s. `PromptClassifier.load`
serves with ONNX int8 by default (and trains with fp32). The static model and the int8 file are made
once per machine and cached, before these runs.

{table(["backend", "texts/s", "vs reference", "cold start", "faster than reference", "peak RSS", ""], rows)}

Macro-F1 of each way to serve the same model (head trained on PyTorch embeddings of the whole train
split; fixed test sample); emotion6 is held out from the dev sets (a GoEmotions stand-in). The
default must lose at most 1 point against PyTorch serving, the fast path too. Shares: texts of the
test sample the static head answered.

{table(F1_HEADER, f1_rows)}

Memory of `promptclf predict` (the default: fast path and ONNX int8, streaming in batches of 256):

{table(["input", "peak RSS", "throughput"], mem_rows)}

Generation with the default local LLM (`examples_per_class=8`, sst2 descriptions):

{table(GEN_HEADER, gen_rows)}
"""
    publish(args.section, body, write=not args.no_write)


if __name__ == "__main__":
    main()
