"""Batch prediction on Ray Data: a Dataset's text column in, ``label`` and ``prob`` columns out.

Each worker is an actor that loads the ``.clf`` once (ONNX Runtime, no torch) and predicts the
batches Ray hands it, so a cluster runs as many copies as it has workers. On one machine, start Ray
with ``ray.init(num_cpus=N)``; on a cluster, ``ray.init(address="auto")`` or set ``RAY_ADDRESS``.

    import ray
    from promptclf.integrations.ray import predict_dataset

    ds = ray.data.read_parquet("s3://bucket/texts/")
    predict_dataset(ds, "model.clf", text_column="text").write_parquet("s3://bucket/labels/")

A multi-label model's ``label`` is its labels joined by ``|`` (empty: none), the same in every format.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidInputError

MULTI_LABEL_DELIMITER = "|"  # a multi-label model's labels in one string column, as `promptclf eval` reads them


class ClassifierActor:
    """The callable class ``map_batches`` runs: loads the model once per worker, predicts batches.

    The model file's bytes travel with the task (not its path), so workers on other machines need
    no shared filesystem; each worker checks the file as ``PromptClassifier.load`` does.
    """

    def __init__(self, model: bytes, text_column: str, embedder: str | None = None, threads: int = 1) -> None:
        import tempfile

        from ..classifier import PromptClassifier

        # several actors on one machine: each keeps to its share of the cores (see _cpu.available_cpus)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        with tempfile.NamedTemporaryFile(suffix=".clf") as f:
            f.write(model)
            f.flush()
            self.clf = PromptClassifier.load(f.name, embedder=embedder)
        self.clf.progress = False
        self.text_column = text_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise InvalidInputError(
                f"no column {self.text_column!r}; the dataset has {sorted(batch)}", argument="text_column"
            )
        texts = [str(t) for t in batch[self.text_column]]
        proba = self.clf.predict_proba(texts) if texts else np.zeros((0, len(self.clf.classes_)))
        out = dict(batch)
        labels = self.clf.predict_from_proba(proba)
        if self.clf.multi_label:  # one string column in every output format: the labels joined by "|"
            labels = [MULTI_LABEL_DELIMITER.join(row) for row in labels]
        out["label"] = np.asarray(labels, dtype=object)
        out["prob"] = proba.max(axis=1) if len(proba) else np.zeros(0)
        return out


def worker_cpus(workers: int, cluster_cpus: float) -> float:
    """CPUs to reserve per actor: one each, unless ``workers`` of them would leave less than one CPU
    (half of a one-CPU cluster) for Ray Data's read and write tasks; then an equal share of the rest.

    On a 2-CPU machine, 1 worker gets 1 CPU and 2 workers get 0.5 each (measured in bench/serve.py).
    """
    spare = min(1.0, cluster_cpus / 2)
    return max(0.01, min(1.0, (cluster_cpus - spare) / workers))


def predict_dataset(
    ds: Any,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    batch_size: int = 256,
    workers: int = 1,
    cpus_per_worker: float | None = None,
    embedder: str | None = None,
) -> Any:
    """Add ``label`` and ``prob`` columns to a Ray Dataset (lazily: nothing runs until it is consumed).

    Parameters
    ----------
    ds : ray.data.Dataset
        The rows; ``text_column`` holds the texts.
    model : path
        The ``.clf`` file (read here, sent to the workers).
    batch_size : int, default 256
        Rows per call on a worker.
    workers : int, default 1
        Actors, each with its own copy of the model.
    cpus_per_worker : float, optional
        CPUs Ray reserves per actor; ONNX Runtime uses that many threads (rounded up). By default one
        CPU each, or less where the actors would otherwise hold every CPU of the cluster (see
        :func:`worker_cpus`): Ray Data's read and write tasks need a CPU too, and with none left the
        job waits forever instead of failing.
    embedder : str, optional
        Serve with another embedder of the same vector space (e.g. ``"onnx:all-MiniLM-L6-v2"``, fp32).
    """
    from ray.data import ActorPoolStrategy

    if batch_size < 1 or workers < 1 or (cpus_per_worker is not None and cpus_per_worker <= 0):
        raise ConfigurationError(
            f"batch_size and workers must be at least 1 and cpus_per_worker positive, got "
            f"{batch_size}, {workers}, {cpus_per_worker}"
        )
    if cpus_per_worker is None:
        import ray

        cpus_per_worker = worker_cpus(workers, ray.cluster_resources().get("CPU", 1.0))
    data = Path(model).read_bytes()
    threads = max(1, math.ceil(cpus_per_worker))
    return ds.map_batches(
        ClassifierActor,
        fn_constructor_args=(data, text_column, embedder, threads),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )
