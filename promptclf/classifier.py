"""``PromptClassifier``: examples and class descriptions in, a calibrated classifier out."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import modelfile
from ._registry import spec_id
from ._validation import (
    check_class_name,
    check_examples,
    check_positive_int,
    check_probability,
    check_prompts,
    check_texts,
)
from .calibration import MIN_REAL_PER_CLASS, cross_validated_estimate, label_issues, pr_curves, thresholds_for_precision
from .embedders import Embedder, EmbeddingCache, get_embedder
from .embedders.base import Joined
from .errors import (
    ConfigurationError,
    InvalidInputError,
    ModelFileError,
    NotFittedError,
    PromptClfError,
    UncalibratedThresholdsWarning,
)
from .head import (
    DEFAULT_C,
    MIN_TRUSTED_PER_CLASS,
    LinearHead,
    choose_C,
    fit_head,
    out_of_fold_proba,
    prior_coef,
    with_prior,
)
from .settings import SAVED, ParamsMixin, check_setting, validate
from .store import ExampleStore

if TYPE_CHECKING:
    from .cascade import FastPath
    from .review.suggest import Suggestion

log = logging.getLogger("promptclf")
LLM_WEIGHT = 3.0  # settled by bench/chain.py (feedback table)
USER_WEIGHT = 1.0  # settled by bench/learning.py (user weight table)
# finetune="auto" tunes from this many unlabeled texts on (bench/finetune.py: a gain on every set
# measured, pools of 660 to 5,000; nothing measured for tiny pools, where a 85 MB file is mostly cost)
AUTO_FINETUNE_MIN_POOL = 500
# ... and in prompt_train when every class has this many examples of its own (generated or yours): the
# generators bench measures a gain from the prompt alone on all five sets at 32 asked per class (26 to
# 32 kept per class there); fewer were not measured, and a file of 85 MB for a handful is mostly cost
AUTO_FINETUNE_MIN_PER_CLASS = 16
# with unlabeled texts: fine-tune, relabel the pool with the tuned encoder, and (a second round) tune
# again from the base on those labels. bench/finetune_rounds.py: the second round lost 2.4 points on
# ag_news (0.826 against 0.850; why was not measured)
OUTER_ROUNDS = 1
# with unlabeled texts and fine-tuning, what labels the pool first where the encoder was tuned on no pool
# text (from the prompt or your labels): "both" (the base's and the tuned encoder's vectors side by side),
# "tuned" or "base" (before). A switch for the benchmarks; _first_labeller says why "both".
FIRST_LABELS = "both"
# finetune="auto" with a pool and an encoder tuned on the prompt: tune again on the pool only where its
# first labels agree with what the examples alone say on less than this share of it (a pool that moves
# the model little teaches the encoder little beyond the prompt, and its tuning costs minutes). Halfway
# between the five sets bench/pool_choice.py measured: tuning paid at 0.865-0.925, cost at 0.954-0.968
POOL_TUNING_MAX_AGREEMENT = 0.94
# what self-training labels a pool from: every kind of stored example but an earlier pool's pseudo-labels
ANCHORS = ("user", "generated", "llm")
# calibrate on your examples with out-of-fold probabilities from folds without pseudo-labels
# (settled by bench/learning.py: see _without_pseudo)
CALIBRATE_WITHOUT_PSEUDO = True
TextInput = str | Iterable[str]


def prompt_sha(description: str) -> str:
    """Short fingerprint of a class description: generated examples remember which one made them."""
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def question_sha(classes: list[str], descriptions: Mapping[str, str], llm: dict[str, Any] | None) -> str:
    """Short fingerprint of what the LLM is asked when it labels pool texts: its answers stand while it holds."""
    return prompt_sha(json.dumps({"classes": classes, "descriptions": dict(descriptions), "llm": llm}, sort_keys=True))


def provenance(example: Any) -> str:
    """Where a training row's label comes from. A pool text the LLM labelled (``llm_label_budget``) is
    stored as a pseudo-label, replaced with the rest at each labelling of the pool, but trains as the
    LLM's answer: ``LLM_WEIGHT`` in the head, its ``TRUST`` in fine-tuning. Measured with a simulated
    strong LLM (BENCHMARKS.md, "A stronger labeller for the pool's hardest texts")."""
    if example.source == "pseudo" and example.meta.get("labeler") == "llm":
        return "llm"
    return example.source


def pseudo_meta(confidence: float, labeler: str, asked_with: str | None) -> dict[str, Any]:
    """A pseudo-label's meta: the model's confidence, who labelled it, and for the LLM, what it was asked."""
    meta: dict[str, Any] = {"confidence": round(float(confidence), 4), "labeler": labeler}
    if labeler == "llm" and asked_with:
        meta["asked_with"] = asked_with
    return meta


class PromptClassifier(ParamsMixin):
    """Text classifier trained from class descriptions, your examples, or both.

    scikit-learn's conventions: ``__init__`` stores settings only and they are checked when training
    starts; ``get_params``/``set_params`` work (so does ``sklearn.base.clone``); fitted state ends in
    ``_``; ``predict_proba`` columns follow ``classes_``. Every setting but the machine-local ones
    (``saved_examples_path``, ``progress``) travels in the ``.clf``, so ``load(path).train()`` trains
    the same model.

    Parameters
    ----------
    llm : str, dict, LLM or None
        ``None`` for the local default (SmolLM2-135M via llama.cpp; on a task of two to four classes
        the packaged Gemma 3 270M writes as many examples beside it), a spec string such as
        ``"llama-cpp:gemma3-270m"`` or ``"openai:gpt-4o-mini"``, or an ``LLM`` object. A base
        model (a GGUF without a chat template, such as the packaged Gemma 3 270M) is asked for
        examples by a list to continue (the ``complete`` template) instead of a chat.
    embedder : str, dict, Embedder or None
        ``None`` for the packaged all-MiniLM-L6-v2, a spec string, or an ``Embedder`` object.
    examples_per_class : int or "auto", default "auto"
        How many synthetic examples ``prompt_train`` keeps per class (1 to 10,000), shared evenly when
        two LLMs write. "auto": 96 for a two-class task, 64 for three and 32 for four, from each of the two
        default LLMs (192, 128 and 64 in all), 32 for more (few classes gain from more examples;
        BENCHMARKS.md).
    saved_examples_path : str or path, optional
        JSONL file backing the example store. Every example is appended as it is made, so an
        interrupted ``prompt_train`` resumes. ``None`` keeps examples in memory (and in the ``.clf``).
    target_precision : float, default 0.9
        Precision each class's abstention threshold aims for (``predict(..., abstain=True)``).
    random_state : int, default 0
        Seed of generation and of the cross-validation folds (0 to 2**32 - 1).
    strategy : {"direct", "summaries"}, default "direct"
        ``"direct"`` writes each example straight from the description (and your examples);
        ``"summaries"`` is Lamini's generate-diversify-expand. BENCHMARKS.md has the comparison.
    templates : dict, optional
        Replacements for the generation prompts, by name (see ``promptclf.generation.templates``).
    filter_generated : bool, default True
        Drop generated examples that are near-duplicates, sit nearer another class's description,
        or that confident learning flags at training.
    llm_label_budget : int or "auto", default "auto"
        With ``unlabeled`` texts, how many of the least confident ones the LLM may label (0: none),
        in each labelling of the pool: fine-tuning labels it twice (before and after), so at most
        twice as many texts are sent. Its answers are kept with the pseudo-labels (in the ``.clf``
        too) and reused, not asked again, while the classes, descriptions and LLM are unchanged.
        ``"auto"``: none from a local LLM (the packaged ones label worse than the classifier, and a
        local one answers a text at a time); a hosted LLM is first asked for the pool texts the model
        is surest of (60 or more) and labels 500 of the least sure only if it agrees with the model
        there well beyond chance (Cohen's kappa 0.5 or more; ``self_training_report_["llm"]["check"]``).
        That verdict is kept in the ``.clf`` and stands while the classes, descriptions and LLM are
        unchanged.
    prior_weight : float, default 10.0
        Weight of the zero-shot prior (cosine to each class description) added to the head's scores
        when every class has a description; 0 turns it off.
    C : float, "cv" or None
        Inverse regularisation of the head. ``None``: cross-validated when every class has at least
        8 of your own examples, else 1.0; ``"cv"``: always cross-validated; a number: fixed.
    finetune : bool or "auto", default "auto"
        Fine-tune the encoder too (``promptclf.finetune``): on the descriptions, your examples,
        generated examples and pseudo-labels, then relabel the unlabeled texts with it and fit the
        head on its vectors. Needs a local sentence-transformers embedder (the packaged MiniLM) and
        PyTorch at training; the fine-tuned encoder travels in the ``.clf`` as an ONNX graph
        (about 85 MB), served without PyTorch. ``"auto"`` tunes where BENCHMARKS.md measures the
        gain and the embedder and PyTorch allow it: in ``prompt_train`` when every class has at
        least 16 examples (generated or yours), and in ``train`` given at least 500 unlabeled
        texts; a ``train`` otherwise keeps the encoder it has. Given a pool, an encoder already
        tuned on the prompt is tuned again on the pool only where the pool's first labels agree
        with the examples' on less than 94% of it and self-training kept some of its labels
        (``training_summary_["pool_tuning"]``). ``True`` always tunes (an error where it cannot), ``False`` never.
    finetune_budget_s : float, default 300
        Most seconds fine-tuning may take, and distilling (``distill``) too; training stops there and
        keeps what it learnt.
    distill : bool, default False
        Distil the encoder (the fine-tuned one, or the packaged MiniLM) into a copy with half its
        layers (``promptclf.distill``), trained on this model's own texts to reproduce its vectors,
        and fit the head on the copy's: prediction about 1.9x faster everywhere the encoder runs,
        with no loss of macro-F1 measured on the dev sets (BENCHMARKS.md, "A distilled
        encoder"), for up to 150 s more of training (``distill.BUDGET_S``, or ``finetune_budget_s``
        if lower), a ``.clf`` that carries the copy (about 33 MB) and a slower cold start. Needs
        at least 1,000 distinct texts (your examples and the ``unlabeled`` pool; with fewer the
        full encoder stays, with a warning) and what ``finetune`` needs. Runs when the encoder
        changes; a ``train`` that keeps the encoder keeps its distilled copy.
    multi_label : bool, default False
        A text may belong to several classes, or to none (``promptclf.multilabel``): one binary head
        per class, each with its own threshold at ``target_precision``; ``predict`` returns a list of
        classes per text, ``predict_proba`` independent per-class probabilities. A text added to
        several classes with ``add_data_to_class`` has all of them as labels.
    min_labels : {0, 1}, default 0
        Multi-label only: 1 gives every text at least its most probable class, even where no class
        reaches its threshold (for data where every text has a label, as GoEmotions with "neutral").
    long_texts : {"chunk", "truncate"}, default "chunk"
        Texts longer than the embedder's window (256 word pieces for MiniLM, about 200 words) are
        embedded as the mean of overlapping chunks cut on sentence boundaries; ``"truncate"`` keeps
        only the start (faster). ``training_summary_`` counts the long texts either way.
    fast : bool or "auto", default "auto"
        The static fast path (``promptclf.cascade``): a second head on static token embeddings
        distilled from the packaged MiniLM (model2vec's method, made once on this machine) answers
        the texts it is sure of, and only the rest go through the transformer. Its threshold is set
        at training so that it changes at most 2% (``True``) or 1% (``"auto"``) of the main model's
        answers on real texts: your examples, pseudo-labelled texts and the ``unlabeled`` texts of
        that ``train``, not generated examples, on which it says nothing true. Where it also votes on
        the texts it leaves (100+ of your own labels), ``True`` allows 3% (``cascade.VOTE_MAX_LOSS``):
        the vote lifts the model more than that costs (BENCHMARKS.md). ``"auto"`` adds it
        where there are at least 100 real texts and the packaged MiniLM embeds (single-label), and
        leaves it out elsewhere (a model from the prompt alone); ``True`` always adds it (one that
        answers nothing, with a warning, under 100 real texts) and fails where it cannot run.
        Setting it to False on a loaded model predicts without the fast path.
    progress : bool, default True
        Show progress bars for long generation and embedding runs.

    Attributes
    ----------
    classes_ : ndarray of str
        The classes, sorted; the columns of ``predict_proba``.
    head_ : LinearHead
        Coefficients and intercepts of the logistic-regression head (the prior folded in).
    thresholds_ : ndarray of float
        Per-class abstention thresholds on the class probability.
    calibration_ : dict
        Where the thresholds come from: ``source`` (``"out-of-fold"`` on the training data, or
        ``"labelled"`` from ``calibrate``), ``target_precision``, ``n`` rows, ``precision`` reached.
    embedder_spec_ : dict
        The embedder the head was trained with (its vector space), as saved in the ``.clf``.
    n_features_in_ : int
        Embedding dimension.
    prompts_ : dict
        Class descriptions.
    training_summary_, generation_report_, self_training_report_ : dict
        What training used, what generation made and dropped, what self-training did.

    Examples
    --------
    >>> clf = PromptClassifier()  # doctest: +SKIP
    >>> prompts = {"spam": "Unsolicited offers and scams.", "ham": "Ordinary personal messages."}
    >>> clf.prompt_train(prompts)  # doctest: +SKIP
    >>> clf.predict(["WIN a FREE cruise, text YES now"])  # doctest: +SKIP
    ['spam']
    """

    def __init__(
        self,
        llm: Any = None,
        embedder: Any = None,
        *,
        examples_per_class: int | str = "auto",
        saved_examples_path: str | os.PathLike[str] | None = None,
        target_precision: float = 0.9,
        random_state: int = 0,
        strategy: str = "direct",
        templates: Mapping[str, str] | None = None,
        filter_generated: bool = True,
        llm_label_budget: int | str = "auto",
        prior_weight: float = 10.0,
        C: float | str | None = None,
        finetune: bool | str = "auto",
        finetune_budget_s: float = 300.0,
        distill: bool = False,
        multi_label: bool = False,
        min_labels: int = 0,
        long_texts: str = "chunk",
        fast: bool | str = "auto",
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
        self.finetune = finetune
        self.finetune_budget_s = finetune_budget_s
        self.distill = distill
        self.fast = fast
        self.multi_label = multi_label
        self.min_labels = min_labels
        self.long_texts = long_texts
        self.progress = progress

    def __repr__(self) -> str:
        fitted = f", classes={list(self.classes_)}" if self._is_fitted() else ""
        return f"PromptClassifier(embedder={self._emb.id!r}{fitted})"

    # ------------------------------------------------------------------ lazy working state
    # Made on first use, so __init__ stays settings-only and nothing heavy loads until needed.
    @cached_property
    def _store(self) -> ExampleStore:
        loaded = self.__dict__.get("_loaded")
        if loaded is not None:  # a loaded model's examples, parsed now: prediction never needed them
            return loaded.store()
        path = self.saved_examples_path
        return ExampleStore.load(path) if path is not None and Path(path).exists() else ExampleStore(path)

    @cached_property
    def _embedder(self) -> Embedder:
        return get_embedder(self.embedder)

    @cached_property
    def _cache(self) -> EmbeddingCache:
        return self._with_loaded_vectors(EmbeddingCache())

    def _with_loaded_vectors(self, cache: EmbeddingCache) -> EmbeddingCache:
        """``cache`` with the vectors a loaded file carries, parsed now (retraining embeds only what is new)."""
        loaded = self.__dict__.get("_loaded")
        cached = loaded.cached() if loaded is not None else None
        if cached is not None:  # filed under the vector space, which is what an embedder asks for
            cache.load(spec_id(loaded.embedder), *cached)
        return cache

    @cached_property
    def _llm(self) -> Any:
        from .llms import get_llm

        return get_llm(self.llm)

    @property
    def _emb(self) -> Embedder:
        """The embedder the head works in: the fine-tuned encoder when there is one, else ``embedder``."""
        return self.__dict__.get("_tuned") or self._embedder

    def _settings_changed(self, name: str) -> None:
        # a backend resolved from the old value must not outlive it
        if name in ("embedder", "llm"):
            self.__dict__.pop(f"_{name}", None)
        if name == "embedder":  # a fine-tuned encoder belongs to the embedder it was tuned from
            self.__dict__.pop("_tuned", None)

    def _validate_settings(self) -> None:
        validate(self.get_params())
        if self.multi_label:  # not built for multi-label yet: say so instead of training something else
            for name, on in (
                ("llm_label_budget", self.llm_label_budget not in (0, "auto")),
                ("fast", self.fast is True),
            ):
                if on:
                    raise ConfigurationError(f"{name} is not available with multi_label=True yet", setting=name)

    def _is_fitted(self) -> bool:
        return "head_" in self.__dict__

    def _check_fitted(self) -> LinearHead:
        if not self._is_fitted():
            raise NotFittedError("this PromptClassifier is not trained yet: call train(), prompt_train() or load()")
        return self.head_

    def use_embedding_cache(self, cache: EmbeddingCache) -> PromptClassifier:
        """Share an ``EmbeddingCache`` with other classifiers (vectors are keyed by embedder and text).

        Returns ``self``. Useful when several models are trained over the same texts.
        """
        if not isinstance(cache, EmbeddingCache):
            raise InvalidInputError(f"cache must be an EmbeddingCache, got {type(cache).__name__}", argument="cache")
        self._cache = self._with_loaded_vectors(cache)
        return self

    # ------------------------------------------------------------------ examples
    def add_data_to_class(
        self,
        class_name: str,
        examples: str | Iterable[str],
        *,
        source: str = "user",
        meta: dict[str, Any] | None = None,
    ) -> PromptClassifier:
        """Add examples to a class (a new class name creates the class). Returns ``self``.

        Parameters
        ----------
        class_name : str
            The class.
        examples : str or iterable of str
            The texts.
        source : {"user", "llm"}, default "user"
            Provenance: your own examples (trusted most), or labels an LLM gave (``Chain.feedback``
            adds those, with the model and its confidence in ``meta``); both are trained on.
        meta : dict, optional
            JSON-safe details kept with the examples in the store.
        """
        check_class_name(class_name)
        if source not in ("user", "llm"):
            raise InvalidInputError(f"source must be 'user' or 'llm', got {source!r}", argument="source")
        self._store.add(class_name, check_examples(examples), source=source, meta=meta)
        return self

    def get_data(
        self, *, include_generated: bool = True, include_pseudo: bool = False, include_llm: bool = True
    ) -> dict[str, list[str]]:
        """Examples per class: yours, generated and LLM-labelled ones by default; pseudo-labelled on request."""
        sources = (
            ["user"]
            + (["generated"] if include_generated else [])
            + (["pseudo"] if include_pseudo else [])
            + (["llm"] if include_llm else [])
        )
        return self._store.by_class(sources)

    def example_counts(self) -> dict[str, dict[str, int]]:
        """Per class, how many examples of each provenance (user, generated, pseudo) the store holds."""
        counts: dict[str, dict[str, int]] = {c: {} for c in self._store.classes}
        for e in self._store:
            counts[e.class_name][e.source] = counts[e.class_name].get(e.source, 0) + 1
        return counts

    def save_examples(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the example store as Lamini-compatible JSONL (atomically)."""
        path = path or self.saved_examples_path
        if path is None:
            raise ConfigurationError("no path: pass one or set saved_examples_path", setting="saved_examples_path")
        self._store.save(path)

    def load_examples(
        self, path: str | os.PathLike[str] | None = None, *, include_pseudo: bool = True
    ) -> PromptClassifier:
        """Add the examples of a JSONL file (Lamini's format or ours) to the store. Returns ``self``.

        ``include_pseudo=False`` leaves out pseudo-labels a self-training run stored there.
        """
        path = path or self.saved_examples_path
        if path is None:
            raise ConfigurationError("no path: pass one or set saved_examples_path", setting="saved_examples_path")
        same = self.saved_examples_path is not None and Path(path) == Path(self.saved_examples_path)
        if same and "_store" not in self.__dict__ and self.__dict__.get("_loaded") is None and include_pseudo:
            self._store  # noqa: B018  (the store reads its own file when first made)
            return self
        loaded = ExampleStore.load(path, attach=False)
        for c in loaded.classes:
            self._store.add_class(c)
        self._store.extend(e for e in loaded if include_pseudo or e.source != "pseudo")  # one append for the lot
        return self

    # ------------------------------------------------------------------ training
    def prompt_train(
        self,
        prompts: Mapping[str, str],
        *,
        unlabeled: Iterable[str] | None = None,
        generate: bool = True,
        regenerate: bool = False,
    ) -> PromptClassifier:
        """Generate synthetic examples from class descriptions, then train. Returns ``self``.

        Parameters
        ----------
        prompts : dict
            Class name -> description.
        unlabeled : iterable of str, optional
            Your unlabeled texts, pseudo-labelled during training (see ``train``). Where the encoder is
            fine-tuned, the same as ``prompt_train(prompts)`` then ``train(unlabeled=...)``: tuned on the
            examples first, so that encoder helps label the pool, then tuned on the pool's labels.
        generate : bool, default True
            ``False`` trains from the descriptions (and stored examples) alone, without the LLM.
        regenerate : bool, default False
            Classes whose generation with the same description already ran to its end and came up
            short are not tried again (it costs minutes and would fall short again); ``True`` tries.

        Notes
        -----
        Classes that already have enough generated examples for the same description generate
        nothing; a changed description replaces that class's generated examples (never yours).
        Raises ``GenerationError`` if a class ends with no usable example at all.
        """
        from .generation import GenerationContext, examples_per_class_for, generate_for_classes

        prompts = check_prompts(prompts)
        self._validate_settings()
        classes = set(prompts) | set(self._store.classes)
        if len(classes) < 2:
            raise InvalidInputError(f"need at least two classes, got {sorted(classes)}", argument="prompts")
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
        if generate:
            n_classes = len(classes | set(merged))
            more = self._more_writers(n_classes)
            ctx = GenerationContext(
                store=self._store,
                llm=self._llm,
                more_writers=more,
                embedder=self._embedder.trainer(),
                cache=self._cache,
                descriptions=merged,
                examples_per_class=examples_per_class_for(self.examples_per_class, n_classes, 1 + len(more)),
                strategy=self.strategy,
                templates=dict(self.templates) if self.templates else None,
                random_state=self.random_state,
                filter_generated=self.filter_generated,
                progress=self.progress,
                regenerate=regenerate,
                multi_label=bool(self.multi_label),
            )
            self.generation_report_ = generate_for_classes(ctx, list(prompts), shas)
        return self._train(unlabeled, from_prompt=True)

    def _training_set(self, include: tuple[str, ...] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Texts, labels and provenance: class descriptions first (as anchors), then stored examples.

        ``include``: the kinds of stored example; by default all, less generated examples that the
        last self-training run's check set aside (``promptclf.crosscheck``).
        """
        if include is None:
            include = ("user", "generated", "pseudo", "llm")
            if self._generated_set_aside():
                include = ("user", "pseudo", "llm")
        texts: list[str] = []
        labels: list[str] = []
        sources: list[str] = []
        for c, desc in getattr(self, "prompts_", {}).items():  # descriptions anchor their class
            texts.append(desc)
            labels.append(c)
            sources.append("prompt")
        # a person's label of a text overrides a pseudo-label of it (a reviewed pool text keeps its
        # pseudo-label until the next self-training run, which skips labelled texts)
        labelled = {e.text for e in self._store.examples(("user",))} if "pseudo" in include else set()
        for e in self._store.examples(include):
            if e.source == "pseudo" and e.text in labelled:
                continue
            texts.append(e.text)
            labels.append(e.class_name)
            sources.append(provenance(e))
        return texts, np.asarray(labels, dtype=str), np.asarray(sources, dtype=str)

    def _generated_set_aside(self) -> bool:
        """Whether the last run on unlabeled texts found the generated examples pulled the model off
        your texts; it holds (with that run's pseudo-labels) until the next run on unlabeled texts."""
        check = (getattr(self, "self_training_report_", None) or {}).get("generated_examples")
        return isinstance(check, dict) and check.get("keep_generated") is False

    def training_data(self) -> tuple[list[str], list[str], list[str]]:
        """The texts, labels and provenance (prompt, user, generated, pseudo, llm) ``train`` fits on:
        class descriptions first, then every stored example (a pool text the LLM labelled: llm)."""
        texts, y, sources = self._training_set()
        return texts, [str(c) for c in y], [str(s) for s in sources]

    def train(self, *, unlabeled: Iterable[str] | None = None) -> PromptClassifier:
        """Fit the head on every stored example (and class description), then set thresholds.

        With ``unlabeled`` texts, first pseudo-label them (see ``promptclf.selftrain``); they replace
        earlier pseudo-labels in the store, with provenance ``pseudo`` and their confidence. Those
        texts also judge the generated examples (``promptclf.crosscheck``): where self-training from
        the descriptions without them labels the texts more coherently, they are set aside (kept in
        the store) until the next run on unlabeled texts; ``summary()["generated_examples"]`` says
        which. An interruption (Ctrl-C) or an error leaves the fitted model as it was. Returns ``self``.
        """
        return self._train(unlabeled, from_prompt=False)

    def _train(self, unlabeled: Iterable[str] | None, *, from_prompt: bool) -> PromptClassifier:
        """``train``; ``from_prompt``: called by ``prompt_train`` (where "auto" may tune without a pool)."""
        self._validate_settings()
        if unlabeled is not None:  # checked once, used twice when fine-tuning
            unlabeled = check_texts(unlabeled, "unlabeled")
        with self._all_or_nothing():
            return self._fit(unlabeled, from_prompt=from_prompt)

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Training replaces the fitted state whole or not at all.

        It changes the encoder before it refits the head on the encoder's vectors, and the pool's
        pseudo-labels before either: an interruption (Ctrl-C) or an error between the two would leave
        a head reading vectors of an encoder it was not fitted on. On any exception the fitted
        attributes, the tuned encoder and the pool's pseudo-labels are put back as they were; examples
        generated on the way (``prompt_train``) are kept.
        """

        def fitted() -> dict[str, Any]:
            return {k: v for k, v in self.__dict__.items() if k.endswith("_") or k in ("_tuned", "_prior_used")}

        before, pseudo = fitted(), self._store.examples(("pseudo",))
        try:
            yield
        except BaseException:
            for k in fitted().keys() - before.keys():
                del self.__dict__[k]
            self.__dict__.update(before)
            now = self._store.examples(("pseudo",))  # compared by identity: equal Examples may differ in meta
            if len(now) != len(pseudo) or any(a is not b for a, b in zip(now, pseudo)):
                self._store.remove(lambda e: e.source == "pseudo")
                self._store.extend(pseudo)
            raise

    def _fit(self, unlabeled: list[str] | None, *, from_prompt: bool) -> PromptClassifier:
        """``_train`` on checked texts."""
        pool_tuning: dict[str, Any] | None = None
        tune = self._tunes(0 if unlabeled is None else len(set(unlabeled)), from_prompt=from_prompt)
        if unlabeled is not None:
            if tune and self._tunes_on_the_prompt_first(from_prompt):  # as prompt_train without a pool would,
                self._finetune(ANCHORS)  # on what labels the pool (not an earlier pool's labels, replaced next)
            self._pseudo_label(unlabeled, self._first_labeller() if tune else self._emb)
            pool_tuning = self._pool_tuning(tune)
            tune = pool_tuning["tuned"]
        if tune:
            for _ in range(OUTER_ROUNDS if unlabeled is not None else 1):
                self._finetune()  # replaces the tuned encoder only once done: an interruption changes nothing
                if unlabeled is not None:  # relabel the pool with the tuned encoder
                    self._pseudo_label(unlabeled, self._emb, check=False)
        if self.distill and (tune or not self._distilled()):
            self._distil(unlabeled or [])
        texts, y, sources = self._training_set()
        self._check_trainable(y)
        fit = self._fit_multi_label if self.multi_label else self._fit_single_label
        n_examples, dropped, cv_accuracy, counts, head_oof = fit(texts, y, sources)
        self.classes_ = self.head_.classes_
        self.n_features_in_ = self.head_.n_features_in_
        self.embedder_spec_ = self._emb.space()
        self.fast_ = self._fit_fast(texts, y, sources, unlabeled, head_oof) if self.fast else None
        self.training_summary_ = {
            "trained_at": modelfile.utc_now(),
            "n_examples": n_examples,
            "per_class": {
                str(c): {
                    s: counts[(str(c), s)]
                    for s in ("prompt", "user", "generated", "pseudo", "llm")
                    if counts[(str(c), s)]
                }
                for c in self.classes_
            },
            "dropped_by_confident_learning": dropped,
            "C": self.head_.C_,
            "prior_weight": self.prior_weight if self._prior_used else 0.0,
            "cv_accuracy": cv_accuracy,
            "multi_label": bool(self.multi_label),
            "pool_tuning": pool_tuning,
            "long_texts": {
                "mode": self.long_texts,
                "n": self._emb.count_long(texts + (unlabeled or [])),
                "window_tokens": getattr(self._emb.window(), "max_tokens", None),
            },
        }
        return self

    def _vectors(self, texts: list[str], emb: Embedder | None = None, *, progress: bool | None = None) -> np.ndarray:
        """Embed through the shared cache with this model's long-text setting (every training path).

        Training always uses the exact vectors (``Embedder.trainer``), also when prediction is served
        by a faster approximation of them (int8).
        """
        return (
            (emb or self._emb)
            .trainer()
            .embed(
                texts,
                cache=self._cache,
                progress=self.progress if progress is None else progress,
                long_texts=self.long_texts,
            )
        )

    def _llm_weights(self, sources: np.ndarray) -> np.ndarray | None:
        """Per-row weights by provenance, or ``None`` when all are 1.

        LLM answers given where this model was unsure count ``LLM_WEIGHT`` times (bench/chain.py);
        your own examples ``USER_WEIGHT`` times (bench/learning.py): a few real labels among
        hundreds of generated and thousands of pseudo-labelled rows otherwise barely move the head.
        """
        w = np.where(sources == "llm", LLM_WEIGHT, np.where(sources == "user", USER_WEIGHT, 1.0))
        return None if (w == 1.0).all() else w

    def _fit_single_label(
        self, texts: list[str], y: np.ndarray, sources: np.ndarray
    ) -> tuple[int, int, Any, Counter, np.ndarray | None]:
        """Fit the head; returns the rows kept, the rows dropped, the out-of-fold accuracy, the counts per
        (class, source) and, when they cover every row, the head's out-of-fold probabilities."""
        X = self._vectors(texts)
        C = self._choose_C(X, y, sources == "user")
        prior = self._prior(np.unique(y))
        w = self._llm_weights(sources)
        oof = out_of_fold_proba(X, y, C, w, prior=prior, random_state=self.random_state)
        keep = np.ones(len(y), dtype=bool)
        if oof is not None and self.filter_generated:
            classes = np.unique(y)
            y_idx = np.searchsorted(classes, y)
            # LLM answers are exempt: they were asked for exactly where this model is unsure, so they
            # disagree with it by design, and learning from that disagreement is their purpose
            keep = ~(label_issues(y_idx, oof) & np.isin(sources, ["generated", "pseudo"]))
            if (~keep).any():
                log.info("confident learning dropped %d generated examples that contradict the rest", (~keep).sum())
                if len(set(y[keep].tolist())) == len(set(y.tolist())):
                    wk = None if w is None else w[keep]
                    oof = out_of_fold_proba(X[keep], y[keep], C, wk, prior=prior, random_state=self.random_state)
                else:
                    keep[:] = True
        wk = None if w is None else w[keep]
        self.head_ = with_prior(fit_head(X[keep], y[keep], wk, C=C, random_state=self.random_state), prior)
        self.classes_ = self.head_.classes_
        self._prior_used = prior is not None
        y_idx = np.searchsorted(self.classes_, y[keep])
        real = self._calibration_rows(np.asarray(texts)[keep], sources[keep])
        Xk, yk = X[keep], y[keep]
        cal = self._without_pseudo(
            oof,
            sources[keep],
            real,
            real.any() and np.unique(yk[real], return_counts=True)[1].max() >= MIN_REAL_PER_CLASS,
            lambda rows: out_of_fold_proba(
                Xk[rows], yk[rows], C, None if wk is None else wk[rows], prior=prior, random_state=self.random_state
            ),
        )
        self._set_calibration(oof, y_idx if oof is not None else None, real=real, real_proba=cal)
        cv = None if oof is None else float((oof.argmax(1) == y_idx).mean())
        counts = Counter(zip(y[keep].tolist(), sources[keep].tolist()))
        return int(keep.sum()), int((~keep).sum()), cv, counts, oof if keep.all() else None

    def _calibration_rows(self, texts: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Rows a person labelled that are a fair sample: your examples, but not reviewed texts that
        ``suggest`` picked for their uncertainty (hard cases make thresholds promise what real text
        does not keep; bench/learning.py)."""
        chosen = [e.text for e in self._store.examples(("user",)) if e.meta.get("pick") == "uncertain"]
        return (sources == "user") & ~np.isin(texts, chosen)

    @staticmethod
    def _without_pseudo(
        oof: np.ndarray | None, sources: np.ndarray, real: np.ndarray, enough: bool, refit: Any
    ) -> np.ndarray | None:
        """Out-of-fold probabilities for calibrating on your examples, without pseudo-labels in the folds.

        Pseudo-labels were made by a model that learnt from your examples, so each one's neighbours
        carry its label into every fold: its out-of-fold probability comes out right and confident.
        On sst2 with 16/32 reviewed labels per class, thresholds chosen with pseudo-labels in the folds
        delivered 0.83/0.80 where the model estimated 1.00/0.93; without them 0.82/0.88 (bench/
        learning.py). The folds then model a weaker classifier than the one deployed, so the estimate
        errs low: a promise kept rather than one broken. ``refit(rows)``: out-of-fold probabilities of
        ``rows`` alone; ``enough``: whether any class will be calibrated on real rows at all.
        """
        pseudo = sources == "pseudo"
        if not CALIBRATE_WITHOUT_PSEUDO or oof is None or not pseudo.any() or not real.any() or not enough:
            return oof
        held = refit(~pseudo)
        if held is None:
            return oof
        out = oof.copy()
        out[~pseudo] = held
        return out

    def _fit_multi_label(
        self, texts: list[str], y: np.ndarray, sources: np.ndarray
    ) -> tuple[int, int, Any, Counter, None]:
        from .multilabel import choose_ovr_C, clean, exclusive_classes, fit_ovr, label_sets, out_of_fold_ovr, subset

        classes = np.unique(y)
        D = self._description_vectors()
        ls = label_sets(texts, y, sources, classes, exclusive_classes(classes, D))
        X = self._vectors(ls.texts)
        user = ls.sources == "user"
        enough = user.any() and ls.Y[user].sum(axis=0).min() >= MIN_TRUSTED_PER_CLASS
        C = float(self.C) if isinstance(self.C, (int, float)) else choose_ovr_C(X, ls, self.C == "cv" or enough)
        prior = self._ovr_prior(classes, D)
        w = self._llm_weights(ls.sources)
        oof = out_of_fold_ovr(X, ls, C, w, prior=prior, random_state=self.random_state)
        keep = np.ones(len(ls.texts), dtype=bool)
        if oof is not None and self.filter_generated:
            keep = clean(ls, oof)  # also turns contradicted negatives of generated examples into unknowns
            if (~keep).any():
                log.info("confident learning dropped %d generated examples that contradict the rest", (~keep).sum())
            ls, X = subset(ls, keep), X[keep]
            w = None if w is None else w[keep]
            oof = out_of_fold_ovr(X, ls, C, w, prior=prior, random_state=self.random_state)
        self.head_ = fit_ovr(X, ls, w, C=C, prior=prior, random_state=self.random_state)
        self.classes_ = self.head_.classes_
        self._prior_used = prior is not None
        real, rs = self._calibration_rows(np.asarray(ls.texts), ls.sources), self.random_state
        cal = self._without_pseudo(
            oof,
            ls.sources,
            real,
            real.any() and ls.Y[real].sum(axis=0).min() >= MIN_REAL_PER_CLASS,  # all or nothing here
            lambda rows: out_of_fold_ovr(
                X[rows], subset(ls, rows), C, None if w is None else w[rows], prior=prior, random_state=rs
            ),
        )
        self._set_calibration(
            oof,
            np.where(ls.M, ls.Y.astype(np.int8), -1).astype(np.int8) if oof is not None else None,
            real=real,
            real_proba=cal,
        )
        kept_texts = set(ls.texts)
        counts = Counter((str(c), str(src)) for t, c, src in zip(texts, y, sources) if t in kept_texts)
        return len(ls.texts), int((~keep).sum()), None, counts, None

    def _description_vectors(self, emb: Embedder | None = None) -> dict[str, np.ndarray] | None:
        prompts = getattr(self, "prompts_", {})
        if not prompts:
            return None
        names = list(prompts)
        return dict(zip(names, self._vectors([prompts[c] for c in names], emb, progress=False)))

    def _ovr_prior(self, classes: np.ndarray, D: dict[str, np.ndarray] | None) -> np.ndarray | None:
        from .multilabel import ovr_prior

        return ovr_prior(classes, D, self.prior_weight) if D is not None and self.prior_weight > 0 else None

    def _choose_C(self, X: np.ndarray, y: np.ndarray, trusted: np.ndarray) -> float:
        if self.C is None:
            return choose_C(X, y, trusted, self.random_state)
        if self.C == "cv":
            return choose_C(X, y, None, self.random_state)
        return float(self.C)

    def _prior(self, classes: np.ndarray, emb: Embedder | None = None) -> np.ndarray | None:
        if self.prior_weight <= 0:
            return None
        D = self._description_vectors(emb)
        return None if D is None else prior_coef(classes, D, self.prior_weight)

    def _tunes(self, pool: int, *, from_prompt: bool = False) -> bool:
        """Whether this training fine-tunes the encoder (``finetune`` True, or "auto" and it helps).

        ``pool``: how many distinct unlabeled texts it was given; ``from_prompt``: by ``prompt_train``.
        """
        if self.finetune != "auto":
            return bool(self.finetune)
        # "auto": where the benchmark measures a gain, and only where it can run; elsewhere the model
        # keeps the encoder it has (the base, or one tuned before), so the add-and-retrain loop stays
        # seconds. Gains: a pool of real texts (bench/finetune.py, the smallest measured 660) and a
        # prompt_train with a few dozen examples per class (bench/generators.py, five sets of five)
        big_pool = pool >= AUTO_FINETUNE_MIN_POOL  # checked first: counting examples reads the store
        if not big_pool and not (from_prompt and self._fewest_examples() >= AUTO_FINETUNE_MIN_PER_CLASS):
            return False
        if self._embedder.space().get("kind") != "sentence-transformers":
            return False
        missing = [m for m in ("torch", "datasets") if importlib.util.find_spec(m) is None]
        if missing:
            log.info("finetune='auto': not fine-tuning the encoder (%s not installed)", ", ".join(missing))
        return not missing

    def _first_labeller(self) -> Embedder:
        """What labels the pool before the encoder is tuned on it.

        Where this model's encoder was tuned on no pool text (from the prompt, or on your labels): the
        base encoder's vectors and the tuned one's side by side. The tuned encoder has learned the
        classes from the examples, where MiniLM blurs the cue (trec6's question types) it labels the
        pool far better than the base, and with the base beside it the labels lose nothing where the
        base's geometry is the better one (sst2; BENCHMARKS.md, "The pool's first labels"). Otherwise
        the base: an encoder tuned on a pool has learned that pool's pseudo-labels, errors included,
        and tuning again on the labels it gives lost 2.4 points on ag_news (``OUTER_ROUNDS``).
        """
        if FIRST_LABELS == "base" or not self._tuned_on_no_pool():
            return self._embedder
        return self._emb if FIRST_LABELS == "tuned" else Joined(self._embedder, self._emb)

    def _tuned_on_no_pool(self) -> bool:
        """Whether the encoder in use was tuned (from the prompt, or your labels) on no pool text: what
        labels a pool first beside the base (``_first_labeller``) and what the pool's tuning may keep
        (``_pool_tuning``). A file saved before the tuning report counted pool texts: tuned on a pool."""
        return self._encoder_report().get("pool_texts") == 0

    def _pool_tuning(self, tune: bool) -> dict[str, Any]:
        """Whether to tune the encoder on the pool just labelled, and why (``training_summary_``).

        With ``finetune="auto"`` and an encoder tuned on the prompt (on no pool text), only where the
        pool's first labels agree with what the examples alone say on less than
        ``POOL_TUNING_MAX_AGREEMENT`` of it (``agreement_with_anchors`` in self-training's report).
        Where they agree more (the topic sets: ag_news 0.968, newsgroups_long 0.954), the pool confirms
        what the encoder learnt from the examples: tuning on it taught little, cost the test texts 0.8
        and 1.2 points, and made ``train`` 2-3 times as long. Where the pool relabels more of what the examples
        said (trec6 0.894, sst2 0.925, emotion6 0.865) tuning on it was worth +7.5, +1.7 and +1.9
        (BENCHMARKS.md, "Tuning on the pool, or not"). Nor where self-training's guard found the pool's
        labels harmful and kept none (``chosen_by="guard"``): the model is then the prompt's.
        """
        report = self.self_training_report_  # of the labelling just done
        agreement = report.get("agreement_with_anchors")
        out = {
            "tuned": tune,
            "chosen_by": "settings",  # finetune True or False, "auto" without an encoder tuned on the prompt
            "agreement_with_anchors": agreement,
            "max_agreement": POOL_TUNING_MAX_AGREEMENT,
        }
        if not (tune and self.finetune == "auto" and self._tuned_on_no_pool()):
            return out
        if report["guard"]["fallback"]:
            # self-training kept no pseudo-labels: tuning now would learn the same anchors the encoder was
            # just tuned on (minutes for the same model); the agreement is of the model the guard rejected
            out.update(tuned=False, chosen_by="guard")
        elif agreement is not None:
            out.update(tuned=agreement < POOL_TUNING_MAX_AGREEMENT, chosen_by="agreement")
        return out

    def _tunes_on_the_prompt_first(self, from_prompt: bool) -> bool:
        """Whether a ``prompt_train`` given a pool first tunes the encoder without it, as one given none
        would, so that its first labels of the pool have the prompt-tuned encoder beside the base
        (``_first_labeller``): one call then does what ``prompt_train`` and ``train(unlabeled=...)``
        do, for one more tuning."""
        return from_prompt and FIRST_LABELS != "base" and self._tunes(0, from_prompt=True)

    def _fewest_examples(self) -> int:
        """Examples of the class with the fewest (descriptions and pseudo-labels not counted)."""
        _, y, sources = self._training_set()
        own = y[(sources != "prompt") & (sources != "pseudo")]
        classes = set(getattr(self, "prompts_", {})) | set(y.tolist())
        return min((int((own == c).sum()) for c in classes), default=0)

    def _finetune(self, include: tuple[str, ...] | None = None) -> None:
        """Fine-tune a copy of the base encoder on the training set (``include``: its kinds of stored
        example, as ``_training_set``); an interruption changes nothing."""
        from .embedders.local import resolve_model_path
        from .finetune import finetune

        base = self._local_base("finetune")
        texts, y, sources = self._training_set(include)
        self._check_trainable(y)
        model, report = finetune(
            resolve_model_path(base["model"]),
            texts,
            y.tolist(),
            sources.tolist(),
            budget_s=float(self.finetune_budget_s),
            seed=self.random_state,
            progress=self.progress,
        )
        # how many pool texts it learned from (the store's pseudo-labels, the LLM's too): _first_labeller reads it
        pool_texts = len(self._store.examples(("pseudo",))) if include is None or "pseudo" in include else 0
        self._adopt_encoder(model, base, {**report.as_dict(), "pool_texts": pool_texts})

    def _adopt_encoder(self, model: Any, base: dict[str, Any], report: dict[str, Any]) -> None:
        """Make an in-memory sentence-transformers model this classifier's encoder (named by its weights)."""
        from .embedders.onnx_backend import round_to_half
        from .finetune import finetuned_embedder

        round_to_half(model)  # its weights travel in the .clf as float16: the head sees those vectors
        digest = hashlib.sha256()
        for t in model.state_dict().values():
            digest.update(t.detach().cpu().numpy().tobytes())
        name = f"{base['model']}-{digest.hexdigest()[:16]}"
        self._tuned = finetuned_embedder(model, name)
        self.encoder_ = {"base": dict(base), "name": name, "report": report}

    def _encoder_report(self) -> dict[str, Any]:
        """The report of the encoder in use (fine-tuning, distillation); empty for the base one
        (a new ``embedder`` drops a tuned encoder, ``encoder_`` may outlive it)."""
        if "_tuned" not in self.__dict__:
            return {}
        return dict((getattr(self, "encoder_", None) or {}).get("report") or {})

    def _distilled(self) -> bool:
        """Whether the encoder is a distilled copy (``distill``) already."""
        return "student" in self._encoder_report()

    def _distil(self, unlabeled: list[str]) -> None:
        """Replace the encoder with a copy of half its layers distilled on this model's texts
        (``promptclf.distill``); an interruption changes nothing (the student replaces it when done)."""
        from .distill import BUDGET_S, MIN_TEXTS, distill
        from .embedders.local import resolve_model_path

        base = self._local_base("distill")
        texts = list(dict.fromkeys(self.training_data()[0] + list(unlabeled)))
        if len(texts) < MIN_TEXTS:
            log.warning(
                "distill=True: %d distinct texts, at least %d are needed (your examples and unlabeled texts); "
                "keeping the full encoder",
                len(texts),
                MIN_TEXTS,
            )
            return
        teacher = getattr(self.__dict__.get("_tuned"), "torch_model", None)  # a loaded tuned encoder has none:
        if teacher is None:  # its student starts from the base's layers and learns the tuned vectors
            teacher = resolve_model_path(base["model"])
        student, report = distill(
            teacher,
            texts,
            self._vectors(texts),
            budget_s=min(float(self.finetune_budget_s), BUDGET_S),
            seed=self.random_state,
            progress=self.progress,
        )
        self._adopt_encoder(student, base, {**self._encoder_report(), "student": report.as_dict()})

    def _local_base(self, setting: str) -> dict[str, Any]:
        """The base embedder's spec; a ``ConfigurationError`` unless it is a local sentence-transformers model."""
        base = self._embedder.space()
        if base.get("kind") != "sentence-transformers":
            raise ConfigurationError(
                f"{setting}=True needs a local sentence-transformers embedder (the packaged MiniLM), "
                f"not {self._embedder.id}",
                setting=setting,
            )
        return base

    def _fit_fast(
        self,
        texts: list[str],
        y: np.ndarray,
        sources: np.ndarray,
        unlabeled: list[str] | None,
        head_oof: np.ndarray | None = None,
    ) -> FastPath | None:
        """The static fast path, on the rows the head was trained on and this run's unlabeled texts (with
        the head's answers), its threshold set on the real ones (``promptclf.cascade``); ``None`` where
        "auto" leaves it out.
        ``head_oof``: the head's out-of-fold probabilities on every row, if fitting it made them."""
        from .cascade import AUTO_MAX_LOSS, MAX_LOSS, MIN_REAL_TEXTS, VOTE_MAX_LOSS, fit_fast_path, real_rows
        from .embedders.onnx_backend import fast_equivalent

        auto = self.fast == "auto"
        # the packaged transformer, where ONNX Runtime runs: what the static model is distilled from
        packaged = fast_equivalent(self._embedder.space())
        if packaged is None:
            if auto:
                return None
            raise ConfigurationError(
                f"fast=True distils static embeddings from the packaged MiniLM; not available with {self._embedder.id}",
                setting="fast",
            )
        real = real_rows(sources, with_pool=unlabeled is not None)  # this run's pseudo-labels, or none
        rows = set(texts)
        pool = list(dict.fromkeys(t for t in unlabeled or () if t not in rows))
        if auto and (self.multi_label or int(real.sum()) + len(pool) < MIN_REAL_TEXTS):
            if unlabeled is None and self.__dict__.get("fast_") is not None:
                # the model had one: say why it is gone, and how to keep it (a slower model, unexplained)
                log.warning(
                    "the static fast path is left out: %d real texts to bound it on, %d needed (pseudo-labels "
                    "count only beside the unlabeled texts they came from); train(unlabeled=...) with those "
                    "texts again keeps it",
                    int(real.sum()),
                    MIN_REAL_TEXTS,
                )
            return None  # nothing to bound it on: no fast path, and no static model made for it
        static = get_embedder({"kind": "model2vec", "model": packaged["model"]})
        proba = lambda ts: self.head_.predict_proba(self._vectors(ts, progress=False))  # noqa: E731
        # the static head's vote on the rest is weighed on your own labels, out of fold: the main
        # head's out-of-fold probabilities on the same folds, only where there are enough of them
        labelled = self._calibration_rows(np.asarray(texts), sources)
        weights, main_oof = self._llm_weights(sources), head_oof
        if labelled.sum() >= MIN_REAL_TEXTS and main_oof is None:  # rows were dropped from the head's folds
            main_oof = out_of_fold_proba(
                self._vectors(texts, progress=False),
                y,
                self.head_.C_,
                weights,
                prior=self._prior(np.unique(y)),
                random_state=self.random_state,
            )
        fast = fit_fast_path(
            static,
            texts,
            y,
            weights,
            proba(texts),
            real=real,
            pool=pool,
            pool_proba=proba(pool) if pool else None,
            C=self.head_.C_,
            cache=self._cache,
            random_state=self.random_state,
            max_loss=AUTO_MAX_LOSS if auto else MAX_LOSS,
            vote_max_loss=None if auto else VOTE_MAX_LOSS,
            main_oof=main_oof,
            labelled=labelled,
        )
        self.__dict__["_static"] = static
        if fast.estimate["real_texts"] < MIN_REAL_TEXTS:
            log.warning(
                "fast=True: %d real texts (your examples, unlabeled texts) to set the fast path's threshold on, "
                "%d needed; it answers nothing until a train() with more (generated examples, and pseudo-labels "
                "without the unlabeled texts they came from, are no guide: the static head agrees with the "
                "model far more often on them than on real text)",
                fast.estimate["real_texts"],
                MIN_REAL_TEXTS,
            )
        else:
            log.info("fast path: the static head answers %.0f%% of the real texts", 100 * fast.estimate["share"])
        return fast

    @cached_property
    def _static(self) -> Embedder:
        return get_embedder(self.fast_.embedder)

    def _check_trainable(self, y: np.ndarray) -> None:
        counts = Counter(y.tolist())
        empty = [c for c in self._store.classes if counts.get(c, 0) == 0]
        if empty:
            raise InvalidInputError(f"class(es) {empty} have no examples and no description")
        if len(counts) < 2:
            raise InvalidInputError(f"need at least two classes with examples, got {sorted(counts)}")

    def _pseudo_label(self, unlabeled: list[str], emb: Embedder, check: bool = True) -> None:
        """Pseudo-label ``unlabeled`` (already checked by ``train``) with ``emb``'s vectors.

        ``check``: judge whether to learn from the generated examples (``promptclf.crosscheck``);
        otherwise follow the verdict of the last run.
        """
        from . import selftrain
        from .escalation.links import LLMLink
        from .selftrain import PoolLabeler, SelfTrainResult, TextView, self_train
        from .store import Example

        texts, y, src = self._training_set(ANCHORS)
        self._check_trainable(y)
        known = set(texts)
        pool = [t for t in dict.fromkeys(unlabeled) if t.strip() and t not in known]
        if not pool:
            raise InvalidInputError(
                "unlabeled: no texts left after removing empty ones and known examples", argument="unlabeled"
            )
        X = self._vectors(texts, emb)
        XU = self._vectors(pool, emb)
        if self.multi_label:
            self._pseudo_label_sets(texts, y, src, X, pool, XU, emb)
            return
        classes = np.unique(y)
        labeler, asked_with = None, None
        budget, ask_first = self._llm_labelling()
        if budget > 0:
            descriptions = getattr(self, "prompts_", {})
            link = LLMLink(self._llm, descriptions, seed=self.random_state or 0)
            # the LLM's earlier answers stand while the question does: the same classes, descriptions and LLM
            asked_with = question_sha(classes.tolist(), descriptions, self._llm_spec())
            earlier = {
                e.text: e.class_name
                for e in self._store.examples(("pseudo",))
                if provenance(e) == "llm" and e.meta.get("asked_with") == asked_with
            }
            # ... and so may the check of whether to ask it at all (the fine-tuning's second labelling, a retrain)
            last = ((getattr(self, "self_training_report_", None) or {}).get("llm") or {}).get("check")
            labeler = PoolLabeler(link, classes, pool, budget, earlier, check=ask_first, question=asked_with, last=last)
        prior = self._prior(classes, emb)

        def run(rows: np.ndarray, llm_labeler: PoolLabeler | None) -> SelfTrainResult:
            Xr, yr, sr = X[rows], y[rows], src[rows]
            return self_train(
                Xr,
                yr,
                XU,
                C=self._choose_C(Xr, yr, sr == "user"),
                prior=prior,
                random_state=self.random_state,
                llm_labeler=llm_labeler,
                view=TextView([texts[i] for i in np.flatnonzero(rows)], yr, pool, self.random_state)
                if selftrain.SECOND_VIEW
                else None,
                sample_weight=np.where(sr == "user", USER_WEIGHT, 1.0) if USER_WEIGHT != 1.0 else None,
            )

        if not check:  # a later round of the same train() follows the first round's verdict
            verdict = self.self_training_report_.get("generated_examples")
            res = run(src != "generated" if self._generated_set_aside() else np.ones(len(y), dtype=bool), labeler)
            res.report["generated_examples"] = verdict
        else:
            res = self._run_checked(pool, y, src, run, labeler, self.random_state or 0)
        self._store.remove(lambda e: e.source == "pseudo")
        self._store.extend(
            Example(pool[i], str(c), "pseudo", pseudo_meta(p, str(who), asked_with))
            for i, c, p, who in zip(res.index, res.labels, res.confidence, res.labeler)
        )
        self.self_training_report_ = res.report

    @staticmethod
    def _run_checked(pool: list[str], y: np.ndarray, src: np.ndarray, run: Any, labeler: Any, seed: int) -> Any:
        """Self-train with the generated examples and, to judge them, without (``promptclf.crosscheck``).

        Returns the result of the run the check trusts, its verdict in the report's
        ``generated_examples`` (a string where no check ran, saying why). The LLM, if it labels
        hard pool texts, is asked once, in the run that is kept.
        """
        from . import crosscheck

        generated = src == "generated"
        every = np.ones(len(y), dtype=bool)
        why = None
        if not crosscheck.ENABLED:
            why = "used (the check is off)"
        elif not generated.any():
            why = "none"
        elif set(y[~generated].tolist()) != set(y.tolist()):
            why = "used, unchecked: a class has only generated examples (no description)"
        if why is not None:
            res = run(every, labeler)
            res.report["generated_examples"] = why
            return res
        with_gen, without = run(every, None), run(~generated, None)
        check = crosscheck.compare(pool, with_gen.pool_labels, without.pool_labels, np.unique(y), seed)
        if not check["keep_generated"]:
            log.warning(
                "the generated examples pull the model away from your texts (a TF-IDF view learns its labels "
                "of them %.3f, %.3f without the generated examples): training without them",
                check["learnability_with_generated"],
                check["learnability_without_generated"],
            )
        kept = with_gen if check["keep_generated"] else without
        if labeler is not None:
            kept = run(every if check["keep_generated"] else ~generated, labeler)
        kept.report["generated_examples"] = check
        return kept

    def _pseudo_label_sets(
        self,
        texts: list[str],
        y: np.ndarray,
        src: np.ndarray,
        X: np.ndarray,
        pool: list[str],
        XU: np.ndarray,
        emb: Embedder,
    ) -> None:
        """Multi-label self-training: each chosen pool text is stored once per class of its label set."""
        from .multilabel import exclusive_classes, label_sets, self_train_ovr
        from .store import Example

        classes = np.unique(y)
        D = self._description_vectors(emb)
        ls = label_sets(texts, y, src, classes, exclusive_classes(classes, D))
        index = {t: i for i, t in enumerate(texts)}
        Xs = X[[index[t] for t in ls.texts]]
        res = self_train_ovr(
            Xs, ls, XU, C=float(self.C) if isinstance(self.C, (int, float)) else DEFAULT_C,
            prior=self._ovr_prior(classes, D), random_state=self.random_state,
            target_precision=float(self.target_precision), min_labels=self.min_labels,
        )  # fmt: skip
        self._store.remove(lambda e: e.source == "pseudo")
        self._store.extend(
            Example(pool[i], c, "pseudo", pseudo_meta(p, "model", None))
            for i, cs, p in zip(res.index, res.label_sets, res.confidence)
            for c in cs
        )
        self.self_training_report_ = res.report

    def _set_calibration(
        self,
        proba: np.ndarray | None,
        y_idx: np.ndarray | None,
        *,
        target: float | None = None,
        source: str = "out-of-fold",
        real: np.ndarray | None = None,
        real_proba: np.ndarray | None = None,
    ) -> None:
        """Thresholds at the target precision, and where they come from.

        ``real`` marks rows labelled by a person (your examples, reviewed texts). With at least
        ``MIN_REAL_PER_CLASS`` of them in every class, thresholds are chosen on those rows alone: a
        precision measured on synthetic and pseudo-labelled rows is not one real text will see
        (BENCHMARKS.md, "Correction loop"). Only then, or after ``calibrate``, are they *calibrated*,
        with a cross-validated estimate of the precision and coverage they deliver. ``real_proba``:
        the probabilities to calibrate those rows with (``_without_pseudo``), if not ``proba``.
        """
        own = proba if real_proba is None else real_proba
        target = float(self.target_precision if target is None else target)
        real_counts: dict[str, int] = {}
        labels = "real" if source == "labelled" else "synthetic"
        some = np.zeros(len(self.classes_), dtype=bool)  # classes with enough real rows of their own
        if proba is not None and y_idx is not None:
            rows = np.ones(len(proba), dtype=bool) if real is None or source == "labelled" else real
            per_class = (y_idx[rows] == 1).sum(axis=0) if self.multi_label else np.bincount(
                y_idx[rows], minlength=len(self.classes_)
            )  # fmt: skip
            real_counts = {str(c): int(v) for c, v in zip(self.classes_, per_class)} if rows.any() else {}
            if real is not None and source != "labelled" and real.any():
                if per_class.min() >= MIN_REAL_PER_CLASS:
                    proba, y_idx, labels = own[real], y_idx[real], "real"
                elif not self.multi_label:
                    some = per_class >= MIN_REAL_PER_CLASS
        self._oof_proba_, self._oof_labels_ = proba, y_idx
        estimate = None
        if self.multi_label:  # y_idx is then (n, k): 1 positive, 0 negative, -1 unknown
            from .multilabel import cross_validated_estimate_ovr, ovr_thresholds

            L = y_idx if y_idx is not None else np.zeros((0, len(self.classes_)), dtype=np.int8)
            self.thresholds_, reached = ovr_thresholds(L == 1, L >= 0, proba, self.classes_, target)
            if labels == "real":
                estimate = cross_validated_estimate_ovr(proba, L, self.classes_, target, random_state=self.random_state)
        elif proba is None:
            log.warning("too few examples per class for cross-validation: thresholds set to 0 (never abstain)")
            self.thresholds_ = np.zeros(len(self.classes_))
            reached: dict[str, float] = {}
        else:
            curves = pr_curves(y_idx, proba, self.classes_)
            self.thresholds_, reached = thresholds_for_precision(curves, self.classes_, target, quiet=some.any())
            if labels == "real":
                estimate = cross_validated_estimate(proba, y_idx, self.classes_, target, random_state=self.random_state)
            elif some.any():
                # a rare class may never get 5 real labels (trec6's abbreviations: 1.6% of texts); the
                # classes that have them are calibrated on them, the rest keep the synthetic thresholds
                pr, yr = own[real], y_idx[real]
                th_real, got = thresholds_for_precision(pr_curves(yr, pr, self.classes_), self.classes_, target)
                self.thresholds_ = np.where(some, th_real, self.thresholds_)
                reached.update({str(c): got[str(c)] for c in self.classes_[some] if str(c) in got})
                fixed = {j: float(self.thresholds_[j]) for j in np.flatnonzero(~some)}
                estimate = cross_validated_estimate(
                    pr, yr, self.classes_, target, random_state=self.random_state, fixed=fixed
                )
        if labels == "real":
            some[:] = True
        elif not some.any():
            real_counts = {}
        n = None if proba is None else len(proba)
        self.calibration_ = {
            "source": source,
            "target_precision": target,
            "n": n,
            "precision": reached,
            "labels": labels,
            "calibrated": labels == "real",
            "calibrated_classes": [str(c) for c in self.classes_[some]],
            "real_labels": real_counts,
            "estimate": estimate,
        }
        self.__dict__.pop("_warned_uncalibrated", None)

    @property
    def precision_at_threshold_(self) -> dict[str, float]:
        """Per class, the precision its threshold reached on the calibration data."""
        self._check_fitted()
        return dict(self.calibration_.get("precision", {}))

    def calibrate(
        self, texts: Iterable[str], labels: Iterable[str], *, target_precision: float | None = None
    ) -> PromptClassifier:
        """Recompute abstention thresholds from real labelled data (better than the synthetic default).

        ``target_precision`` applies to this calibration only (kept in ``calibration_``); the
        constructor setting is not changed. Returns ``self``.
        """
        self._check_fitted()
        target = check_probability(target_precision, "target_precision")
        if target is not None and target == 0:
            raise InvalidInputError("target_precision must be over 0", argument="target_precision")
        texts = check_texts(texts)
        if not texts:
            raise InvalidInputError("calibrate needs labelled texts, got none", argument="texts")
        y = self._label_array(labels, len(texts))
        # the probabilities predict serves (the fast path's where it answers or votes), not the main head's
        proba = self.predict_proba(texts)
        self._set_calibration(proba, y, target=target, source="labelled")
        return self

    def _label_array(self, labels: Iterable[Any], n: int) -> np.ndarray:
        """Checked labels as ``_set_calibration`` takes them: class indices, or for a multi-label model
        an ``(n, k)`` 0/1 matrix (each label an iterable of class names, or one name)."""
        if self.multi_label:
            sets = [[lab] if isinstance(lab, str) else list(lab) for lab in labels]
            flat = check_texts([c for row in sets for c in row], "labels")
            count = len(sets)
        else:
            flat = check_texts(labels, "labels")
            count = len(flat)
        if count != n:
            raise InvalidInputError(f"{n} texts but {count} labels", argument="labels")
        unknown = sorted(set(flat) - set(self.classes_))
        if unknown:
            raise InvalidInputError(
                f"labels {unknown} are not classes of this model ({list(self.classes_)})", argument="labels"
            )
        missing = sorted(set(map(str, self.classes_)) - set(flat))
        if missing:
            log.warning("no labelled texts of class(es) %s; their thresholds are set by default", missing)
        if not self.multi_label:
            return np.searchsorted(self.classes_, np.asarray(flat, dtype=str))
        Y = np.zeros((n, len(self.classes_)), dtype=np.int8)
        for i, row in enumerate(sets):
            Y[i, np.searchsorted(self.classes_, np.asarray(row, dtype=str))] = 1
        return Y

    # ------------------------------------------------------------------ prediction
    def _embed(self, texts: list[str]) -> np.ndarray:
        X = self._emb.embed(texts, progress=self.progress, long_texts=self.long_texts)
        if len(texts) and X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"embedder {self._emb.id} gives {X.shape[1]}-dimensional vectors but this model was trained "
                f"on {self.n_features_in_}: use the embedder it was trained with",
                setting="embedder",
            )
        return X

    def predict_proba(self, texts: TextInput) -> np.ndarray:
        """Probabilities, one row per text, columns in the order of ``classes_``."""
        head = self._check_fitted()
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        fast = getattr(self, "fast_", None)
        if fast is not None and self.fast:
            from .cascade import cascade_proba

            main = lambda ts: head.predict_proba(self._embed(ts))  # noqa: E731
            return cascade_proba(fast, self._static, texts, main, long_texts=self.long_texts)[0]
        return head.predict_proba(self._embed(texts))

    def predict(self, texts: TextInput, *, abstain: bool = False) -> Any:
        """Class per text (a string for a string). With ``abstain``, ``None`` under the class's threshold.

        A multi-label model answers a list per text: every class over its threshold, most probable
        first, possibly none (``abstain`` changes nothing: its thresholds always apply).
        """
        labels = self.predict_from_proba(self.predict_proba(texts), abstain=abstain)
        return labels[0] if isinstance(texts, str) else labels

    def predict_from_proba(self, proba: np.ndarray, *, abstain: bool = False) -> list[str | None]:
        """Labels for rows of ``predict_proba`` output (lets callers get both from one forward pass)."""
        if self.multi_label:
            over = self._over_threshold(proba)
            return [
                [str(self.classes_[j]) for j in np.argsort(-row, kind="stable") if hit[j]]
                for row, hit in zip(proba, over)
            ]
        top = proba.argmax(axis=1)
        labels: list[str | None] = [str(self.classes_[j]) for j in top]
        if abstain:
            self._warn_if_uncalibrated()
            sure = proba[np.arange(len(top)), top] >= self.thresholds_[top]
            labels = [lab if ok else None for lab, ok in zip(labels, sure)]
        return labels

    def _warn_if_uncalibrated(self) -> None:
        """Once per model: abstention thresholds set without real labels promise a precision nobody measured."""
        if self.calibration_.get("calibrated") or self.__dict__.get("_warned_uncalibrated"):
            return
        self._warned_uncalibrated = True
        done = set(self.calibration_.get("calibrated_classes") or [])
        which = "" if not done else f" of class(es) {sorted(set(map(str, self.classes_)) - done)}"
        warnings.warn(
            UncalibratedThresholdsWarning(
                f"abstention thresholds{which} are uncalibrated: set on synthetic and pseudo-labelled data, so the "
                f"target precision {self.calibration_.get('target_precision', 0.9):g} is not measured on real "
                f"text; add at least {MIN_REAL_PER_CLASS} of your own examples per class and train(), or call "
                "calibrate(texts, labels)"
            ),
            stacklevel=3,
        )

    def _over_threshold(self, proba: np.ndarray) -> np.ndarray:
        """Multi-label: which classes each row predicts (its thresholds; the top class too with ``min_labels``)."""
        from .multilabel import predicted_sets

        return predicted_sets(proba, self.thresholds_, bool(self.min_labels))

    def classify(
        self, texts: TextInput, *, top_n: int | None = None, threshold: float | None = None
    ) -> list[list[dict[str, Any]]]:
        """Per text, ``[{"class_name", "prob"}, ...]`` by falling probability (Lamini's shape)."""
        top_n = check_positive_int(top_n, "top_n")
        threshold = check_probability(threshold, "threshold")
        return self.classify_from_proba(self.predict_proba(texts), top_n=top_n, threshold=threshold)

    def classify_from_proba(
        self, proba: np.ndarray, *, top_n: int | None = None, threshold: float | None = None
    ) -> list[list[dict[str, Any]]]:
        """``classify``'s answer for rows of ``predict_proba`` output (arguments already checked).

        A multi-label model lists every class over its own threshold unless ``threshold`` is given.
        """
        out = []
        over = self._over_threshold(proba) if self.multi_label and threshold is None else None
        for i, row in enumerate(proba):
            order = np.argsort(-row, kind="stable")
            if over is not None:
                order = [j for j in order if over[i, j]]
            elif threshold is not None:
                order = [j for j in order if row[j] >= threshold]
            items = [{"class_name": str(self.classes_[j]), "prob": float(row[j])} for j in order]
            out.append(items[:top_n] if top_n is not None else items)
        return out

    # ------------------------------------------------------------------ the correction loop
    def suggest(self, texts: Iterable[str], n: int = 20, *, explore: float = 0.5) -> list[Suggestion]:
        """The ``n`` texts of ``texts`` whose labels would help the model most.

        Most are uncertain and diverse (``promptclf.review.suggest``): the most uncertain texts,
        near-duplicates collapsed, clustered, one per cluster and shared out between predicted
        classes, so ten suggestions are not ten copies of one confusion. A share ``explore`` are drawn
        at random instead (``pick="random"``): their labels are a fair sample of your texts, the only
        reviewed labels thresholds are calibrated on (calibrated on uncertain picks, sst2's thresholds
        promised 0.90-1.00 where real text got 0.78-0.81, BENCHMARKS.md "Correction loop"). Texts you
        already labelled are left out.

        Parameters
        ----------
        texts : iterable of str
            Your pool of unlabelled texts (vectors are cached, so asking again after training is quick).
        n : int, default 20
            How many suggestions.
        explore : float, default 0.5
            Share of random picks, 0 to 1.

        Returns
        -------
        list of Suggestion
            Each with the text, the model's ``guess``, its ``confidence``, ``proba`` per class and
            ``pick``; uncertain and random picks alternate. Add the answers with
            ``add_data_to_class(label, s.text, meta={"pick": s.pick})`` and ``train()`` again.
        """
        from .review import suggest as sg

        head = self._check_fitted()
        n = check_positive_int(n, "n")
        explore = check_probability(explore, "explore", allow_none=False)
        texts = check_texts(texts, "texts")
        labelled = {e.text for e in self._store.examples(("user", "llm"))}
        pool = [t for t in dict.fromkeys(texts) if t.strip() and t not in labelled]
        if not pool:
            return []
        X = self._vectors(pool)
        proba = head.predict_proba(X)
        u = sg.uncertainty(proba, self.thresholds_, bool(self.multi_label))
        n_random = min(int(n * explore + 1e-9), len(pool))  # rounded down: an odd n leans to uncertain
        strata = proba.argmax(axis=1) if sg.STRATIFY and not self.multi_label else None
        sure = sg.choose(X, u, n - n_random, strata=strata, random_state=self.random_state)
        rest = np.setdiff1d(np.arange(len(pool)), sure)
        rng = np.random.default_rng(self.random_state + len(labelled))
        randoms = rng.choice(rest, size=min(n_random, len(rest)), replace=False) if len(rest) else rest
        idx = sg.interleave(sure, randoms)
        uncertain = set(sure.tolist())
        picks = ["uncertain" if i in uncertain else "random" for i in idx]
        return sg.suggestions(self, [pool[i] for i in idx], proba[idx], u[idx], picks)

    # ------------------------------------------------------------------ calibration views
    def precision_recall_curves(self) -> dict[str, dict[str, np.ndarray]]:
        """Per class: precision, recall and thresholds from out-of-fold (or ``calibrate``) probabilities."""
        self._check_fitted()
        if self._oof_proba_ is None:
            return {}
        return self._curves(self._oof_proba_, self._oof_labels_)

    def _curves(self, proba: np.ndarray, y: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        if self.multi_label:
            from .multilabel import pr_curves_ovr

            return pr_curves_ovr(y == 1, y >= 0, proba, self.classes_)
        return pr_curves(y, proba, self.classes_)

    def plot_precision_recall(
        self,
        path: str | os.PathLike[str],
        *,
        texts: Iterable[str] | None = None,
        labels: Iterable[Any] | None = None,
        proba: np.ndarray | None = None,
    ) -> None:
        """Write a PNG of each class's precision-recall curve with its threshold marked.

        Curves come from the calibration probabilities, or from ``labels`` with ``texts`` (or with
        ``proba``, their ``predict_proba`` rows, when you have them already).
        """
        from .calibration import plot_precision_recall

        self._check_fitted()
        if labels is not None and (texts is not None or proba is not None):
            if proba is None:
                proba = self.predict_proba(check_texts(texts))
            curves = self._curves(proba, self._label_array(labels, len(proba)))
        else:
            curves = self.precision_recall_curves()
        plot_precision_recall(curves, self.classes_, self.thresholds_, self.calibration_["target_precision"], path)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        """What ``promptclf info`` prints: classes, examples, embedders, thresholds, training metrics."""
        self._check_fitted()
        s = self.training_summary_
        params = self.get_params()
        return {
            "classes": [str(c) for c in self.classes_],
            "multi_label": bool(self.multi_label),
            "examples": self.example_counts(),
            "embedder": dict(self.embedder_spec_),
            "serving_embedder": self._emb.to_spec(),
            "fast_path": _fast_summary(getattr(self, "fast_", None)),
            "encoder": dict(getattr(self, "encoder_", None) or {}) or None,
            "llm": self._llm_spec(),
            "dimension": self.n_features_in_,
            "thresholds": {str(c): round(float(t), 4) for c, t in zip(self.classes_, self.thresholds_)},
            "thresholds_calibrated": bool(self.calibration_.get("calibrated")),
            "calibration": {k: v for k, v in self.calibration_.items() if k != "precision"},
            "settings": {k: params[k] for k in SAVED},
            "cv_accuracy": s.get("cv_accuracy"),
            "long_texts": s.get("long_texts"),
            "pool_tuning": s.get("pool_tuning"),
            "C": s.get("C"),
            "trained_at": s.get("trained_at"),
            "generated_examples": self._generated_verdict(),
            "generation": {
                k: v for k, v in (getattr(self, "generation_report_", None) or {}).items() if k != "classes"
            },
        }

    def _generated_verdict(self) -> dict[str, Any] | str:
        """Whether the model learnt from the generated examples, and the check that said so."""
        report = getattr(self, "self_training_report_", None) or {}
        if "generated_examples" in report:
            return report["generated_examples"]
        if not self._store.examples(("generated",)):
            return "none"
        return "used, unchecked: a single-label run with unlabeled texts checks them"

    def _more_writers(self, n_classes: int) -> tuple[Any, ...]:
        """The LLMs that write examples beside the default one on a task of ``n_classes`` classes
        (``llms.base.default_more_writers``); none beside an LLM you name."""
        from .llms import get_llm
        from .llms.base import default_more_writers

        if self.llm is not None:
            return ()
        return tuple(get_llm(spec) for spec in default_more_writers(n_classes, self.strategy))

    def _llm_spec(self) -> dict[str, Any] | None:
        """The LLM as a model file records it (its spec, never an address), without loading it."""
        if self.llm is None and "_llm" not in self.__dict__:
            return None
        try:  # resolving a spec builds the backend object, which loads nothing
            return self._llm.to_spec()
        except ConfigurationError:
            return None

    def _llm_labelling(self) -> tuple[int, bool]:
        """How many of the pool's least sure texts the LLM may label per labelling, and whether it must
        pass a check first (``llm_label_budget="auto"``, ``selftrain.check_labeller``)."""
        if self.llm_label_budget != "auto":
            return int(self.llm_label_budget), False
        from .selftrain import AUTO_LLM_LABELS

        # Hosted LLMs only. The packaged 135M / 270M models label the pool near chance (BENCHMARKS.md, "Which
        # LLM may label the pool"), and a local LLM of any size answers one text at a time on the CPUs
        # the classifier runs on, a larger one a second or more each: a thousand labels would take long
        # (``llm_label_budget=N`` asks it anyway). Not a hosted LLM a loaded model file names but the
        # caller did not pass either: its stand-in is not hosted, and nothing is sent.
        if not self._llm.hosted:
            return 0, False
        return AUTO_LLM_LABELS, True

    # ------------------------------------------------------------------ model file
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one ``.clf`` file (atomic: a failure never damages an existing file)."""
        head = self._check_fitted()
        for name in SAVED:  # a bad value set after training must not reach the file
            check_setting(name, getattr(self, name))
        store_texts = [e.text for e in self._store] + list(getattr(self, "prompts_", {}).values())
        space = dict(self.embedder_spec_)
        graph = self._encoder_graph()
        modelfile.save(
            path,
            modelfile.ModelState(
                classes=[str(c) for c in self.classes_],
                embedder=space,
                dimension=self.n_features_in_,
                head=head,
                thresholds=self.thresholds_,
                prompts=dict(getattr(self, "prompts_", {})),
                store=self._store,
                settings={name: getattr(self, name) for name in SAVED},
                # the default stays the default (None), so a loaded copy writes with the same LLMs
                llm=self._llm_spec() if self.llm is not None else None,
                calibration=self.calibration_,
                calibration_arrays=(self._oof_proba_, self._oof_labels_) if self._oof_proba_ is not None else None,
                cached=self._cache.export(spec_id(space), store_texts),
                training_summary=self.training_summary_,
                generation_report=getattr(self, "generation_report_", None),
                self_training_report=getattr(self, "self_training_report_", None),
                encoder=getattr(self, "encoder_", None) if graph is not None else None,
                encoder_graph=graph,
                fast=getattr(self, "fast_", None) if self.fast else None,
            ),
        )
        if graph is not None:
            self._prepare_int8(graph)

    def _prepare_int8(self, graph: bytes) -> None:
        """Make, on this machine, the int8 graph a loaded copy of this model will predict with.

        ``load`` serves a fine-tuned encoder int8 (as the packaged one), quantised once per graph and
        cached by its hash: made here, a fresh process on the machine that trained the model loads
        and predicts in about 1.4 s instead of 5 (BENCHMARKS.md, "Time to first model"). Another
        machine makes it at its first load. The file is saved already: a cache that cannot be
        written costs that first load its seconds, never the save.
        """
        from .embedders.onnx_backend import fast_equivalent, optimized_file, tuned_int8_file

        if (fast_equivalent(self.encoder_["base"]) or {}).get("kind") != "onnx-int8":
            return
        try:
            optimized_file(tuned_int8_file(graph))
        except Exception as e:  # a read-only or full cache folder: quantise at load instead
            log.debug("could not cache the int8 graph of the fine-tuned encoder (%s)", e)

    @property
    def model_sha256_(self) -> str:
        """The sha256 of the whole file this model was loaded from (how the server names the model it
        serves): hashed on a second thread while the file loads, waited for here."""
        digest = self.__dict__.get("_sha256")
        if digest is None:
            raise AttributeError("model_sha256_: only a loaded model has one")
        if not isinstance(digest, str):
            digest = self._sha256 = digest.result()
        return digest

    def _encoder_graph(self) -> bytes | None:
        """The fine-tuned encoder's ONNX graph as the ``.clf`` stores it (float16 weights): exported
        once from the in-memory model, or as loaded."""
        tuned = self.__dict__.get("_tuned")
        if tuned is None:
            return None
        graph = getattr(tuned, "_graph", None)
        if callable(graph):  # a loaded file's, read beside the load: checked against its checksum here
            graph = tuned.graph
        if graph is None:
            from .embedders.onnx_backend import export_model, half_graph

            graph = tuned._graph = half_graph(export_model(tuned.torch_model))
        return graph

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, embedder: Any = None, llm: Any = None, allow_hosted: bool = False
    ) -> PromptClassifier:
        """Read a ``.clf``: ready to predict at once, and to keep learning (the examples travel inside).

        Parameters
        ----------
        path : str or path
            The model file. Every member's size, and everything prediction uses (checksums
            included), is checked here; the training examples and their cached vectors, which
            prediction never needs, are read on a second thread meanwhile and checked and parsed when
            first used (training, saving, ``get_data``). A fine-tuned or distilled encoder is run on
            one text the first time its graph is loaded on this machine; after that its session is
            made when a text first needs it. Any problem is a ``ModelFileError`` naming the member.
        embedder, llm : optional
            Backends to use instead of those the file names. A model trained with the packaged
            sentence-transformers MiniLM predicts through ONNX Runtime with int8 weights by default
            (no PyTorch import, about 4x faster, within a point of macro-F1 on every dev set;
            exported and quantised once, cached) and retrains with the exact fp32 vectors;
            ``"onnx:all-MiniLM-L6-v2"`` predicts with fp32 too.
        allow_hosted : bool, default False
            A file may name a hosted (network) embedder or LLM, by model name only. It is never
            contacted unless you pass the backend yourself or set this flag, which uses it with
            your own credentials and ``OPENAI_BASE_URL``.
        """
        from .embedders.base import RefusedEmbedder, embedders
        from .llms.base import RefusedLLM, llms

        state = modelfile.read(path)
        where = str(path)
        if embedder is None:
            # a fine-tuned encoder is not a registry kind: the file's base encoder is the embedder
            # (what a new fine-tuning starts from), the tuned one is attached below
            spec = state.encoder["base"] if state.encoder is not None else state.embedder
            if embedders().is_hosted(spec) and not allow_hosted:
                embedder = RefusedEmbedder(spec, where)
            else:
                from .embedders.onnx_backend import fast_equivalent

                embedder = fast_equivalent(spec) or dict(spec)
        if llm is None and state.llm is not None:
            if llms().is_hosted(state.llm) and not allow_hosted:
                llm = RefusedLLM(state.llm, where)
            elif state.llm["kind"] in llms().kinds:
                llm = dict(state.llm)
        clf = cls(llm=llm, embedder=embedder, **state.settings)
        clf._loaded = state.training  # the examples and cached vectors, parsed on first use (_store, _cache)
        clf.prompts_ = dict(state.prompts)
        clf.head_ = state.head
        clf.classes_ = state.head.classes_
        clf.n_features_in_ = state.dimension
        clf.embedder_spec_ = dict(state.embedder)
        clf.thresholds_ = state.thresholds
        clf.calibration_ = dict(state.calibration)
        clf.training_summary_ = state.training_summary
        clf.generation_report_ = state.generation_report
        clf.self_training_report_ = state.self_training_report
        clf._sha256 = state.sha256  # model_sha256_: hashed on a second thread, waited for when asked for
        clf._oof_proba_, clf._oof_labels_ = state.calibration_arrays or (None, None)
        if state.encoder is not None:
            from .embedders.onnx_backend import FinetunedOnnxEmbedder

            # int8 for prediction when the packaged encoder would be served int8 too (the default)
            tuned = FinetunedOnnxEmbedder(
                state.encoder["base"]["model"],
                state.encoder_graph,
                state.encoder["name"],
                quantized=getattr(clf._embedder, "kind", None) == "onnx-int8",
                digest=state.encoder_sha256,
                source=where,
            )
            # a graph that ran here once (by its verified sha256, served the same way, with the head's
            # width) is not run at load: its session is made when a text first needs it, and a fast
            # path may answer without it (a distilled model's cold start: 0.18 s and the import of
            # ONNX Runtime). A graph that then cannot run is still a ModelFileError (``source``).
            modelfile.once(
                lambda: _run_encoder(tuned, state.dimension),
                "encoder runs", state.encoder_sha256, tuned.quantized, state.dimension,
            )  # fmt: skip
            clf._tuned, clf.encoder_ = tuned, state.encoder
        clf.fast_ = state.fast
        return clf


def _run_encoder(tuned: Any, dimension: int) -> None:
    """Run a loaded file's tuned encoder on one text: a graph that cannot run, or whose vectors the
    head cannot take, is a ``ModelFileError`` naming its member."""
    try:
        X = tuned.embed(["a"])  # the embedder names the file and member where the graph cannot run
    except ModelFileError:
        raise
    except PromptClfError as e:  # what it gives is not vectors (NaN, another shape): the graph's fault too
        raise tuned.fault(str(e)) from None
    if X.shape[1] != dimension:
        raise tuned.fault(f"gives {X.shape[1]}-dimensional vectors, the head wants {dimension}")


def _fast_summary(fast: FastPath | None) -> dict[str, Any] | None:
    if fast is None:
        return None
    summary = {"embedder": dict(fast.embedder), "threshold": round(fast.threshold, 4), "word_columns": fast.n_terms,
               "blend": fast.blend}  # fmt: skip
    return {**summary, **fast.estimate}
