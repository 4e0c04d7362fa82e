"""Generation speed and the accuracy of what it makes: example texts as JSON objects vs plain text.

    .venv/bin/python bench/generation.py [--datasets sst2 ag_news trec6 emotion6] [--examples-per-class 32]

Both modes generate fresh, in this run, from the same descriptions with the default local LLM
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

MODES = {"JSON object (before)": False, "plain text (default)": True}
HEADER = [
    "dataset", "mode", "kept", "LLM calls", "tokens / kept", "wall s", "kept / minute", "kept / call",
    "prompt", "prompt + unlabeled",
]  # fmt: skip


def run(name: str, n: int, pool_size: int, emb, cache, seed: int = 0) -> list[list[object]]:
    descs = prompts()[name]
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    pool = [r["text"] for r in pool_rows(train, pool_size)]
    rows, base = [], None
    for mode, plain in MODES.items():
        path = OUT / f"{name}-gen-{'plain' if plain else 'json'}-n{n}{f'-seed{seed}' if seed else ''}.jsonl"
        path.unlink(missing_ok=True)
        pipeline.PLAIN_TEXT = plain
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
    pipeline.PLAIN_TEXT = True
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--examples-per-class", type=int, default=32)
    ap.add_argument("--unlabeled", type=int, default=5000)
    ap.add_argument("--random-state", type=int, default=0, help="generation seed (another sample, same prompts)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    emb, cache = get_embedder(None), EmbeddingCache()
    n, seed = args.examples_per_class, args.random_state
    rows = [r for ds in args.datasets for r in run(ds, n, args.unlabeled, emb, cache, seed)]
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


if __name__ == "__main__":
    main()
