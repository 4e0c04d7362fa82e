"""Generation speed and the accuracy of what it makes: example texts as JSON objects vs plain text, or
(``--batches``) plain text decoded one request at a time vs side by side in batches, or (``--threads``)
llama-cpp-python's thread counts vs one thread per core, and SmolLM2's packaged Q4_1 weights vs Q8_0.

    .venv/bin/python bench/generation.py [--datasets sst2 ag_news trec6 emotion6] [--examples-per-class 32]
        [--batches | --threads]

Both modes generate fresh, in this run, from the same descriptions with the default local LLMs
(``strategy="direct"``, the default), so the kept-per-minute ratio is measured on one machine state.
Each store is then trained on the same way (frozen encoder, prompt only, and with 5,000 unlabeled
train-split texts) and scored on the fixed test sample. emotion6 is not a dev set: it is there so
a gain that only fits the dev sets shows. Stores are kept in bench/out/<name>-gen-<mode>-n<k>.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from common import OUT, machine, pool_rows, prompts, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.generation import pipeline
from promptclf.llms import local

# name: the module settings it runs with (the others as they are)
MODES = {
    "JSON object (before)": {"PLAIN_TEXT": False, "BATCHED": False},
    "plain text, one at a time": {"PLAIN_TEXT": True, "BATCHED": False},
}
BATCH_MODES = {"one at a time": {"BATCHED": False}, "in batches (default)": {"BATCHED": True}}
# 0 threads leaves the choice to llama-cpp-python: half of os.cpu_count() for one-token steps, all of it for batches
THREAD_MODES = {
    "llama-cpp-python's threads (before)": {"default_threads": lambda: 0, "REQUANTISED": False},
    "one thread per core (default)": {"REQUANTISED": False},
    "one thread per core, SmolLM2 as Q8_0": {"REQUANTISED": True},
}
SWITCHES = {"PLAIN_TEXT": pipeline, "BATCHED": local, "default_threads": local, "REQUANTISED": local}
HEADER = [
    "dataset", "mode", "kept", "LLM calls", "tokens / kept", "wall s", "kept / minute", "kept / call",
    "prompt", "prompt + unlabeled",
]  # fmt: skip


def run(name: str, n: int, pool_size: int, emb, cache, seed: int = 0, modes=MODES) -> list[list[object]]:
    descs = prompts()[name]
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    pool = [r["text"] for r in pool_rows(train, pool_size)]
    rows, base = [], None
    defaults = {k: getattr(m, k) for k, m in SWITCHES.items()}
    for mode, switches in modes.items():
        for k, m in SWITCHES.items():
            setattr(m, k, switches.get(k, defaults[k]))
        kind = ("plain" if pipeline.PLAIN_TEXT else "json") + ("-batched" if local.BATCHED else "")
        kind += "-llamacpp-threads" if "default_threads" in switches else ""
        kind += "-q8_0" if local.REQUANTISED else ""
        path = OUT / f"{name}-gen-{kind}-n{n}{f'-seed{seed}' if seed else ''}.jsonl"
        path.unlink(missing_ok=True)
        clf = PromptClassifier(
            embedder=emb,
            examples_per_class=n,
            saved_examples_path=path,
            finetune=False,
            random_state=seed,
            progress=False,
        ).use_embedding_cache(cache)
        t0 = time.perf_counter()
        clf.prompt_train(descs)
        wall = time.perf_counter() - t0
        g = clf.generation_report_
        tokens = g["prompt_tokens"] + g["completion_tokens"]
        prompt_f1 = scores(labels, clf.predict(texts))["macro_f1"]
        unl_f1 = scores(labels, clf.train(unlabeled=pool).predict(texts))["macro_f1"]
        rate = 60 * g["kept"] / g["seconds"]
        base = base or rate
        rows.append([
            f"{name} (seed {seed})" if seed else name, mode, g["kept"], g["calls"],
            f"{tokens / max(1, g['kept']):.0f}", f"{wall:.0f}",
            f"{rate:.1f} ({rate / base:.2f}x)", f"{g['kept'] / max(1, g['calls']):.2f}",
            f"{prompt_f1:.3f}", f"{unl_f1:.3f}",
        ])  # fmt: skip
        print(rows[-1], flush=True)
    for k, m in SWITCHES.items():
        setattr(m, k, defaults[k])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--examples-per-class", type=int, default=32)
    ap.add_argument("--unlabeled", type=int, default=5000)
    ap.add_argument("--random-state", type=int, default=0, help="generation seed (another sample, same prompts)")
    ap.add_argument("--batches", action="store_true", help="one request at a time vs in batches (plain text both)")
    ap.add_argument("--threads", action="store_true", help="llama.cpp's threads and SmolLM2's weights")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    emb, cache = get_embedder(None), EmbeddingCache()
    n, seed = args.examples_per_class, args.random_state
    modes = BATCH_MODES if args.batches else THREAD_MODES if args.threads else MODES
    rows = [r for ds in args.datasets for r in run(ds, n, args.unlabeled, emb, cache, seed, modes)]
    if args.batches:
        publish("generation-batches", batches_body(args, rows), write=not args.no_write)
        return
    if args.threads:
        publish("generation-threads", threads_body(args, rows), write=not args.no_write)
        return
    body = f"""## Generation speed

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/generation.py`.
Default local LLM (SmolLM2-135M, llama.cpp), `strategy="direct"`, {args.examples_per_class} examples per class, both
modes generated fresh in this run from the same descriptions; every quality filter on in both. "JSON
object" decodes each example under llama.cpp's JSON-schema grammar (`{{"text": ...}}`, 120 tokens at
most); "plain text" decodes freely up to the first newline and drops an answer that reaches 96
tokens instead of cutting it. Accuracy: macro-F1 on the fixed test sample, frozen MiniLM, the
prompt alone and with {args.unlabeled:,} unlabeled train-split texts; emotion6 is held out from the
dev sets (a GoEmotions stand-in, see bench/common.py).

{table(HEADER, rows)}
"""
    publish("generation", body, write=not args.no_write)


def batches_body(args, rows: list[list[object]]) -> str:
    return f"""## Generation in batches

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/generation.py --batches
--datasets {" ".join(args.datasets)} --examples-per-class {args.examples_per_class}`.
The default local LLMs (SmolLM2-135M; for two to four classes Gemma 3 270M beside it, each writing
half), {args.examples_per_class} examples per class, `strategy="direct"`, plain text, every quality filter on;
both modes generate fresh, in this run, from the same descriptions. *one at a time*: each request decoded alone
(llama-cpp-python's `create_completion`, the prompt's cached prefix reused); *in batches*: the
pipeline's batch of up to 8 requests decoded side by side in one llama.cpp context, their common
prompt decoded once (`promptclf.llms.llama_batch`). *tokens / kept* counts each request's prompt
whole. Accuracy: macro-F1 on the fixed test sample, frozen MiniLM, the prompt alone and with
{args.unlabeled:,} unlabeled train-split texts (another sample of examples, not a better one: the
two modes draw differently); emotion6 is held out from the dev sets.

{table(HEADER, rows)}
"""


def threads_body(args, rows: list[list[object]]) -> str:
    return f"""## Generation threads and weights

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/generation.py --threads
--datasets {" ".join(args.datasets)} --examples-per-class {args.examples_per_class}`.
The default local LLMs and generation (as "Generation in batches": plain text, requests in batches of 8,
every filter on), {args.examples_per_class} examples per class, every mode generating fresh in this run from
the same descriptions. *llama-cpp-python's threads*: `Llama`'s defaults, half of `os.cpu_count()` for
steps of one token (a request answered alone, and a batch's last running sequence) and all of it for
longer steps; *one thread per core*: one per physical core the process may run on (affinity and
container quota) for both, as llama.cpp's own tools start; SmolLM2 decoded from the packaged Q4_1
file in both. *SmolLM2 as Q8_0*: from its weights requantised to Q8_0 on this machine
(`promptclf.llms.local.REQUANTISED = True`, opt-in; Gemma 3 270M, the second writer for two and three
classes, is decoded as packaged in every mode). Accuracy as
there (frozen MiniLM, the prompt alone and with {args.unlabeled:,} unlabeled train-split texts).

{table(HEADER, rows)}
"""


if __name__ == "__main__":
    main()
