"""Issue 11, unlabeled mode: do the fine-tuning budget, a second outer round, more pseudo-labels or another loss change
the result?

    .venv/bin/python bench/finetune_rounds.py ag_news [default budget600 rounds2 keep70 minpairs0 triplet]
        [triplet:m0.5:e1 confident2 distill distill150 student:lr1e-4:e3:d90 llm500:p0.9 wise50 knn30 knnafter30]
        [basefirst tunedfirst onecall onecallbase warm prompttuned]
        [--per-class 32 | --examples FILE]
        [--save DIR]

One dataset, one child process per variant (each its own fresh state). Each variant: the model on the
cached generated examples (bench/accuracy.py makes them) with the encoder tuned on them, as
`prompt_train` tunes by default, then `train(unlabeled=...)` on the accuracy run's pool (5,000 train texts,
labels hidden) with the default `finetune="auto"`, which fine-tunes again from the base encoder. (Rows
before 2026-12-07's "The pool's first labels" started from the encoder frozen: the same thing then, since
the base encoder labelled the pool first whatever the prompt had tuned.) Variants: *default*;
*budgetN*: `finetune_budget_s=N`; *rounds2*: `classifier.OUTER_ROUNDS = 2` (tune, relabel the pool, tune
again from the base on the new labels, relabel); *keepNN*: self-training keeps the most confident NN%
of each class's pool texts (`selftrain.KEEP_FRACTION`, default 50); *minpairs0*: no per-pair-of-classes minimum
(`finetune.MIN_PAIRS_PER_CLASS_PAIR = 0`); *triplet*: `finetune.LOSS = "triplet"` (BatchAllTripletLoss),
with options `:mX` (margin X, default `TRIPLET_MARGIN`) and `:eN` (N epochs, default `TRIPLET_EPOCHS`);
*confident2*: pseudo-labels at or over their class's median confidence anchor twice as many pairs;
*distill*: `distill=True` (the tuned encoder then distilled into half its layers, issue 16); *distillN*:
the same with the distillation alone stopped after N seconds (fine-tuning keeps its budget); *student*: the
half-depth student tuned directly, no full-depth tuning (options in `tune_the_student`); *llmN*:
`llm_label_budget=N` with a SIMULATED strong LLM labelling the pool's hardest texts (`ask_a_simulated_llm`;
*llmauto*: `"auto"`, the check first);
*wiseNN*: each tuned encoder's weights moved back towards the base's, to NN% of the way from base to
tuned (WiSE-FT, Wortsman et al. 2022: interpolating fine-tuned and base weights holds up better where
the text to predict differs from the text tuned on; `interpolate_with_the_base`); *knnN*: in every
self-training round, each pool text's probabilities averaged over its N nearest pool texts before the
confident ones are picked (`selftrain.NEIGHBOURS = N`); *knnafterN*: the same only in the labelling of the
pool after fine-tuning (with the tuned encoder's vectors), not in the first one (the base encoder's);
*basefirst*: the pool's first labelling on the base encoder's vectors alone (`classifier.FIRST_LABELS =
"base"`, the default before), *tunedfirst*: on the prompt-tuned encoder's alone (`"tuned"`; the default,
`"both"`, puts the two side by side); *onecall*: no model before, one `prompt_train(descriptions,
unlabeled=pool)` on the cached examples (nothing generated), timed whole: it tunes on the examples, labels
the pool with both encoders, tunes on the pool (`tunings` lists each tuning); *onecallbase*: the same with
`FIRST_LABELS = "base"`, which is the one call as it was before 2026-12-07 (one tuning, on the pool labelled
by the base encoder); *warm*: the pool's tuning starts from the prompt-tuned encoder's weights, not the
base's (`start_from_the_prompt_tuned`); *prompttuned*: `train(unlabeled=...)` with `finetune=False`: the
prompt-tuned encoder labels the pool and stays, the head is refit on its vectors with the pseudo-labels.
Since "Tuning on the pool, or not" (2026-12-07) the default tunes on the pool only where the pool's
first labels agree with the examples on less than `classifier.POOL_TUNING_MAX_AGREEMENT` of it: *default*
and *onecall* follow it, every other variant tunes on the pool whatever the agreement, as when its rows
were measured.
``--save DIR`` keeps each variant's model as ``DIR/<dataset>-<variant>.clf``; ``--examples FILE`` starts from that
file of generated examples in bench/out/ (e.g. another sample's, bench/prompt_seeds.py makes them).
Prints per variant: macro-F1 on the accuracy table's test sample, wall seconds of `train`, the tuning
report (pairs, steps, seconds, whether the budget stopped it), self-training's rounds, the share of the
pseudo-labels that are right (the pool's hidden labels) and the prompt-tuned model's macro-F1 before `train`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import OUT, interpolate_with_the_base, pool_rows, prompt_model, prompts, read_rows, scores, test_sample

POOL = 5000


def weigh_confident_pseudo_labels(clf, F) -> None:
    """*confident2*: in the fine-tuning pairs, a pseudo-label at or over its class's median confidence
    anchors twice as many pairs as the rest (trust 2 instead of 1); the head and self-training unchanged.
    Wraps `finetune.finetune`, which the classifier imports when it tunes."""
    plain = F.finetune
    F.TRUST["pseudo_confident"] = 2

    def weighted(model_path, texts, labels, sources, **kw):
        conf = {(e.text, e.class_name): e.meta.get("confidence", 0.0) for e in clf._store.examples(("pseudo",))}
        by_class: dict[str, list[float]] = {}
        for (_, c), p in conf.items():
            by_class.setdefault(c, []).append(p)
        median = {c: sorted(v)[len(v) // 2] for c, v in by_class.items()}
        sources = [
            "pseudo_confident" if s == "pseudo" and conf.get((t, c), 0.0) >= median.get(c, 1.0) else s
            for t, c, s in zip(texts, labels, sources)
        ]
        return plain(model_path, texts, list(labels), sources, **kw)

    F.finetune = weighted


def start_from_the_prompt_tuned(clf, F) -> None:
    """*warm*: the pool's tuning starts from a copy of the prompt-tuned encoder's weights instead of the
    base's (the model was just tuned in this process, so its PyTorch weights are at hand). Wraps
    `finetune.load_model`, which `finetune.finetune` loads its starting model with."""
    import copy

    start = copy.deepcopy(clf._tuned.torch_model)
    F.load_model = lambda path: copy.deepcopy(start)


def tune_the_student(F, options: list[str]) -> None:
    """*student*: fine-tune the half-depth student (`distill.student_of`: layers `KEEP_LAYERS` of the
    base) directly on the training set and pool, instead of the full encoder (then distilling it): one
    training step, each step about half the work. Options: `:lrX` learning rate X (default the
    tuning's); `:eN` N epochs over the pairs (default 1; the budget still ends it); `:dN` first distil the
    student for N seconds on the training texts (MSE to the base's vectors, `distill.distill`)."""
    from promptclf.distill import distill, student_of

    plain_load, plain = F.load_model, F.finetune
    extra: dict = {}
    warm = 0.0
    for opt in options:
        if opt.startswith("lr"):
            extra["learning_rate"] = float(opt[2:])
        elif opt.startswith("e"):
            extra["epochs"] = int(opt[1:])
        elif opt.startswith("d"):
            warm = float(opt[1:])
        else:
            raise SystemExit(f"unknown student option {opt!r}")

    def tuned(model_path, texts, labels, sources, **kw):
        start = student_of(plain_load(model_path))
        if warm:
            distinct = list(dict.fromkeys(texts))
            targets = F.encode(plain_load(model_path), distinct)
            start, _ = distill(model_path, distinct, targets, budget_s=warm)
        F.load_model = lambda path: start
        try:
            return plain(model_path, texts, labels, sources, **{**kw, **extra})
        finally:
            F.load_model = plain_load

    F.finetune = tuned


def ask_a_simulated_llm(clf, variant: str, truth: dict[str, str]) -> None:
    """*llmN:pP*: `llm_label_budget=N` with a **SIMULATED** strong LLM as the labeller (bench/chain.py's
    `Simulated`: right with probability P per text, default 0.9, seeded by the text; no such model runs
    here). Self-training asks it for the N pool texts it is least sure of, in each labelling of the pool. *llmauto:pP*:
    `llm_label_budget="auto"` (the default) with that LLM: checked on the pool texts the model is surest
    of, it labels 500 only if it agrees with the model there well beyond chance (the default's path otherwise,
    the pool's tuning included).
    Option `:untrusted`: its labels train as pseudo-labels, as before commit fe19ef5 (since then they train
    as LLM answers: `classifier.provenance`, `LLM_WEIGHT` in the head, `TRUST` in the pairs)."""
    from chain import Simulated

    import promptclf.escalation.links as L

    head, *opts = variant.split(":")
    p = next((float(o[1:]) for o in opts if o.startswith("p")), 0.9)
    L.LLMLink = lambda llm, descriptions, seed=0: Simulated(p, truth, sorted(set(truth.values())))
    if head == "llmauto":  # "auto" asks hosted LLMs only: the simulated one stands in for a hosted one
        clf.set_params(llm="openai:simulated-llm", llm_label_budget="auto")
    else:
        clf.set_params(llm_label_budget=int(head[3:]))
    if "untrusted" in opts:
        plain = clf._training_set

        def untrusted(include=None):
            texts, y, sources = plain(include)
            asked = {e.text for e in clf._store.examples(("pseudo",)) if e.meta.get("labeler") == "llm"}
            return texts, y, np.where([s == "llm" and t in asked for t, s in zip(texts, sources)], "pseudo", sources)

        clf._training_set = untrusted


def one(name: str, per_class: int, variant: str, save: Path | None = None, examples: str | None = None) -> dict:
    import promptclf.classifier as K
    import promptclf.finetune as F
    import promptclf.selftrain as S
    from promptclf import PromptClassifier
    from promptclf.embedders import EmbeddingCache, get_embedder

    named = (
        "default",
        "rounds2",
        "minpairs0",
        "confident2",
        "distill",
        "basefirst",
        "tunedfirst",
        "onecall",
        "onecallbase",
        "warm",
        "prompttuned",
    )
    head = variant.split(":")[0]
    llm = head.startswith("llm") and (head[3:].isdigit() or head == "llmauto")
    known = variant in named or head in ("triplet", "student") or llm
    numbered = ("budget", "keep", "distill", "wise", "knnafter", "knn")
    if not (known or any(variant.startswith(p) and variant.removeprefix(p).isdigit() for p in numbered)):
        raise SystemExit(f"unknown variant {variant!r}")
    if variant not in ("default", "onecall", "prompttuned") and head != "llmauto":
        # the other variants study the pool's tuning (their tables were measured when the pool was always
        # tuned on): tuned whatever the pool's first labels agree with the examples (classifier._pool_tuning)
        K.POOL_TUNING_MAX_AGREEMENT = 1.01
    emb, cache = get_embedder(None), EmbeddingCache()
    texts, labels = test_sample(name)
    train = read_rows(name, "train")
    pool = [r["text"] for r in pool_rows(train, POOL)]
    if variant.startswith("onecall"):  # one prompt_train(descriptions, unlabeled=pool): timed whole, below
        clf, prompt_only = PromptClassifier(progress=False, embedder=emb).use_embedding_cache(cache), None
        clf.load_examples(OUT / (examples or f"{name}-direct-n{per_class}.jsonl"), include_pseudo=False)
        K.FIRST_LABELS = "base" if variant == "onecallbase" else K.FIRST_LABELS
    else:
        clf = prompt_model(name, per_class, cache, examples, embedder=emb, finetune="auto")  # tunes, as by default
        prompt_only = scores(labels, clf.predict(texts))["macro_f1"]
    if variant in ("basefirst", "tunedfirst"):
        K.FIRST_LABELS = variant.removesuffix("first")
    elif variant.startswith("budget"):
        clf.set_params(finetune_budget_s=float(variant.removeprefix("budget")))
    elif variant == "rounds2":
        K.OUTER_ROUNDS = 2
    elif variant.startswith("keep"):
        S.KEEP_FRACTION = int(variant.removeprefix("keep")) / 100
    elif variant == "minpairs0":
        F.MIN_PAIRS_PER_CLASS_PAIR = 0
    elif variant.startswith("triplet"):
        F.LOSS = "triplet"
        for opt in variant.split(":")[1:]:  # triplet:m0.5:e1 = margin 0.5, one epoch
            if opt[0] == "m":
                F.TRIPLET_MARGIN = float(opt[1:])
            elif opt[0] == "e":
                F.TRIPLET_EPOCHS = int(opt[1:])
    elif variant == "confident2":
        weigh_confident_pseudo_labels(clf, F)
    elif variant == "warm":
        start_from_the_prompt_tuned(clf, F)
    elif variant == "prompttuned":  # no tuning on the pool: the prompt-tuned encoder labels it and stays
        clf.set_params(finetune=False)
    elif variant == "distill":
        clf.set_params(distill=True)
    elif head.startswith("llm"):
        ask_a_simulated_llm(clf, variant, {r["text"]: r["label"] for r in train})
    elif head == "student":
        tune_the_student(F, variant.split(":")[1:])
    elif variant.startswith("wise"):
        interpolate_with_the_base(int(variant.removeprefix("wise")) / 100)
    elif variant.startswith("knnafter"):  # only in the labelling of the pool with the tuned encoder
        plain, k = clf._pseudo_label, int(variant.removeprefix("knnafter"))

        def relabel(unlabeled, emb, check=True):
            S.NEIGHBOURS = 0 if check else k
            try:
                return plain(unlabeled, emb, check=check)
            finally:
                S.NEIGHBOURS = 0

        clf._pseudo_label = relabel
    elif variant.startswith("knn"):
        S.NEIGHBOURS = int(variant.removeprefix("knn"))
    elif variant.startswith("distill"):
        import promptclf.distill as D

        clf.set_params(distill=True)
        seconds, full = float(variant.removeprefix("distill")), D.distill
        D.distill = lambda *a, budget_s, **k: full(*a, budget_s=min(budget_s, seconds), **k)
    t0 = time.perf_counter()
    if variant.startswith("onecall"):
        tunings = []
        plain_tune = clf._finetune

        def counted(include=None):
            plain_tune(include)
            tunings.append({k: clf.encoder_["report"][k] for k in ("steps", "seconds", "pool_texts")})

        clf._finetune = counted
        clf.prompt_train(prompts()[name], unlabeled=pool, generate=False)
    else:
        clf.train(unlabeled=pool)
    st = clf.self_training_report_
    if save is not None:  # for looking at the model afterwards (head-side experiments on its vectors)
        clf.save(save / f"{name}-{variant}.clf")
    truth = {r["text"]: r["label"] for r in train}
    pseudo = list(clf._store.examples(("pseudo",)))
    return {
        "variant": variant,
        "macro_f1": round(scores(labels, clf.predict(texts))["macro_f1"], 4),
        "train_s": round(time.perf_counter() - t0),
        "finetune": {k: v for k, v in clf.encoder_["report"].items() if k != "settings"},  # the last tuning
        "self_training_rounds": st.get("rounds"),
        "pseudo_labels": st.get("pseudo_labels"),
        "pseudo_correct": round(float(np.mean([truth.get(e.text) == e.class_name for e in pseudo] or [0.0])), 3),
        "prompt_only": None if prompt_only is None else round(prompt_only, 4),
        **({"tunings": tunings} if variant.startswith("onecall") else {}),
        **({"llm": st["llm"]} if st.get("llm") else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("variants", nargs="*", default=["default", "budget600", "rounds2"])
    ap.add_argument("--per-class", type=int, default=32)
    ap.add_argument("--save", type=Path, help="save each variant's model in this folder as <dataset>-<variant>.clf")
    ap.add_argument("--examples", help="start from this file of bench/out/ instead of <set>-direct-n<per-class>.jsonl")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.dataset, args.per_class, args.one, args.save, args.examples)))
        return
    for v in args.variants:
        cmd = [sys.executable, str(Path(__file__)), args.dataset, "--per-class", str(args.per_class), "--one", v]
        cmd += ["--save", str(args.save)] if args.save else []
        cmd += ["--examples", args.examples] if args.examples else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
