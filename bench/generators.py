"""Which local LLM writes the examples, and how many per class: accuracy from the prompt for each.

    .venv/bin/python bench/generators.py [--datasets sst2 ag_news trec6 emotion6]
        [--variants smollm2:32 smollm2:96 gemma3-270m:32] [--pool 3000] [--no-write]

Per dataset and variant (packaged LLM : examples per class), the examples are generated with the
current defaults (`strategy="direct"`, plain text, every filter) and kept in bench/out/; a larger count
tops up the smaller one's file (the store generates only what is missing), so its cost column is the
whole file's. SmolLM2's files are the ones bench/accuracy.py uses. Then, on the same examples and the
packaged MiniLM: the prompt alone (frozen encoder, the default for a prompt-only run), the prompt alone
with `finetune=True` (one pass, the default budget), and the prompt plus a pool of unlabeled train
texts (labels hidden, frozen encoder: the self-training and the check of the generated examples, not
the fine-tuning, which bench/finetune.py measures). Macro-F1 on the accuracy table's fixed test sample.
emotion6 (bench/common.py) is not a dev set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import time

from accuracy import accumulate_cost, from_store, zero_shot
from common import OUT, SEED, machine, pool_rows, prompts, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.errors import GenerationError

log = logging.getLogger("bench")
HEADER = [
    "dataset", "LLM", "per class", "kept", "LLM calls", "gen. wall s", "kept / minute", "zero-shot",
    "prompt", "Δ pts", "prompt, ft", "Δ pts", "+ unlabeled", "Δ pts", "examples set aside",
]  # fmt: skip


def store_path(dataset: str, llm: str, n: int):
    # SmolLM2's name is the one bench/accuracy.py caches under
    return OUT / (f"{dataset}-direct-n{n}.jsonl" if llm == "smollm2" else f"{dataset}-direct-{llm}-n{n}.jsonl")


def generate(dataset: str, descs: dict[str, str], llm: str, n: int, emb, cache, **settings) -> dict:
    """Make (or top up) the cached examples; the cost of every run that made them. ``settings``: more
    classifier settings (``multi_label=True``)."""
    path = store_path(dataset, llm, n)
    cost = path.with_suffix(".cost.json")
    if not path.exists():
        smaller = sorted(
            (m for m in range(1, n) if store_path(dataset, llm, m).exists()), reverse=True
        )  # top up the largest smaller file rather than start again
        if smaller:
            src = store_path(dataset, llm, smaller[0])
            shutil.copy(src, path)
            if src.with_suffix(".cost.json").exists():
                shutil.copy(src.with_suffix(".cost.json"), cost)
    clf = PromptClassifier(
        embedder=emb, llm=f"llama-cpp:{llm}", examples_per_class=n, saved_examples_path=path, finetune=False,
        progress=False, random_state=SEED, **settings,
    ).use_embedding_cache(cache)  # fmt: skip
    t0 = time.perf_counter()
    clf.prompt_train(descs)
    seconds = time.perf_counter() - t0
    if clf.generation_report_["calls"]:  # nothing generated: the file was complete already
        return accumulate_cost(cost, clf.generation_report_, seconds)
    return json.loads(cost.read_text()) if cost.exists() else {"kept": None, "calls": None, "seconds": None}


def run(dataset: str, variants: list[tuple[str, int]], pool_size: int, emb, cache) -> list[list[object]]:
    descs = prompts()[dataset]
    texts, labels = test_sample(dataset)
    X = emb.embed(texts, cache=cache)
    zs = scores(labels, zero_shot(emb, cache, descs, X))["macro_f1"]
    train = read_rows(dataset, "train")
    pool = [r["text"] for r in pool_rows(train, pool_size)]
    rows = []
    for llm, n in variants:
        try:
            cost = generate(dataset, descs, llm, n, emb, cache)
        except GenerationError as e:  # an LLM that cannot write the examples is a result too
            log.warning("%s %s:%d: %s", dataset, llm, n, e)
            rows.append([dataset, llm, n, "failed: " + str(e).split(";")[0], *[""] * (len(HEADER) - 4)])
            continue
        path = store_path(dataset, llm, n)
        prompt = scores(labels, from_store(emb, cache, descs, path).predict(texts))["macro_f1"]
        tuned = scores(labels, from_store(emb, cache, descs, path, finetune=True).predict(texts))["macro_f1"]
        clf = from_store(emb, cache, descs, path).train(unlabeled=pool)
        unl = scores(labels, clf.predict(texts))["macro_f1"]
        check = clf.self_training_report_.get("generated_examples")
        aside = isinstance(check, dict) and not check["keep_generated"]
        secs = cost.get("seconds")
        per_min = f"{60 * cost['kept'] / secs:.1f}" if secs else ""
        row = [
            dataset, llm, n, cost.get("kept"), cost.get("calls"), f"{secs:.0f}" if secs else "", per_min, zs,
            prompt, f"{100 * (prompt - zs):+.1f}", tuned, f"{100 * (tuned - zs):+.1f}", unl,
            f"{100 * (unl - zs):+.1f}", "yes" if aside else "no",
        ]  # fmt: skip
        log.info("%s", row)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6", "emotion6"])
    ap.add_argument("--variants", nargs="+", default=["smollm2:32", "smollm2:96", "gemma3-270m:32"])
    ap.add_argument("--pool", type=int, default=3000, help="unlabeled train-split texts")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    variants = [(v.split(":")[0], int(v.split(":")[1])) for v in args.variants]
    emb, cache = get_embedder(None), EmbeddingCache()
    rows: list[list[object]] = []
    for d in args.datasets:  # the section is written after each dataset: a long run keeps what it measured
        rows += run(d, variants, args.pool, emb, cache)
        publish("generators", body(args, rows), write=not args.no_write)


def body(args: argparse.Namespace, rows: list[list[object]]) -> str:
    cmd = (
        f".venv/bin/python bench/generators.py --datasets {' '.join(args.datasets)} --variants "
        f"{' '.join(args.variants)} --pool {args.pool}"
    )
    return f"""## Which LLM writes the examples, and how many (issue 11)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `{cmd}`.
Examples generated with the current defaults (plain text, `strategy="direct"`, every filter), kept in
bench/out/; a count larger than another tops up its file, and the cost columns are the whole file's.
*prompt*: frozen MiniLM, the prompt alone; *prompt, ft*: `finetune=True` (one pass); *+ unlabeled*:
`train(unlabeled=...)` with {args.pool:,} train texts (labels hidden), frozen encoder. Δ: points over
zero-shot. *examples set aside*: the check of the generated examples (section "Never below the
description match") kept the run without them. Macro-F1 on the fixed test sample; emotion6 is not a dev set.

{table(HEADER, rows)}
"""


if __name__ == "__main__":
    main()
