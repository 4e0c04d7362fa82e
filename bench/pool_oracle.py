"""Issue 11: where unlabeled mode's accuracy stops, read off a trained model (no new training).

    .venv/bin/python bench/finetune_rounds.py <set> default --save DIR   # per set (--per-class 96 for sst2)
    .venv/bin/python bench/pool_oracle.py DIR [--sets sst2,ag_news,trec6,newsgroups_long] [--no-write]

For each set's saved unlabeled-mode model (``DIR/<set>-default.clf``: the default, whose encoder was
fine-tuned on the pool's pseudo-labels), with the pool's hidden labels uncovered: how accurate its
pseudo-labels and its labels of the whole pool are, and what a head reaches on the same encoder's
vectors with other labels for the pool: every pool text as the model labels it, those labels
smoothed over each text's 30 nearest pool neighbours, and the pool's *true* labels (an oracle no
user has). On the packaged, frozen encoder's vectors: a head taught the model's labels of the pool,
and the same oracle, which says whether tuning on pseudo-labels made the encoder better or worse for
a linear head. Heads: ``fit_head`` at the model's C with its zero-shot prior (the frozen oracle:
plain, C=1, as the accuracy table's probe).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
from common import machine, pool_rows, publish, read_rows, scores, table, test_sample

from promptclf import PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.head import fit_head, with_prior
from promptclf.selftrain import nearest_neighbours

POOL = 5000
NEIGHBOURS = 30
HEADER = ["dataset", "model", "model, served (int8)", "its pseudo-labels correct", "its labels of the pool correct",
          "head: + whole pool as labelled", f"head: + {NEIGHBOURS}-NN smoothed labels",
          "head: pool's true labels (oracle)", "frozen encoder: + whole pool as labelled",
          "frozen encoder, pool's true labels (oracle)"]  # fmt: skip


def f1(labels: list[str], head, XT: np.ndarray) -> float:
    return scores(labels, list(head.classes_[head.predict_proba(XT).argmax(1)]))["macro_f1"]


def measure(name: str, path: Path) -> list[object]:
    clf = PromptClassifier.load(path)
    clf.progress = False
    texts, labels = test_sample(name)
    rows = pool_rows(read_rows(name, "train"), POOL)
    pool, truth = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    train_texts, y, sources = clf._training_set()
    X, XT, XU = (clf._vectors(t, progress=False) for t in (train_texts, texts, pool))  # the tuned encoder, exact
    classes, C, prior = clf.classes_, clf.head_.C_, clf._prior(clf.classes_)
    pseudo = sources == "pseudo"
    truth_of = dict(zip(pool, truth))
    pseudo_ok = np.mean([truth_of[t] == c for t, c in zip(np.asarray(train_texts)[pseudo], y[pseudo])])
    proba = clf.head_.predict_proba(XU)
    labelled = classes[proba.argmax(1)]  # the model's label of every pool text
    anchors = ~pseudo

    def head_with(pool_labels: np.ndarray) -> float:
        Xf, yf = np.vstack([X[anchors], XU]), np.concatenate([y[anchors], pool_labels])
        return f1(labels, with_prior(fit_head(Xf, yf, C=C, random_state=0), prior), XT)

    smoothed = classes[proba[nearest_neighbours(XU, NEIGHBOURS)].mean(1).argmax(1)]
    frozen, cache = get_embedder(None), EmbeddingCache()
    FX, FU, FT = (frozen.embed(t, cache=cache) for t in (train_texts, pool, texts))
    taught = fit_head(np.vstack([FX[anchors], FU]), np.concatenate([y[anchors], labelled]), C=C, random_state=0)
    return [
        name,
        f1(labels, clf.head_, XT),
        scores(labels, clf.predict(texts))["macro_f1"],
        float(pseudo_ok),
        float(np.mean(labelled == truth)),
        head_with(labelled),
        head_with(smoothed),
        head_with(truth),
        f1(labels, with_prior(taught, clf._prior(classes, frozen)), FT),
        f1(labels, fit_head(FU, truth, C=1.0, random_state=0), FT),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sets", default="sst2,ag_news,trec6,newsgroups_long")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in args.sets.split(","):
        rows.append(measure(name, args.folder / f"{name}-default.clf"))
        print(rows[-1], flush=True)
    body = f"""## Where unlabeled mode stops: pseudo-labels, the head, the tuned encoder (issue 11)

{dt.date.today().isoformat()}, {machine()}. Regenerate with
`.venv/bin/python bench/finetune_rounds.py <set> default --save DIR` per set (`--per-class 96` for sst2),
then `.venv/bin/python bench/pool_oracle.py DIR`. Each set's unlabeled-mode model as "Unlabeled mode"
trains it (the cached generated examples, the pool of 5,000 train texts with labels hidden, the
encoder fine-tuned on the pseudo-labels), read afterwards with the pool's labels uncovered. Macro-F1 on
the fixed test sample of heads refit on the tuned encoder's vectors (the model's C and prior) with the
examples plus the whole pool labelled three ways; the last two columns are heads on the packaged, frozen
encoder's vectors: the examples plus the pool as the model labels it (its C and prior), and the pool
alone with its true labels (plain, C=1). Accuracy columns are shares of texts. *model*: on the exact
(PyTorch) vectors it was trained on; *served*: as `load` serves it, on its int8 ONNX graph.
newsgroups_long is held back from the dev sets (long posts; its pool is the whole train split, 1,471 texts).

{table(HEADER, rows)}
"""
    publish("pool-oracle", body, write=not args.no_write)


if __name__ == "__main__":
    main()
