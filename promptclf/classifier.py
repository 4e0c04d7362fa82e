"""``PromptClassifier``: examples and class descriptions in, a calibrated classifier out."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from . import modelfile
from ._validation import check_class_name, check_examples, check_prompts, check_texts
from ._version import __version__
from .calibration import label_issues, pr_curves, thresholds_for_precision
from .embedders import Embedder, EmbeddingCache, get_embedder
from .errors import ConfigurationError, InvalidInputError, ModelFileError, NotFittedError
from .head import LinearHead, choose_C, fit_head, out_of_fold_proba, prior_coef, with_prior
from .store import ExampleStore

log = logging.getLogger("promptclf")
TextInput = str | Iterable[str]


def prompt_sha(description: str) -> str:
    """Short fingerprint of a class description: generated examples remember which one made them."""
    return hashlib.sha256(description.encode()).hexdigest()[:16]


class PromptClassifier:
    """Text classifier trained from class descriptions, your examples, or both.

    Parameters follow scikit-learn's conventions: ``__init__`` stores settings only; fitted state
    ends in ``_`` (``classes_``, ``thresholds_``); ``predict_proba`` columns follow ``classes_``.

    llm, embedder:
        ``None`` for the local defaults (SmolLM2-135M via llama.cpp, all-MiniLM-L6-v2), a spec
        string such as ``"openai:gpt-4o-mini"``, or a backend object.
    examples_per_class:
        How many synthetic examples ``prompt_train`` keeps per class.
    saved_examples_path:
        JSONL file backing the example store. Every example is appended as it is made, so an
        interrupted ``prompt_train`` resumes. ``None`` keeps examples in memory (and in the ``.clf``).
    target_precision:
        Precision each class's abstention threshold aims for (``predict(..., abstain=True)``).
    strategy:
        ``"direct"`` writes each example straight from the description (and your examples);
        ``"summaries"`` is Lamini's generate-diversify-expand. BENCHMARKS.md has the comparison.
    llm_label_budget:
        With ``unlabeled`` texts, how many of the least confident ones the LLM may label (0: none).
    prior_weight:
        Weight of the zero-shot prior (cosine to each class description) added to the head's scores
        when every class has a description; 0 turns it off. Chosen on the benchmark (BENCHMARKS.md).
    C:
        Inverse regularisation of the head. ``None``: cross-validated when every class has at least
        8 of your own examples, else 1.0; ``"cv"``: always cross-validated; a number: fixed.
    """

    def __init__(
        self,
        llm: Any = None,
        embedder: Any = None,
        *,
        examples_per_class: int = 32,
        saved_examples_path: str | os.PathLike[str] | None = None,
        target_precision: float = 0.9,
        random_state: int = 0,
        strategy: str = "direct",
        templates: Mapping[str, str] | None = None,
        filter_generated: bool = True,
        llm_label_budget: int = 0,
        prior_weight: float = 10.0,
        C: float | str | None = None,
        progress: bool = True,
    ) -> None:
        self.llm = llm
        self.embedder = embedder
        self.examples_per_class = examples_per_class
        self.saved_examples_path = saved_examples_path
        self.target_precision = target_precision
        self.random_state = random_state
        self.strategy = strategy
        self.templates = templates
        self.filter_generated = filter_generated
        self.llm_label_budget = llm_label_budget
        self.prior_weight = prior_weight
        self.C = C
        self.progress = progress

    def __repr__(self) -> str:
        fitted = f", classes={list(self.classes_)}" if self._is_fitted() else ""
        return f"PromptClassifier(embedder={self._embedder.id!r}{fitted})"

    # ------------------------------------------------------------------ lazy working state
    # Made on first use, so __init__ stays settings-only and nothing heavy loads until needed.
    @cached_property
    def _store(self) -> ExampleStore:
        path = self.saved_examples_path
        return ExampleStore.load(path) if path is not None and Path(path).exists() else ExampleStore(path)

    @cached_property
    def _embedder(self) -> Embedder:
        return get_embedder(self.embedder)

    @cached_property
    def _cache(self) -> EmbeddingCache:
        return EmbeddingCache()

    @cached_property
    def _llm(self) -> Any:
        from .llms import get_llm

        return get_llm(self.llm)

    def _is_fitted(self) -> bool:
        return "head_" in self.__dict__

    def _check_fitted(self) -> LinearHead:
        if not self._is_fitted():
            raise NotFittedError("this PromptClassifier is not trained yet: call train(), prompt_train() or load()")
        return self.head_

    # ------------------------------------------------------------------ examples
    def add_data_to_class(self, class_name: str, examples: str | Iterable[str]) -> PromptClassifier:
        """Add your own examples to a class (a new class name creates the class)."""
        check_class_name(class_name)
        self._store.add(class_name, check_examples(examples), source="user")
        return self

    def get_data(self, *, include_generated: bool = True, include_pseudo: bool = False) -> dict[str, list[str]]:
        """Examples per class. Generated ones are included by default; pseudo-labelled ones on request."""
        sources = ["user"] + (["generated"] if include_generated else []) + (["pseudo"] if include_pseudo else [])
        return self._store.by_class(sources)

    def save_examples(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the example store as Lamini-compatible JSONL (atomically)."""
        path = path or self.saved_examples_path
        if path is None:
            raise ConfigurationError("no path: pass one or set saved_examples_path")
        self._store.save(path)

    def load_examples(self, path: str | os.PathLike[str] | None = None) -> PromptClassifier:
        """Add the examples of a JSONL file (Lamini's format or ours) to the store."""
        path = path or self.saved_examples_path
        if path is None:
            raise ConfigurationError("no path: pass one or set saved_examples_path")
        same = self.saved_examples_path is not None and Path(path) == Path(self.saved_examples_path)
        if same and "_store" not in self.__dict__:
            self._store  # noqa: B018  (the store reads its own file when first made)
            return self
        loaded = ExampleStore.load(path, attach=False)
        for c in loaded.classes:
            self._store.add_class(c)
        self._store.extend(loaded)  # one append for the lot
        return self

    # ------------------------------------------------------------------ training
    def prompt_train(self, prompts: Mapping[str, str], *, unlabeled: Iterable[str] | None = None) -> PromptClassifier:
        """Generate synthetic examples from class descriptions, then train.

        Classes that already have enough generated examples for the same description generate
        nothing; a changed description replaces that class's generated examples (never yours).
        """
        from .generation import generate_for_classes

        prompts = check_prompts(prompts)
        classes = set(prompts) | set(self._store.classes)
        if len(classes) < 2:
            raise InvalidInputError(f"need at least two classes, got {sorted(classes)}")
        merged = dict(getattr(self, "prompts_", {}))
        merged.update(prompts)
        shas = {c: prompt_sha(d) for c, d in merged.items()}
        stale = self._store.remove(
            lambda e: (
                e.source == "generated" and e.class_name in prompts and e.meta.get("prompt_sha") != shas[e.class_name]
            )
        )
        if stale:
            log.info("dropped %d generated examples made from older descriptions", stale)
        self.prompts_ = merged
        self.generation_report_ = generate_for_classes(self, prompts, shas)
        return self.train(unlabeled=unlabeled)

    def _training_set(
        self, include: tuple[str, ...] = ("user", "generated", "pseudo")
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Texts, labels and provenance: class descriptions first (as anchors), then stored examples."""
        texts: list[str] = []
        labels: list[str] = []
        sources: list[str] = []
        for c, desc in getattr(self, "prompts_", {}).items():  # descriptions anchor their class
            texts.append(desc)
            labels.append(c)
            sources.append("prompt")
        for e in self._store.examples(include):
            texts.append(e.text)
            labels.append(e.class_name)
            sources.append(e.source)
        return texts, np.asarray(labels, dtype=str), np.asarray(sources, dtype=str)

    def train(self, *, unlabeled: Iterable[str] | None = None) -> PromptClassifier:
        """Fit the head on every stored example (and class description), then calibrate thresholds.

        With ``unlabeled`` texts, first pseudo-label them (see ``promptclf.selftrain``); they replace
        earlier pseudo-labels in the store, with provenance ``pseudo`` and their confidence.
        """
        if unlabeled is not None:
            self._pseudo_label(unlabeled)
        texts, y, sources = self._training_set()
        self._check_trainable(y)
        X = self._embedder.embed(texts, cache=self._cache, progress=self.progress)
        C = self._choose_C(X, y, sources == "user")
        prior = self._prior(np.unique(y))
        oof = out_of_fold_proba(X, y, C, prior=prior, random_state=self.random_state)
        keep = np.ones(len(y), dtype=bool)
        if oof is not None and self.filter_generated:
            classes = np.unique(y)
            y_idx = np.searchsorted(classes, y)
            keep = ~(label_issues(y_idx, oof) & np.isin(sources, ["generated", "pseudo"]))
            if (~keep).any():
                log.info("confident learning dropped %d generated examples that contradict the rest", (~keep).sum())
                if len(set(y[keep].tolist())) == len(set(y.tolist())):
                    oof = out_of_fold_proba(X[keep], y[keep], C, prior=prior, random_state=self.random_state)
                else:
                    keep[:] = True
        self.head_ = with_prior(fit_head(X[keep], y[keep], C=C, random_state=self.random_state), prior)
        self.classes_ = self.head_.classes_
        self.n_features_in_ = self.head_.n_features_in_
        self._set_calibration(oof, np.searchsorted(self.classes_, y[keep]) if oof is not None else None)
        by_source = Counter(zip(y[keep].tolist(), sources[keep].tolist()))
        self.training_summary_ = {
            "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "n_examples": int(keep.sum()),
            "per_class": {
                str(c): {
                    s: by_source[(str(c), s)]
                    for s in ("prompt", "user", "generated", "pseudo")
                    if by_source[(str(c), s)]
                }
                for c in self.classes_
            },
            "dropped_by_confident_learning": int((~keep).sum()),
            "C": self.head_.C_,
            "prior_weight": self.prior_weight if prior is not None else 0.0,
            "cv_accuracy": None if oof is None else float((oof.argmax(1) == self._oof_labels_).mean()),
        }
        return self

    def _choose_C(self, X: np.ndarray, y: np.ndarray, trusted: np.ndarray) -> float:
        if self.C is None:
            return choose_C(X, y, trusted, self.random_state)
        if self.C == "cv":
            return choose_C(X, y, None, self.random_state)
        if isinstance(self.C, (int, float)) and not isinstance(self.C, bool) and self.C > 0:
            return float(self.C)
        raise ConfigurationError(f"C must be None, 'cv' or a positive number, got {self.C!r}")

    def _prior(self, classes: np.ndarray) -> np.ndarray | None:
        prompts = getattr(self, "prompts_", {})
        if self.prior_weight <= 0 or not prompts:
            return None
        names = list(prompts)
        D = self._embedder.embed([prompts[c] for c in names], cache=self._cache)
        return prior_coef(classes, dict(zip(names, D)), self.prior_weight)

    def _check_trainable(self, y: np.ndarray) -> None:
        counts = Counter(y.tolist())
        empty = [c for c in self._store.classes if counts.get(c, 0) == 0]
        if empty:
            raise InvalidInputError(f"class(es) {empty} have no examples and no description")
        if len(counts) < 2:
            raise InvalidInputError(f"need at least two classes with examples, got {sorted(counts)}")

    def _pseudo_label(self, unlabeled: Iterable[str]) -> None:
        from .selftrain import LLMLabeler, self_train
        from .store import Example

        texts, y, src = self._training_set(("user", "generated"))
        self._check_trainable(y)
        known = set(texts)
        pool = [t for t in dict.fromkeys(check_texts(unlabeled, "unlabeled")) if t.strip() and t not in known]
        if not pool:
            raise InvalidInputError("unlabeled: no texts left after removing empty ones and known examples")
        X = self._embedder.embed(texts, cache=self._cache, progress=self.progress)
        XU = self._embedder.embed(pool, cache=self._cache, progress=self.progress)
        labeler = None
        if self.llm_label_budget > 0:
            labeler = LLMLabeler(self._llm, getattr(self, "prompts_", {}), np.unique(y), pool, self.llm_label_budget)
        prior = self._prior(np.unique(y))
        res = self_train(
            X,
            y,
            XU,
            C=self._choose_C(X, y, src == "user"),
            prior=prior,
            random_state=self.random_state,
            llm_labeler=labeler,
        )
        self._store.remove(lambda e: e.source == "pseudo")
        self._store.extend(
            Example(pool[i], str(c), "pseudo", {"confidence": round(float(p), 4), "labeler": str(who)})
            for i, c, p, who in zip(res.index, res.labels, res.confidence, res.labeler)
        )
        self.self_training_report_ = res.report

    def _set_calibration(self, proba: np.ndarray | None, y_idx: np.ndarray | None, target: float | None = None) -> None:
        target = self.target_precision if target is None else target
        self._oof_proba_, self._oof_labels_ = proba, y_idx
        if proba is None:
            log.warning("too few examples per class for cross-validation: thresholds set to 0 (never abstain)")
            self.thresholds_ = np.zeros(len(self.classes_))
            self.precision_at_threshold_ = {}
            return
        curves = pr_curves(y_idx, proba, self.classes_)
        self.thresholds_, self.precision_at_threshold_ = thresholds_for_precision(curves, self.classes_, target)

    def calibrate(
        self, texts: Iterable[str], labels: Iterable[str], *, target_precision: float | None = None
    ) -> PromptClassifier:
        """Recompute abstention thresholds from real labelled data (better than the synthetic default)."""
        head = self._check_fitted()
        texts = check_texts(texts)
        labels = check_texts(labels, "labels")
        if len(texts) != len(labels):
            raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels")
        unknown = sorted(set(labels) - set(self.classes_))
        if unknown:
            raise InvalidInputError(f"labels {unknown} are not classes of this model ({list(self.classes_)})")
        proba = head.predict_proba(self._embed(texts))
        if target_precision is not None:
            self.target_precision = target_precision
        self._set_calibration(proba, np.searchsorted(self.classes_, np.asarray(labels, dtype=str)))
        return self

    # ------------------------------------------------------------------ prediction
    def _embed(self, texts: list[str]) -> np.ndarray:
        X = self._embedder.embed(texts, progress=self.progress)
        if len(texts) and X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"embedder {self._embedder.id} gives {X.shape[1]}-dimensional vectors but this model was trained "
                f"on {self.n_features_in_}: use the embedder it was trained with"
            )
        return X

    def predict_proba(self, texts: TextInput) -> np.ndarray:
        """Probabilities, one row per text, columns in the order of ``classes_``."""
        head = self._check_fitted()
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        return head.predict_proba(self._embed(texts))

    def predict(self, texts: TextInput, *, abstain: bool = False) -> Any:
        """Class per text (a string for a string). With ``abstain``, ``None`` under the class's threshold."""
        labels = self.predict_from_proba(self.predict_proba(texts), abstain=abstain)
        return labels[0] if isinstance(texts, str) else labels

    def predict_from_proba(self, proba: np.ndarray, *, abstain: bool = False) -> list[str | None]:
        """Labels for rows of ``predict_proba`` output (lets callers get both from one forward pass)."""
        top = proba.argmax(axis=1)
        labels: list[str | None] = [str(self.classes_[j]) for j in top]
        if abstain:
            sure = proba[np.arange(len(top)), top] >= self.thresholds_[top]
            labels = [lab if ok else None for lab, ok in zip(labels, sure)]
        return labels

    def classify(
        self, texts: TextInput, *, top_n: int | None = None, threshold: float | None = None
    ) -> list[list[dict[str, Any]]]:
        """Per text, ``[{"class_name", "prob"}, ...]`` by falling probability (Lamini's shape)."""
        proba = self.predict_proba(texts)
        out = []
        for row in proba:
            order = np.argsort(-row, kind="stable")
            items = [{"class_name": str(self.classes_[j]), "prob": float(row[j])} for j in order]
            if threshold is not None:
                items = [d for d in items if d["prob"] >= threshold]
            out.append(items[:top_n] if top_n is not None else items)
        return out

    # ------------------------------------------------------------------ calibration views
    def precision_recall_curves(self) -> dict[str, dict[str, np.ndarray]]:
        """Per class: precision, recall and thresholds from out-of-fold (or ``calibrate``) probabilities."""
        self._check_fitted()
        if self._oof_proba_ is None:
            return {}
        return pr_curves(self._oof_labels_, self._oof_proba_, self.classes_)

    def plot_precision_recall(
        self, path: str | os.PathLike[str], *, texts: Iterable[str] | None = None, labels: Iterable[str] | None = None
    ) -> None:
        """Write a PNG of each class's precision-recall curve with its threshold marked.

        Curves come from the training out-of-fold probabilities, or from ``texts``/``labels`` if given.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ConfigurationError("plotting needs matplotlib: pip install 'promptclf[plot]'") from None
        if texts is not None and labels is not None:
            labels = check_texts(labels, "labels")
            y_idx = np.searchsorted(self.classes_, np.asarray(labels, dtype=str))
            curves = pr_curves(y_idx, self.predict_proba(texts), self.classes_)
        else:
            curves = self.precision_recall_curves()
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for j, c in enumerate(self.classes_):
            cur = curves.get(str(c))
            if cur is None:
                continue
            (line,) = ax.plot(cur["recall"], cur["precision"], label=str(c))
            t = cur["thresholds"]
            if len(t):
                i = min(np.searchsorted(t, self.thresholds_[j]), len(t) - 1)
                ax.plot(cur["recall"][i], cur["precision"][i], "o", color=line.get_color())
        ax.axhline(self.target_precision, ls="--", color="grey", lw=0.8)
        ax.set(xlabel="recall", ylabel="precision", title="precision-recall per class", ylim=(0, 1.02))
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    # ------------------------------------------------------------------ model file
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one ``.clf`` file (atomic: a failure never damages an existing file)."""
        head = self._check_fitted()
        store_texts = [e.text for e in self._store] + list(getattr(self, "prompts_", {}).values())
        cached = self._cache.export(self._embedder.id, store_texts)
        arrays = {"head/coef.npy": head.coef_, "head/intercept.npy": head.intercept_}
        if self._oof_proba_ is not None:
            arrays["calibration/proba.npy"] = self._oof_proba_.astype(np.float32)
            arrays["calibration/labels.npy"] = self._oof_labels_.astype(np.int32)
        if cached is not None:
            arrays["cache/embeddings.npy"] = cached[1].astype(np.float32)
        manifest = {
            "promptclf_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "classes": [str(c) for c in self.classes_],
            "embedder": {**self._embedder.to_spec(), "dimension": self.n_features_in_},
            "head": {"kind": "logistic-regression", "C": head.C_},
            "thresholds": [float(t) for t in self.thresholds_],
            "target_precision": float(self.target_precision),
            "settings": {"examples_per_class": self.examples_per_class, "random_state": self.random_state},
            "training_summary": self.training_summary_,
            "generation_report": getattr(self, "generation_report_", None),
            "self_training_report": getattr(self, "self_training_report_", None),
        }
        modelfile.write(
            path,
            modelfile.ModelFile(
                manifest=manifest,
                prompts=dict(getattr(self, "prompts_", {})),
                examples_jsonl=self._store.to_jsonl(),
                arrays=arrays,
                cache_texts=cached[0] if cached is not None else None,
            ),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, embedder: Any = None, llm: Any = None) -> PromptClassifier:
        """Read a ``.clf``: ready to predict at once, and to keep learning (the examples travel inside).

        A model trained with the packaged sentence-transformers MiniLM is served through ONNX Runtime
        (same vectors, no PyTorch import, faster; exported once and cached). Pass ``embedder=`` to
        choose: ``"sentence-transformers:all-MiniLM-L6-v2"`` for PyTorch, ``"onnx-int8:..."`` for int8.
        """
        mf = modelfile.read(path)
        m = mf.manifest
        where = str(path)
        try:
            classes = np.asarray(m["classes"], dtype=str)
            emb_spec = dict(m["embedder"])
            dim = int(emb_spec.pop("dimension"))
            thresholds = np.asarray(m["thresholds"], dtype=np.float64)
            C = float(m["head"]["C"])
            settings = dict(m.get("settings") or {})
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{where}: manifest is incomplete or malformed ({e})") from None
        coef, intercept = mf.arrays["head/coef.npy"], mf.arrays["head/intercept.npy"]
        k = len(classes)
        rows = 1 if k == 2 else k
        if k < 2 or coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,) or thresholds.shape != (k,):
            raise ModelFileError(f"{where}: head arrays do not match the {k} classes in the manifest")
        if coef.shape[1] != dim:
            raise ModelFileError(f"{where}: head has {coef.shape[1]} features but the manifest says dimension {dim}")
        if embedder is None:
            from .embedders.onnx_backend import fast_equivalent

            embedder = fast_equivalent(emb_spec) or emb_spec
        clf = cls(
            llm=llm,
            embedder=embedder,
            examples_per_class=int(settings.get("examples_per_class", 32)),
            random_state=int(settings.get("random_state", 0)),
            target_precision=float(m.get("target_precision", 0.9)),
        )
        try:
            clf._store = ExampleStore.from_jsonl(mf.examples_jsonl, origin=f"{where}:examples.jsonl")
        except InvalidInputError as e:
            raise ModelFileError(str(e)) from None
        clf.prompts_ = dict(mf.prompts)
        clf.head_ = LinearHead(
            classes_=classes, coef_=coef.astype(np.float32), intercept_=intercept.astype(np.float32), C_=C
        )
        clf.classes_ = classes
        clf.n_features_in_ = dim
        clf.thresholds_ = thresholds
        clf.precision_at_threshold_ = {}
        clf.training_summary_ = m.get("training_summary") or {}
        clf.generation_report_ = m.get("generation_report")
        clf.self_training_report_ = m.get("self_training_report")
        proba, labels = mf.arrays.get("calibration/proba.npy"), mf.arrays.get("calibration/labels.npy")
        clf._oof_proba_, clf._oof_labels_ = (
            (proba, labels.astype(np.int64)) if proba is not None and labels is not None else (None, None)
        )
        if mf.cache_texts is not None and "cache/embeddings.npy" in mf.arrays:
            vecs = mf.arrays["cache/embeddings.npy"]
            if vecs.shape != (len(mf.cache_texts), dim):
                raise ModelFileError(f"{where}: cached embeddings do not match their texts")
            spec_id = f"{emb_spec.get('kind')}:{emb_spec.get('model')}"
            clf._cache.load(spec_id, mf.cache_texts, vecs)  # used only by an embedder with the same id
        return clf
