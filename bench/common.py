"""Shared helpers for the benchmark scripts: datasets, sampling, scoring, markdown tables."""

from __future__ import annotations

import csv
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from as_avx2 import MASKED, listed_flags, masked_here

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("PROMPTCLF_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "bench" / "out"
MAX_TEST = 1000
SEED = 0


# A stand-in for the held-back set the issues describe ("short first-person posts, six fine-grained
# feelings"), which no session can see: GoEmotions rows whose only label is one of six basic emotions.
# Its test split holds every such GoEmotions test row plus a fixed sample of train rows (500 in all);
# its train split (the unlabeled pool, and probe-full's labels) holds the rest. Descriptions are
# GoEmotions' own from prompts.json. Not a dev set: measured to check a guard, not to tune on.
PROXY = {"emotion6": ("goemotions", ("anger", "fear", "joy", "love", "sadness", "surprise"), 500)}


@functools.cache
def compile_package() -> None:
    """Write promptclf's bytecode, once, before fresh processes are timed. An installed package has it
    (pip compiles at install); a source checkout run with ``PYTHONDONTWRITEBYTECODE`` (set on these
    machines) would compile every module changed since its bytecode was last written at every start,
    a few tens of milliseconds of a cold start that no user pays."""
    import compileall

    compileall.compile_dir(ROOT / "promptclf", quiet=1)


FRESH_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def fresh_seconds(code: str) -> float:
    """Wall time of a new interpreter running ``code`` (promptclf's bytecode written first)."""
    compile_package()
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=FRESH_ENV, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(f"a fresh process failed ({out.returncode}):\n{out.stderr.decode()[-2000:]}")
    return seconds


def interleaved(codes: dict[Any, str], repeat: int = 9) -> dict[Any, float]:
    """Median wall time of a fresh interpreter running each code, the codes taking turns ``repeat``
    times: the machine's load drifts, and a row timed minutes after another is not comparable to it
    (on a busy 2-core machine one cold start moved 0.24-0.35 s between runs of three)."""
    times: dict[Any, list[float]] = {key: [] for key in codes}
    for _ in range(repeat):
        for key, code in codes.items():
            times[key].append(fresh_seconds(code))
    return {key: statistics.median(t) for key, t in times.items()}


def rates_taking_turns(fns: dict[Any, Callable[[], object]], n: int, rounds: int) -> dict[Any, float]:
    """Median items per second of each function (each call handles ``n`` items), the functions taking
    turns ``rounds`` times in this process, for the reason ``interleaved`` gives."""
    runs: dict[Any, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            runs[key].append(n / (time.perf_counter() - t))
    return {key: statistics.median(v) for key, v in runs.items()}


def read_rows(name: str, split: str) -> list[dict[str, str]]:
    if name in PROXY:
        return _proxy_rows(name)[split]
    with open(DATASETS / name / f"{split}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _proxy_rows(name: str) -> dict[str, list[dict[str, str]]]:
    source, classes, n_test = PROXY[name]
    keep = set(classes)

    def single(split: str) -> list[dict[str, str]]:
        with open(DATASETS / source / f"{split}.csv", newline="", encoding="utf-8") as f:
            return [{"text": r["text"], "label": r["labels"]} for r in csv.DictReader(f) if r["labels"] in keep]

    test, train = single("test"), single("train")
    order = np.random.default_rng(SEED).permutation(len(train))
    extra = n_test - len(test)
    return {"test": test + [train[i] for i in order[:extra]], "train": [train[i] for i in order[extra:]]}


def test_sample(name: str) -> tuple[list[str], list[str]]:
    """A fixed sample of at most 1,000 test rows (same seed every run)."""
    rows = read_rows(name, "test")
    idx = np.random.default_rng(SEED).permutation(len(rows))[:MAX_TEST]
    return [rows[i]["text"] for i in idx], [rows[i]["label"] for i in idx]


def task(spec: str) -> tuple[str, dict[str, str], list[str], list[str]]:
    """A benchmark task: a set's name, or ``name:class,class`` for a task cut from it (only those classes'
    descriptions and test rows). Returns the stem its files are named by, the descriptions and the test
    sample (texts, labels)."""
    name, _, only = spec.partition(":")
    descs, (texts, labels) = prompts()[name], test_sample(name)
    if not only:
        return name, descs, texts, labels
    classes = only.split(",")
    if unknown := [c for c in classes if c not in descs]:
        raise SystemExit(f"{name} has no class {unknown[0]!r} (it has {', '.join(descs)})")
    rows = [i for i, y in enumerate(labels) if y in classes]
    stem = "-".join([name, *classes])
    return stem, {c: descs[c] for c in classes}, [texts[i] for i in rows], [labels[i] for i in rows]


def pool_rows(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """The unlabeled pool every benchmark uses: the first ``n`` rows of a fixed permutation of ``rows``
    (their labels stay hidden from the model; benchmarks keep them to check pseudo-labels)."""
    return [rows[i] for i in np.random.default_rng(SEED).permutation(len(rows))[:n]]


def pool_texts(name: str, n: int = 5000) -> list[str]:
    """The texts of ``name``'s unlabeled pool (``pool_rows`` of its train split), labels dropped."""
    return [r["text"] for r in pool_rows(read_rows(name, "train"), n)]


def prompt_model(name: str, per_class: int, cache=None, examples: str | None = None, **settings):
    """Where the unlabeled-mode benchmarks start: the product's model on the set's descriptions and its
    cached generated examples (``OUT/<name>-direct-n<per_class>.jsonl``, bench/accuracy.py makes them, or
    the file ``OUT/<examples>``), nothing generated, the encoder frozen unless ``settings`` (which go to
    ``PromptClassifier``) say ``finetune``."""
    from promptclf import PromptClassifier

    clf = PromptClassifier(**{"progress": False, "finetune": False, **settings})
    if cache is not None:
        clf.use_embedding_cache(cache)
    clf.load_examples(OUT / (examples or f"{name}-direct-n{per_class}.jsonl"), include_pseudo=False)
    return clf.prompt_train(prompts()[name], generate=False)


def interpolate_with_the_base(alpha: float):
    """WiSE-FT (Wortsman et al. 2022) for the benchmarks: after each fine-tuning of the encoder, every
    float weight set to ``base + alpha * (tuned - base)``. Interpolating a fine-tuned model's weights with
    its base's holds up better where the text to predict differs from the text tuned on (here: tuned on
    generated examples and pseudo-labels, predicting real text). Wraps `promptclf.finetune.finetune`,
    which the classifier imports when it tunes; returns what undoes the wrap."""
    import promptclf.finetune as F

    plain = F.finetune

    def wise(model_path, *a, **kw):
        import torch

        model, report = plain(model_path, *a, **kw)
        ref = F.load_model(model_path).state_dict()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.is_floating_point() and k in ref:
                    v.copy_(ref[k] + alpha * (v - ref[k]))
        return model, report

    F.finetune = wise
    return lambda: setattr(F, "finetune", plain)


def soup_of_finetunes(k: int):
    """A uniform model soup (Wortsman et al. 2022) for the benchmarks: each fine-tuning of the encoder
    runs ``k`` times from the same base, on pair draws of different seeds, and the tuned weights are
    averaged (float weights only). Averaging fine-tunes of a small, noisy set is meant to cancel the noise
    of one draw of pairs. Wraps `promptclf.finetune.finetune` as `interpolate_with_the_base` does;
    returns what undoes the wrap."""
    import promptclf.finetune as F

    plain = F.finetune

    def soup(model_path, *a, seed: int = 0, **kw):
        import torch

        model, report = plain(model_path, *a, seed=seed, **kw)
        total = {n: v.detach().double().clone() for n, v in model.state_dict().items() if v.is_floating_point()}
        for j in range(1, k):
            other, _ = plain(model_path, *a, seed=seed + 1000 * j, **kw)
            for n, v in other.state_dict().items():
                if n in total:
                    total[n] += v.double()
        with torch.no_grad():
            for n, v in model.state_dict().items():
                if n in total:
                    v.copy_((total[n] / k).to(v.dtype))
        return model, report

    F.finetune = soup
    return lambda: setattr(F, "finetune", plain)


def answered_share(clf, texts: list[str]) -> float:
    """Share of ``texts`` the fast path's static head answers (the rest would go through the encoder,
    which is not run: only the static head's confidence decides)."""
    from promptclf.cascade import cascade_proba

    nothing = lambda ts: np.zeros((len(ts), len(clf.classes_)))  # noqa: E731
    return float(cascade_proba(clf.fast_, clf._static, texts, nothing)[1].mean())


def embed_once(clf, texts: list[str]) -> None:
    """Compute the transformer's vectors of ``texts`` once and serve ``clf``'s later embeddings of any of
    them (the fast path's rest included) from those: benches that predict the same texts several ways
    (long posts take minutes per pass). Only ever ask ``clf`` for these texts afterwards."""
    vectors = clf._embed(texts)
    at = {t: i for i, t in enumerate(texts)}
    clf._embed = lambda ts: vectors[[at[t] for t in ts]]


def test_f1(clf, name: str) -> tuple[list[str], list[str], Callable[[], float], float]:
    """``name``'s fixed test sample (texts, labels), a function giving ``clf.predict``'s macro-F1 on it now,
    and that macro-F1 with the fast path off (the transformer alone). The transformer's vectors of those
    texts are computed once (``embed_once``): for benches that predict them several ways."""
    texts, labels = test_sample(name)
    embed_once(clf, texts)
    f1 = lambda: scores(labels, list(clf.predict(texts)))["macro_f1"]  # noqa: E731
    fast, clf.fast = clf.fast, False
    alone = f1()
    clf.fast = fast
    return texts, labels, f1, alone


def per_class_sample(rows: list[dict[str, str]], k: int, seed: int = SEED) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for i in rng.permutation(len(rows)):
        r = rows[i]
        bucket = out.setdefault(r["label"], [])
        if len(bucket) < k:
            bucket.append(r["text"])
    return out


def prompts() -> dict[str, dict[str, str]]:
    out = json.loads((DATASETS / "prompts.json").read_text())
    for name, (source, classes, _) in PROXY.items():
        out[name] = {c: out[source][c] for c in classes}
    return out


def scores(y_true: list[str], y_pred: list[str | None]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = [p if p is not None else "__none__" for p in y_pred]
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, average="macro", labels=sorted(set(y_true)))),
    }


def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    py = platform.python_version()
    return f"{os.cpu_count()} cores, {cpu} ({cpu_flags()}), Python {py}, commit {commit.strip()}"


def cpu_flags() -> str:
    """The vector instruction sets speed depends on: int8 kernels differ with VNNI, AVX-512, AVX2."""
    want = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "neon")
    flags = listed_flags()
    if not flags:
        return "flags unknown"
    have = [f for f in want if f in flags]
    if masked_here():  # bench/as_avx2.py: the libraries here chose their AVX2 kernels
        masked = [f for f in have if f.startswith(MASKED)]
        kept = " ".join(f for f in have if f not in masked)
        return f"{kept}; SIMULATED by bench/as_avx2.py: {' '.join(masked)} masked out of CPUID"
    return " ".join(have) if have else "no AVX2"


def table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def section_args(ap, default: str) -> None:
    """``--section``: the BENCHMARKS.md section to write; a run on another CPU gets its own."""
    ap.add_argument("--section", default=default, help=f"another CPU gets its own section ({default}-avx2, say)")


def section_heading(title: str, script: str, section: str, default: str) -> tuple[str, str]:
    """The heading and the command line of a section written by ``script`` with ``--section``."""
    if section == default:
        return title, script
    return f"{title} on another CPU ({cpu_flags()})", f"{script} --section {section}"


def publish(name: str, body: str, write: bool) -> None:
    """Print a benchmark's markdown and, unless told not to, put it in BENCHMARKS.md."""
    print(body)
    if write:
        write_section(name, body)


def write_section(name: str, body: str) -> None:
    """Replace the section ``<!-- name -->...<!-- /name -->`` of BENCHMARKS.md, keeping the others."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        a, b = text.index(start), text.index(end) + len(end)
        text = text[:a] + block + text[b:]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
