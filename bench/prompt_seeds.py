"""How much the prompt-only figure moves with the sample the LLM writes: fresh examples per seed.

    .venv/bin/python bench/prompt_seeds.py [--datasets sst2 ag_news trec6 emotion6:joy,sadness] [--seeds 1 2 3]
        [--variants default smollm2-alone echo-filter echoes-kept echo-majority wise50 wise70 soup3 n128
        two-writers two-writers-n192 two-writers-auto gemma3-270m]
        [--rerun [--fresh]]
        [--no-write]

The accuracy table's *prompt* column is one sample of generated examples (the cached ones). Here each
seed is a whole prompt-only run as a user makes it: ``PromptClassifier(random_state=seed)`` with every
other setting the default (``examples_per_class="auto"``, the default local LLM, ``finetune="auto"``),
``prompt_train(descriptions)`` generating its own examples (kept in
``bench/out/<set>-direct-n<count>-seed<seed>[-<variant>].jsonl``), then macro-F1 on the fixed test
sample, against the zero-shot description match with the same embedder. The goal this reads against
(issue 11): +5 points over zero-shot on every dev set. A dataset written ``name:class,class`` is a task
cut from that set: only those classes' descriptions and test rows (files named
``<set>-<class>-<class>-direct-...``).

Variants: *default*: the product's default (on a task of two to four classes SmolLM2 and Gemma 3 270M
each write "auto"'s count, 96, 64 or 32 per class, ``llms.base.default_more_writers``; from five classes on
SmolLM2 alone);
*smollm2-alone*: SmolLM2-135M writes every example, "auto"'s count for one writer (the default before two
writers; every variant but *default* and the *two-writers* ones writes this way, and the TRAINING ones train
on its files, the unsuffixed ones at that count); *echo-filter*: generated text that talks about being an
example ("One example of such a text is: ...") dropped, or the example quoted in it kept, in every class
(``generation.filters.ECHO_FILTER``); *echoes-kept*: such text kept even in a class where it is most of
the examples (``generation.filters.ECHO_MAJORITY = 1.0``: the default, and the same as *smollm2-alone*);
*echo-majority*: such text dropped where it is most of a class's examples (``ECHO_MAJORITY = 0.5``, the
default from 1347c60 until the held-back newsgroups_long lost 4.1 points to it); *wise50*,
*wise70*: *smollm2-alone*'s examples, and the tuned encoder's weights moved back towards the base's, to 50%
or 70% of the way from base to tuned (WiSE-FT, ``common.interpolate_with_the_base``); *soup3*:
*smollm2-alone*'s examples, each fine-tuning run three times on pair draws of different seeds and the three
encoders' weights averaged (a uniform model soup, ``common.soup_of_finetunes``); *n128*: 128 examples per
class instead of what "auto" asks, *smollm2-alone*'s sample topped up (its file copied first, so its first
examples per class are that sample's); *two-writers*: Gemma 3 270M, continuing a list (it is a base
model), writes half of each class's examples beside SmolLM2-135M, as many in all as one writer would
(``llms.base.DEFAULT_MORE_WRITERS``, for any number of classes); *two-writers-n192*: the same at 192 per
class, *two-writers*' sample topped up (so each writer adds as many again; for two classes this is what the
default now does, in one run); *two-writers-auto*: "auto"'s count from each of the two writers (what the default
does for two to four classes, for any number), *smollm2-alone*'s sample topped up by Gemma (a paired comparison: the
same SmolLM2 examples with and without Gemma's); *gemma3-270m*: ``llm="llama-cpp:gemma3-270m"``, so Gemma 3
270M writes every example.

Each run's figures are kept in ``bench/out/prompt_seeds.json`` and a later call reuses them (the
table says which came from an earlier call); ``--rerun`` runs them again (the examples too with
``--fresh``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import time

import numpy as np
from accuracy import zero_shot
from common import (
    OUT,
    interpolate_with_the_base,
    machine,
    publish,
    scores,
    soup_of_finetunes,
    table,
    task,
)

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.generation import examples_per_class_for, filters
from promptclf.llms import base as llms_base

log = logging.getLogger("bench")
RESULTS = OUT / "prompt_seeds.json"
# the switches each variant sets in generation.filters
VARIANTS = {
    "default": {},
    "echo-filter": {"ECHO_FILTER": True},
    "echoes-kept": {"ECHO_MAJORITY": 1.0},  # the default again since ECHO_MAJORITY went back to 1.0
    "echo-majority": {"ECHO_MAJORITY": 0.5},
}
# variants that train differently on the default's examples, each a wrap of the fine-tuning that returns
# its undo: the tuned encoder's weights moved back towards the base's, to this share of the way from base
# to tuned (WiSE-FT); three fine-tunes averaged (a model soup)
TRAINING = {
    "wise50": lambda: interpolate_with_the_base(0.5),
    "wise70": lambda: interpolate_with_the_base(0.7),
    "soup3": lambda: soup_of_finetunes(3),
}
# variants that ask for more examples per class than "auto" does for one writer: another variant's sample,
# topped up (None: "auto" for each of the variant's writers, as the default counts for two writers)
PER_CLASS = {"n128": (128, "default"), "two-writers-n192": (192, "two-writers"), "two-writers-auto": (None, "default")}
# variants where more LLMs write beside the default one, each an even share (llms.base.DEFAULT_MORE_WRITERS)
GEMMA = ("llama-cpp:gemma3-270m",)
WRITERS = {"two-writers": GEMMA, "two-writers-n192": GEMMA, "two-writers-auto": GEMMA}
# variants that name the LLM, which then writes every example
LLM = {"gemma3-270m": GEMMA[0]}


def run(name: str, seed: int, variant: str, fresh: bool, emb, cache) -> dict:
    stem, descs, texts, labels = task(name)
    k = len(descs)
    # who writes: the product's default LLMs for the task (`llms_base.default_more_writers`) in *default*,
    # a WRITERS variant's, or SmolLM2 alone (every other variant, as they were measured)
    writers = WRITERS.get(variant, llms_base.default_more_writers(k) if variant == "default" else ())
    alone = examples_per_class_for("auto", k)  # "auto" with SmolLM2 alone
    per_writer = examples_per_class_for("auto", k, 1 + len(writers))  # "auto" with these writers
    n, base = PER_CLASS.get(variant, (per_writer if variant == "default" else alone, "default"))
    n = n or per_writer
    # the TRAINING variants train on SmolLM2's examples at "auto"; a PER_CLASS one on its own, bigger file
    examples = "default" if variant in TRAINING or variant in ("n128", "smollm2-alone") else variant
    path = OUT / f"{stem}-direct-n{n}-seed{seed}{'' if examples == 'default' else '-' + examples}.jsonl"
    if fresh and variant not in TRAINING:  # a TRAINING variant reuses the default's examples, never remakes them
        path.unlink(missing_ok=True)
    start = OUT / f"{stem}-direct-n{alone}-seed{seed}{'' if base == 'default' else '-' + base}.jsonl"
    if variant in PER_CLASS and not path.exists() and start.exists():
        shutil.copy(start, path)  # generation tops a file up: its first `alone` per class stay the start file's
    reused = path.exists()
    switches = VARIANTS.get(variant, {})
    before = {k: getattr(filters, k) for k in switches}
    for k, v in switches.items():
        setattr(filters, k, v)
    undo = TRAINING[variant]() if variant in TRAINING else (lambda: None)
    writers_before = llms_base.DEFAULT_MORE_WRITERS, llms_base.MORE_WRITERS_UP_TO_CLASSES
    llms_base.DEFAULT_MORE_WRITERS, llms_base.MORE_WRITERS_UP_TO_CLASSES = writers, k
    more = {"examples_per_class": n} if variant in PER_CLASS or variant in WRITERS else {}
    if variant in LLM:
        more["llm"] = LLM[variant]
    clf = PromptClassifier(embedder=emb, random_state=seed, saved_examples_path=path, progress=False, **more)
    clf.use_embedding_cache(cache)
    t0 = time.perf_counter()
    try:
        clf.prompt_train(descs)
    finally:
        undo()
        llms_base.DEFAULT_MORE_WRITERS, llms_base.MORE_WRITERS_UP_TO_CLASSES = writers_before
        for k, v in before.items():
            setattr(filters, k, v)
    seconds = time.perf_counter() - t0
    res = {
        "dataset": name,
        "seed": seed,
        "variant": variant,
        "per_class": n,
        "kept": sum(clf.example_counts()[c].get("generated", 0) for c in clf.classes_),
        "seconds": seconds,
        "reused_examples": reused,
        "tuned": "encoder_" in clf.__dict__,
        "f1": scores(labels, clf.predict(texts))["macro_f1"],
        "when": dt.datetime.now().isoformat(timespec="seconds"),
    }
    log.info("%s", res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    known = dict.fromkeys([*VARIANTS, *TRAINING, *PER_CLASS, *WRITERS, *LLM, "smollm2-alone"])
    ap.add_argument("--variants", nargs="+", choices=list(known), default=["default"])
    ap.add_argument("--rerun", action="store_true", help="run again what bench/out/prompt_seeds.json has")
    ap.add_argument("--fresh", action="store_true", help="with --rerun: generate the examples again too")
    ap.add_argument("--no-write", action="store_true", help="print, don't update BENCHMARKS.md")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    emb, cache = get_embedder(None), EmbeddingCache()
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"zero_shot": {}, "runs": []}
    done = {(r["dataset"], r.get("variant", "default"), r["seed"]): r for r in saved["runs"]}
    zs, earlier = saved["zero_shot"], set()
    for d in args.datasets:
        _, descs, texts, labels = task(d)
        zs[d] = scores(labels, zero_shot(emb, cache, descs, emb.embed(texts, cache=cache)))["macro_f1"]
        for v in args.variants:
            for s in args.seeds:
                if args.rerun or (d, v, s) not in done:
                    done[d, v, s] = run(d, s, v, args.fresh, emb, cache)
                    RESULTS.write_text(json.dumps({"zero_shot": zs, "runs": list(done.values())}, indent=1))
                else:
                    earlier.add((d, v))

    rows = []
    for d in args.datasets:
        for v in args.variants:
            rs = [done[d, v, s] for s in args.seeds]
            f1 = np.array([r["f1"] for r in rs])
            gains = 100 * (f1 - zs[d])
            rows.append(
                [d, v, f"{zs[d]:.3f}", " / ".join(f"{x:.3f}" for x in f1), " / ".join(f"{g:+.1f}" for g in gains),
                 f"{f1.mean():.3f}", f"{gains.mean():+.1f}", f"{gains.min():+.1f}",
                 f"{sum(g >= 5 for g in gains)} of {len(gains)}", " / ".join(str(r["kept"]) for r in rs),
                 " / ".join(f"{r['seconds']:.0f}" for r in rs) + (" (an earlier call)" if (d, v) in earlier else "")]
            )  # fmt: skip
    header = ["dataset", "variant", "zero-shot", "prompt, each seed", "Δ pts, each seed", "mean", "Δ mean",
              "Δ least", "seeds at +5 or more", "examples kept", "prompt_train s"]  # fmt: skip
    cmd = (
        f"--datasets {' '.join(args.datasets)} --seeds {' '.join(map(str, args.seeds))} "
        f"--variants {' '.join(args.variants)}"
    )
    body = (
        "## The prompt alone, over several samples of generated examples (issue 11)\n\n"
        f"{dt.date.today()}, {machine()}. Regenerate with `.venv/bin/python bench/prompt_seeds.py {cmd} --rerun`.\n"
        "Each seed: `PromptClassifier(random_state=seed)`, every other setting the default, "
        "`prompt_train(descriptions)` generating its own examples with the default local LLM; macro-F1 on the "
        "fixed test sample; Δ: points over the zero-shot description match. *echo-filter*: generated text "
        "that talks about being an example dropped, or the example quoted in it kept "
        "in every class (`generation.filters.ECHO_FILTER = True`). *echoes-kept*: such text kept even where it is "
        "most of a class's examples (`generation.filters.ECHO_MAJORITY = 1.0`, the default). *echo-majority*: "
        "such text dropped where it is most of a class's examples (`ECHO_MAJORITY = 0.5`). "
        "*wise50* / *wise70*: the default's examples, the tuned encoder's weights then moved back towards the "
        "base's, to 50% / 70% of the way from base to tuned (WiSE-FT). *soup3*: the default's examples, three "
        "fine-tunes on pair draws of different seeds averaged (a model soup). *n128*: 128 examples "
        "per class, the default's sample topped up. *two-writers*: Gemma 3 270M (a base model, continuing a list) "
        "writes half of each class's examples beside SmolLM2 (`llms.base.DEFAULT_MORE_WRITERS`); "
        "*two-writers-n192*: the same at 192 per class, its sample topped up. *two-writers-auto*: 'auto''s count "
        "from each writer, *smollm2-alone*'s sample topped up by Gemma. *gemma3-270m*: Gemma 3 270M writes "
        "every example. "
        "*smollm2-alone*: SmolLM2 writes every example (on two to four classes the default writes with Gemma too). "
        "*prompt_train s*: generation and training, wall.\n\n" + table(header, rows)
    )
    publish("prompt-seeds", body, not args.no_write)


if __name__ == "__main__":
    main()
