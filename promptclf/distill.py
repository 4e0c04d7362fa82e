"""A smaller encoder for faster prediction: the model's encoder distilled into half its layers.

Prediction time is the encoder's. On a CPU without VNNI the int8 MiniLM predicts at about 2.4x raw
PyTorch (BENCHMARKS.md, "Speed ... on another CPU"), and int8 has no more to give there; half the
layers halve the transformer's work. The student is sentence-transformers' layer-reduction recipe:
a copy of the teacher keeping every other layer (``KEEP_LAYERS``; its embeddings, tokenizer and
pooling unchanged), trained with ``MSELoss`` to reproduce the teacher's unit vectors on this model's
own texts (descriptions, examples, the unlabeled pool) by sentence-transformers' trainer. The head is
then fit on the student's vectors, so the student is the model's encoder in every path (training,
``.clf``, ONNX prediction, the server, Ray), as a fine-tuned encoder is. Settled by bench/distill.py
(BENCHMARKS.md, "A distilled encoder"). Training runs on a copy: an interruption changes nothing.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np

from .errors import ConfigurationError, InvalidInputError
from .finetune import FinetuneReport, load_model, train_model, training_extras_missing

# Which of MiniLM-L6's layers the student keeps (0-based). Screened by bench/distill_layers.py with a
# plain head on 5,000 real labels (BENCHMARKS.md, "A distilled encoder"): (1, 3, 5) lost 10.4 points
# on trec6, (0, 2, 4) 2.7; the first layer reads the question words. (0, 1, 2) lost 2.7 too, four
# layers (0, 1, 3, 5) 2.5. Through the product (bench/distill.py) (0, 2, 4) loses nothing.
KEEP_LAYERS = (0, 2, 4)
# Two epochs lost 1.0 point on sst2 and 2.7 on trec6, four 0.2 and 2.2, six 2.1 on trec6
EPOCHS = 4
LEARNING_RATE = 1e-4  # the layer-reduction example's rate (3e-4 measured the same on trec6)
MAX_SEQ_LENGTH = 128
# Distillation needs texts like the ones the model will see: below this many the student is fit to
# too few (a prompt alone gives a few hundred generated examples); above the cap, a sample
MIN_TEXTS = 1_000
MAX_TEXTS = 8_000
# Seconds of distillation at most (``finetune_budget_s`` where that is lower). 150 s lost nothing
# against 300 s: with real labels -0.2 / +0.5 / +3.3 points against the full encoder on sst2 /
# ag_news / trec6 (300 s: +0.4 / +0.7 / +3.1), with unlabeled texts 0.757 / 0.806 on trec6 / sst2
# (300 s: 0.754 / 0.812; the default 0.742 / 0.807), and unlabeled mode then trains in 7.5-8.6
# minutes instead of 10-11 (BENCHMARKS.md, "A distilled encoder" and its 150 s section).
BUDGET_S = 150.0


def student_of(teacher: Any) -> Any:
    """A copy of a BERT-style sentence-transformers model keeping the layers ``KEEP_LAYERS``."""
    import torch

    student = copy.deepcopy(teacher)
    hf = student[0].auto_model
    layers = getattr(getattr(hf, "encoder", None), "layer", None)
    if layers is None or len(layers) <= max(KEEP_LAYERS):
        raise ConfigurationError(
            f"distill=True keeps layers {list(KEEP_LAYERS)} of a BERT-style encoder; "
            f"{type(hf).__name__} has {'no such layers' if layers is None else f'{len(layers)} layers'}",
            setting="distill",
        )
    hf.encoder.layer = torch.nn.ModuleList([layers[i] for i in KEEP_LAYERS])
    hf.config.num_hidden_layers = len(KEEP_LAYERS)
    return student


def distill(
    teacher: Any,
    texts: list[str],
    targets: np.ndarray,
    *,
    budget_s: float = BUDGET_S,
    seed: int = 0,
    progress: bool = False,
    batch_size: int = 32,
) -> tuple[Any, FinetuneReport]:
    """Distil ``teacher`` (a sentence-transformers model, or a path to one) into a smaller copy.

    ``targets``: the teacher's unit vectors of ``texts`` (one row each; the caller has them cached),
    what the student learns to reproduce. More than ``MAX_TEXTS`` texts: a sample of that many.
    Returns the student (in eval mode, its serving window restored) and a report whose ``pairs``
    counts the texts it was trained on.
    """
    try:
        from datasets import Dataset
        from sentence_transformers.sentence_transformer.losses import MSELoss
    except ImportError as e:
        raise training_extras_missing(e, "distilling the encoder", "distill") from None
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim != 2 or len(targets) != len(texts):
        raise InvalidInputError(
            f"targets must hold one vector per text: {targets.shape} for {len(texts)} texts", argument="targets"
        )
    if len(texts) > MAX_TEXTS:
        keep = sorted(random.Random(seed).sample(range(len(texts)), MAX_TEXTS))
        texts, targets = [texts[i] for i in keep], targets[keep]
    model = load_model(teacher) if isinstance(teacher, str) else teacher
    student = student_of(model)
    settings = {"max_seq_length": MAX_SEQ_LENGTH, "batch_size": batch_size, "epochs": EPOCHS,
                "learning_rate": LEARNING_RATE, "budget_s": budget_s, "loss": "MSELoss",
                "layers": list(KEEP_LAYERS), "teacher_layers": len(model[0].auto_model.encoder.layer)}  # fmt: skip
    report = FinetuneReport(settings=settings)
    report.pairs = len(texts)
    data = Dataset.from_dict({"sentence": list(texts), "label": targets.tolist()})
    train_model(
        student,
        data,
        MSELoss,
        report,
        max_seq_length=MAX_SEQ_LENGTH,
        seed=seed,
        desc="distilling the encoder",
        progress=progress,
    )
    return student, report
