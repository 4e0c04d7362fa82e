"""The embedder learns too: contrastive fine-tuning of the sentence encoder on what the classifier believes.

The frozen MiniLM caps a linear head (BENCHMARKS.md: the head on *every* real label is the ceiling).
Published zero-label methods that pass that ceiling fine-tune the encoder on their own pseudo-labels;
SetFit does it with a few real labels. Here: SetFit-style pairs (one text of the same class, one of
another, per example) from the descriptions, your examples, generated examples and pseudo-labels,
with trust as how often an example is drawn (yours and the descriptions more than pseudo-labels,
generated least), and sentence-transformers' own trainer and ``CosineSimilarityLoss`` (``LOSS`` chooses
its batch-triplet loss instead; measured, not the default). A time budget ends training early; an
interruption leaves the caller's model as it was (training runs on a copy).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import random
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._progress import progress_bar
from .errors import ConfigurationError

log = logging.getLogger("promptclf")
# How many pairs each example anchors, by provenance (trust): a person's word counts most.
TRUST = {"user": 3, "prompt": 3, "llm": 2, "pseudo": 1, "generated": 1}
# A small set (descriptions and a few hundred generated examples) makes few pairs: a few dozen steps.
# SetFit draws 20 pairs per example for that reason; here the draws repeat until this many pairs.
MIN_PAIRS = 0
# ... and at least this many per pair of classes: one pass over a many-class set gives each pair of
# classes few negatives (six classes: 15 pairs of classes share the draws two classes get alone).
# Settled by bench/finetune_pairs.py (BENCHMARKS.md, "Prompt-only fine-tuning with more pairs"): from the
# prompt alone, 200 against one pass: sst2 (1 pair of classes) the same, ag_news +1.0, trec6 +7.5,
# emotion6 +5.9; a pool of unlabeled texts already gives more pairs than this asks for
MIN_PAIRS_PER_CLASS_PAIR = 200
# Which loss tunes the encoder. "pairs": the SetFit pairs above with ``CosineSimilarityLoss``;
# "triplet": ``BatchAllTripletLoss`` (cosine distance) on the examples themselves, each repeated by its
# trust, in batches grouped by label, so every batch compares every example with every other.
# A multi-label set always uses pairs (a text with two labels would be its own negative in a triplet),
# and so does a set with a class of one row (the label-grouped batches need two of each).
# Measured by bench/finetune_rounds.py (BENCHMARKS.md, "Unlabeled mode").
LOSS = "pairs"
TRIPLET_MARGIN = 0.25
TRIPLET_EPOCHS = 2


def min_pairs_for(n_classes: int) -> int:
    """The fewest pairs a set of ``n_classes`` classes trains on (``MIN_PAIRS``, per pair of classes)."""
    return max(MIN_PAIRS, MIN_PAIRS_PER_CLASS_PAIR * n_classes * (n_classes - 1) // 2)


@dataclass
class FinetuneReport:
    pairs: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    loss: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "stopped_by_budget": self.stopped_by_budget,
            "loss": self.loss,
            "settings": self.settings,
        }


def make_pairs(
    texts: list[str],
    labels: list[str],
    sources: list[str],
    *,
    seed: int = 0,
    max_pairs: int = 20_000,
    min_pairs: int | None = None,
) -> tuple[list[str], list[str], list[float]]:
    """SetFit-style pairs: per draw of an example, one positive (same class) and one negative pair;
    the draws repeat (reshuffled) until there are ``min_pairs`` (default ``MIN_PAIRS``).

    A text may come with several labels (one row each, as a multi-label training set has them): its
    negatives are drawn from classes it is not in, and never a text that shares one of its classes.
    """
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    of_text: dict[str, set[str]] = defaultdict(set)
    for i, (t, c) in enumerate(zip(texts, labels)):
        by_class[c].append(i)
        of_text[t].add(c)
    classes = list(by_class)
    a: list[str] = []
    b: list[str] = []
    y: list[float] = []
    once = [i for i, s in enumerate(sources) for _ in range(TRUST.get(s, 1))]
    want = min(max_pairs, MIN_PAIRS if min_pairs is None else min_pairs)
    draws: list[int] = []
    while True:  # each pass draws every example its trust's number of times, in a new order
        rng.shuffle(once)
        draws += once
        if 2 * len(draws) >= want or not once:
            break
    for i in draws[: max_pairs // 2]:
        c, mine = labels[i], of_text[texts[i]]
        same = by_class[c]
        if len(same) > 1:
            j = i
            while j == i:
                j = rng.choice(same)
            a.append(texts[i])
            b.append(texts[j])
            y.append(1.0)
        others = [k for k in classes if k not in mine]
        for _ in range(8 if others else 0):  # a few tries: overlapping label sets are the exception
            j = rng.choice(by_class[rng.choice(others)])
            if not of_text[texts[j]] & mine:
                a.append(texts[i])
                b.append(texts[j])
                y.append(0.0)
                break
    return a, b, y


def triplet_rows(texts: list[str], labels: list[str], sources: list[str]) -> tuple[list[str], list[int]]:
    """The triplet loss's dataset: each example repeated by its trust, its class as an integer."""
    ids = {c: k for k, c in enumerate(sorted(set(labels)))}
    rows = [i for i, s in enumerate(sources) for _ in range(TRUST.get(s, 1))]
    return [texts[i] for i in rows], [ids[labels[i]] for i in rows]


