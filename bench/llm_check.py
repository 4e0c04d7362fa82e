"""Issue 11: which LLM may label the pool? The check `llm_label_budget="auto"` makes before an LLM labels
the texts a model is least sure of.

    .venv/bin/python bench/llm_check.py DIR [sst2 ag_news trec6] [--no-write]

DIR holds unlabeled-mode models as the default flow makes them, saved by ``bench/finetune_rounds.py <set>
default --examples <set>-direct-nauto.jsonl --save DIR`` (files ``DIR/<set>-default.clf``). Each model's
pseudo-labels the model gave (with their confidences) are what self-training had picked when it last
labelled the pool; ``selftrain.check_labeller`` asks each LLM for the ones it is surest of, as ``train``
does, and the hidden labels of those texts then say how right the model and the LLM were:
- the packaged SmolLM2-135M and Gemma 3 270M, in this process through llama.cpp (real), which "auto"
  never asks, to show what the check would say of them;
- a **SIMULATED** LLM right on a share p of the texts whatever they are (bench/chain.py's ``Simulated``,
  seeded by the text), the stand-in for a hosted LLM used in "A stronger labeller for the pool's hardest
  texts"; no such model runs here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from chain import Simulated
from common import machine, prompts, publish, read_rows, table

HEADER = ["dataset", "LLM", "texts asked", "model's labels right", "LLM right", "agreement", "kappa", "trusted",
          "s"]  # fmt: skip
PACKAGED = ("llama-cpp:smollm2", "llama-cpp:gemma3-270m")
SIMULATED_P = (0.6, 0.7, 0.8, 0.9, 1.0)


class Recorded:
    """A link that keeps what it answered (the check reports only how often it agreed)."""

    def __init__(self, link) -> None:
        self.link, self.answers = link, {}

    def __call__(self, texts, classes):
        ans = self.link(texts, classes)
        for t, row, ok in zip(texts, ans.proba, ans.answered):
            self.answers[t] = str(classes[int(row.argmax())]) if ok else None
        return ans


def rows_for(path: Path, name: str) -> list[list[object]]:
    from promptclf import PromptClassifier
    from promptclf.classifier import provenance
    from promptclf.escalation.links import LLMLink
    from promptclf.llms import get_llm
    from promptclf.selftrain import check_labeller

    truth = {r["text"]: r["label"] for r in read_rows(name, "train")}
    clf = PromptClassifier.load(path)
    picked = [e for e in clf._store.examples(("pseudo",)) if provenance(e) == "pseudo"]
    texts = [e.text for e in picked]
    labels = np.array([e.class_name for e in picked])
    confidence = np.array([float(e.meta["confidence"]) for e in picked])
    classes = [str(c) for c in clf.classes_]
    links = {spec.removeprefix("llama-cpp:"): LLMLink(get_llm(spec), prompts()[name]) for spec in PACKAGED}
    links |= {f"SIMULATED, right on {p:.0%}": Simulated(p, truth, classes) for p in SIMULATED_P}
    out = []
    for who, link in links.items():
        rec = Recorded(link)
        t = time.perf_counter()
        v = check_labeller(rec, texts, classes, labels, confidence)
        seconds = time.perf_counter() - t
        asked = list(rec.answers)
        model_right = np.mean([labels[texts.index(x)] == truth[x] for x in asked])
        llm_right = np.mean([rec.answers[x] == truth[x] for x in asked])
        out.append([name, who, v["texts"], f"{model_right:.2f}", f"{llm_right:.2f}", f"{v['agreement']:.2f}",
                    f"{v['kappa']:.2f}", "yes" if v["trusted"] else "no", f"{seconds:.0f}"])  # fmt: skip
        print(" | ".join(map(str, out[-1])), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("sets", nargs="*", default=["sst2", "ag_news", "trec6"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from promptclf.selftrain import CHECK_KAPPA

    rows = [r for name in args.sets for r in rows_for(args.dir / f"{name}-default.clf", name)]
    body = f"""## Which LLM may label the pool (issue 11)

{time.strftime("%Y-%m-%d")}, {machine()}. Regenerate with `.venv/bin/python bench/llm_check.py DIR`
(DIR: the models `bench/finetune_rounds.py <set> default --examples <set>-direct-nauto.jsonl --save DIR`
saves). `llm_label_budget="auto"`, the default, lets an LLM label the pool's least sure texts only after a
check: asked for the texts the model labelled most confidently (15 per class, at least 60), its labels
must agree with the model's there by a Cohen's kappa of at least {CHECK_KAPPA} (0: chance, 1: every
label). Here the check is made on each set's unlabeled-mode model (the pseudo-labels it kept), and the
hidden labels of the texts asked say how right the model and the LLM were. *SmolLM2*, *Gemma 3 270M*: the
packaged LLMs in process (llama.cpp), which "auto" never asks: the rows show what the check says of
them. *SIMULATED*: bench/chain.py's stand-in for a hosted LLM, right on the share of texts named, its
errors spread evenly over the other classes, whatever the text; no such LLM runs here.

{table(HEADER, rows)}
"""
    publish("llm-check", body, not args.no_write)


if __name__ == "__main__":
    main()