def finetune(
    model_path: str,
    texts: list[str],
    labels: list[str],
    sources: list[str],
    *,
    budget_s: float = 300.0,
    max_seq_length: int = 64,
    batch_size: int = 32,
    epochs: int | None = None,
    learning_rate: float = 2e-5,
    seed: int = 0,
    progress: bool = False,
    loss: str | None = None,
) -> tuple[Any, FinetuneReport]:
    """Fine-tune a copy of the sentence-transformers model at ``model_path``; return it and a report.

    ``loss`` is ``"pairs"`` or ``"triplet"`` (default ``LOSS``); ``epochs`` defaults to 1 for pairs
    and ``TRIPLET_EPOCHS`` for the triplet loss.
    """
    loss = LOSS if loss is None else loss
    if loss not in ("pairs", "triplet"):
        raise ConfigurationError(f"unknown fine-tuning loss {loss!r}: 'pairs' or 'triplet'", setting="finetune")
    rows, ids = triplet_rows(texts, labels, sources) if loss == "triplet" else ([], [])
    if loss == "triplet" and (
        len(set(zip(texts, labels))) > len(set(texts))  # some text has two labels
        or min(Counter(ids).values(), default=0) < 2  # a class no batch can pair
    ):
        loss = "pairs"
    try:
        from datasets import Dataset
        from sentence_transformers.sentence_transformer.losses import (
            BatchAllTripletLoss,
            BatchHardTripletLossDistanceFunction,
            CosineSimilarityLoss,
        )
    except ImportError as e:
        raise training_extras_missing(e, "fine-tuning the embedder", "finetune") from None

    if len(set(labels)) < 2:
        raise ConfigurationError("fine-tuning needs at least two classes", setting="finetune")
    if epochs is None:
        epochs = TRIPLET_EPOCHS if loss == "triplet" else 1
    settings = {"max_seq_length": max_seq_length, "batch_size": batch_size, "epochs": epochs,
                "learning_rate": learning_rate, "budget_s": budget_s}  # fmt: skip
    if loss == "triplet":
        data = Dataset.from_dict({"sentence": rows, "label": ids})
        report = FinetuneReport(settings={**settings, "loss": "BatchAllTripletLoss", "margin": TRIPLET_MARGIN})
    else:
        a, b, y = make_pairs(texts, labels, sources, seed=seed, min_pairs=min_pairs_for(len(set(labels))))
        data = Dataset.from_dict({"sentence1": a, "sentence2": b, "score": y})
        report = FinetuneReport(settings={**settings, "loss": "CosineSimilarityLoss"})
    report.pairs = len(data)  # training rows: pairs, or the triplet loss's examples
    model = load_model(model_path)

    def objective(m: Any) -> Any:
        if loss == "triplet":
            return BatchAllTripletLoss(m, BatchHardTripletLossDistanceFunction.cosine_distance, margin=TRIPLET_MARGIN)
        return CosineSimilarityLoss(m)

    train_model(
        model,
        data,
        objective,
        report,
        max_seq_length=max_seq_length,
        seed=seed,
        desc="fine-tuning the encoder",
        progress=progress,
        # the triplet loss mines triplets within a batch: each batch holds several classes, 2+ each
        extra_args={"batch_sampler": "group_by_label"} if loss == "triplet" else None,
    )
    return model, report


def training_extras_missing(e: ImportError, what: str, setting: str) -> ConfigurationError:
    """The error for a training step on a machine without sentence-transformers' training extras."""
    return ConfigurationError(
        f"{what} needs sentence-transformers' training extras ({e}): pip install 'sentence-transformers[train]'",
        setting=setting,
    )


def load_model(model_path: str) -> Any:
    """A sentence-transformers model on the CPU, loaded without transformers' bars and warnings."""
    from sentence_transformers import SentenceTransformer

    from .embedders.local import quiet_transformers

    with quiet_transformers():
        return SentenceTransformer(model_path, device="cpu")


def train_model(
    model: Any,
    data: Any,
    objective: Any,
    report: FinetuneReport,
    *,
    max_seq_length: int,
    seed: int,
    desc: str,
    progress: bool,
    extra_args: dict[str, Any] | None = None,
) -> None:
    """Train ``model`` in place with sentence-transformers' trainer on ``data`` and ``objective(model)``,
    as ``report.settings`` say (epochs, batch size, learning rate, budget); fill in ``report``.

    Sequences are cut to ``max_seq_length`` while training (short sequences keep it inside minutes on 2
    cores) and restored after; a budget callback ends training early; only our own bar is shown.
    """
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from .embedders.local import quiet_transformers

    s = report.settings
    epochs, batch_size, budget_s = s["epochs"], s["batch_size"], float(s["budget_s"])
    serving_length = model.max_seq_length
    model.max_seq_length = max_seq_length
    start = time.perf_counter()
    # our own bar, made before stderr is silenced below (the trainer's would print more)
    bar = progress_bar(int(epochs * math.ceil(len(data) / batch_size)), desc, "step", progress)

    class Budget(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if bar is not None:
                bar.update(1)
            if time.perf_counter() - start > budget_s:
                report.stopped_by_budget = True
                control.should_training_stop = True
            return control

    with tempfile.TemporaryDirectory(prefix="promptclf-ft-") as out, quiet_transformers():
        args = Args(
            output_dir=out,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=s["learning_rate"],
            warmup_steps=0.1,  # a float is a share of the steps in transformers 5
            seed=seed,
            save_strategy="no",
            report_to="none",
            logging_steps=10**9,
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            **(extra_args or {}),
        )
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # the trainer prints a model-card bar and a metrics dict; only our own progress is shown
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                trainer = SentenceTransformerTrainer(
                    model=model, args=args, train_dataset=data, loss=objective(model), callbacks=[Budget()]
                )
                trainer.remove_callback(PrinterCallback)
                result = trainer.train()
        finally:
            if bar is not None:
                bar.close()
            model.max_seq_length = serving_length  # embed as the ONNX graph will serve: the base's window
    report.steps = int(result.global_step)
    report.loss = round(float(result.training_loss), 4) if result.training_loss is not None else None
    report.seconds = time.perf_counter() - start
    model.eval()


def encode(model: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit vectors from a (fine-tuned) sentence-transformers model."""
    return model.encode(
        texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)


def finetuned_embedder(model: Any, name: str):
    """An ``Embedder`` over an in-memory fine-tuned model; its vectors live in their own space ``finetuned:<name>``."""
    from .embedders.base import Embedder

    class FinetunedEmbedder(Embedder):
        kind = "finetuned"
        torch_model = model  # what save() exports to ONNX

        def embed_batch(self, texts: list[str]) -> np.ndarray:
            return encode(model, texts)

        def dimension_hint(self) -> int:
            return int(model.get_sentence_embedding_dimension() or 0)

    return FinetunedEmbedder(name)
