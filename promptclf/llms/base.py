"""LLM base class and registry.

A backend implements one method, ``generate_json``: messages and a JSON schema in, a parsed object
out. ``generate_text`` (one line of plain text) works through it unless a backend has a faster way
(llama.cpp: no grammar, a stop sequence). Concurrency (``map``), token accounting and JSON repair
are built here once, and so is
``choose`` (pick one of a few options, with a probability for each): by self-consistency over a few
constrained samples here; backends that expose token log-probabilities override it with one call.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .._registry import Backend, Refused, Registry
from ..errors import GenerationError

Messages = list[dict[str, str]]
T = TypeVar("T")
R = TypeVar("R")


class MalformedOutput(GenerationError):
    """The model's answer was not the JSON object asked for (truncated, prose, wrong shape)."""


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += int(prompt_tokens or 0)
            self.completion_tokens += int(completion_tokens or 0)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass
class Request:
    """One call. ``plain``: the answer is one line of text (``generate_text``), answered as
    ``{"text": ...}``; ``schema`` then only describes that object. ``frame``: the same plain-text
    request as a text for a base model to continue (``LLM.continue_text``)."""

    messages: Messages
    schema: dict[str, Any]
    temperature: float = 0.8
    max_tokens: int = 256
    seed: int | None = None
    plain: bool = False
    frame: str | None = None


TEXT_ONLY_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


@dataclass
class Choice:
    """The answer to ``LLM.choose``: the option picked and a probability for every option.

    ``method`` says where the probabilities come from: ``"logprobs"`` (the answer tokens'
    log-probabilities, one call) or ``"samples"`` (the share of ``n`` sampled answers, more calls).
    """

    index: int
    proba: np.ndarray
    method: str


def choice_schema(options: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(options)}},
        "required": ["answer"],
    }


def first_token_proba(options: Sequence[str], logprob_of: Callable[[str], float | None]) -> np.ndarray | None:
    """Probabilities of ``options`` from their first tokens' log-probabilities.

    ``logprob_of(option)`` gives the log-probability (or logit) of the token that starts the option,
    ``None`` when the backend did not report it. Options that start with the same token get the same
    probability (one token cannot tell them apart). Returns ``None`` when no option was reported.
    """
    lp = [logprob_of(o) for o in options]
    if all(v is None for v in lp):
        return None
    floor = min(v for v in lp if v is not None) - 5.0  # unreported: far below the least likely reported
    vals = np.array([floor if v is None else v for v in lp], dtype=float)
    p = np.exp(vals - vals.max())
    p /= p.sum()
    return p


def match_option(text: str | None, options: Sequence[str]) -> int | None:
    """The option a free-text answer names: exactly (ignoring case, quotes and end punctuation), or
    the longest option it starts with. ``None`` if it names none."""
    if not text:
        return None
    t = text.strip().strip("\"'`*").rstrip(".!").strip().casefold()
    folded = [o.casefold() for o in options]
    if t in folded:
        return folded.index(t)
    starts = [i for i, o in enumerate(folded) if t.startswith(o)]
    return max(starts, key=lambda i: len(folded[i])) if starts else None


class LLM(Backend, ABC):
    """Structured-output text generator. Subclasses set ``kind`` and implement ``generate_json``."""

    max_concurrency: int = 1
    # answers sampled per ``choose`` call when the backend gives no token log-probabilities
    choice_samples: int = 5

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.usage = Usage()

    @abstractmethod
    def generate_json(
        self,
        messages: Messages,
        schema: dict[str, Any],
        *,
        temperature: float = 0.8,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Return the object the model wrote; raise ``MalformedOutput`` if it wrote something else."""

    def generate_text(
        self, messages: Messages, *, temperature: float = 0.8, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        """One line of plain text; ``MalformedOutput`` if the answer is empty or was cut off.

        This default asks ``generate_json`` for ``{"text": ...}``, so every backend can answer;
        backends that can decode free text faster override it.
        """
        obj = self.generate_json(messages, TEXT_ONLY_SCHEMA, temperature=temperature, max_tokens=max_tokens, seed=seed)
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise MalformedOutput("no text in the answer")
        return text

    def is_base_model(self) -> bool:
        """Whether the model continues text instead of following a chat (no chat template): plain-text
        requests with a ``frame`` then go to ``continue_text``. Chat models, the default, say no."""
        return False

    def continue_text(
        self, frame: str, *, temperature: float = 0.8, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        """What a base model writes after ``frame``, up to the end of the line (or the closing quote when
        ``frame`` ends with an opening one); ``MalformedOutput`` if that is empty or was cut off.
        Only backends whose ``is_base_model`` can say yes implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not continue text")

    def choose(self, messages: Messages, options: Sequence[str], *, seed: int | None = None) -> Choice:
        """Pick one of ``options`` (exact strings) for the conversation, with a probability for each.

        This default asks ``choice_samples`` times for a JSON answer constrained to the options (the
        first greedily, the others sampled) and returns the vote shares: self-consistency, for
        backends without token log-probabilities. Raises ``MalformedOutput`` if no answer was usable.
        """
        schema = choice_schema(options)
        votes = np.zeros(len(options))
        first: int | None = None
        for k in range(max(1, self.choice_samples)):
            try:
                obj = self.generate_json(
                    messages,
                    schema,
                    temperature=0.0 if k == 0 else 0.7,
                    max_tokens=32,
                    seed=None if seed is None else seed + k,
                )
            except MalformedOutput:
                continue
            if obj.get("answer") in options:
                i = list(options).index(obj["answer"])
                votes[i] += 1
                first = i if first is None else first
        if first is None:
            raise MalformedOutput(f"no usable answer among {self.choice_samples} samples")
        return Choice(int(votes.argmax()) if votes.max() > votes[first] else first, votes / votes.sum(), "samples")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R | Exception]]:
        """Yield ``(index, fn(item) or its MalformedOutput)`` as results arrive; other errors propagate.

        One at a time when ``max_concurrency`` is 1 (local models: they use every core already);
        otherwise up to ``max_concurrency`` calls in flight (servers). A ``BackendError`` propagates
        after everything that finished before it was yielded, and nothing new is started.
        """

        def one(item: T) -> R | Exception:
            try:
                return fn(item)
            except MalformedOutput as e:
                return e

        if self.max_concurrency <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                yield i, one(item)
            return
        self._before_threads()
        pending = iter(enumerate(items))
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            running = {}
            for i, item in pending:
                running[pool.submit(one, item)] = i
                if len(running) >= self.max_concurrency:
                    break
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = running.pop(fut)
                        yield i, fut.result()
                        nxt = next(pending, None)
                        if nxt is not None:
                            running[pool.submit(one, nxt[1])] = nxt[0]
            finally:
                for fut in running:
                    fut.cancel()

    def _before_threads(self) -> None:
        """Hook: make shared state (a client) once, before ``map`` starts threads."""

    def generate_json_many(self, requests: Sequence[Request]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """Yield ``(index, object or MalformedOutput)`` as answers arrive; other errors propagate."""

        def one(r: Request) -> dict[str, Any]:
            kw = {"temperature": r.temperature, "max_tokens": r.max_tokens, "seed": r.seed}
            if r.plain and r.frame is not None and self.is_base_model():
                return {"text": self.continue_text(r.frame, **kw)}
            if r.plain:
                return {"text": self.generate_text(r.messages, **kw)}
            return self.generate_json(r.messages, r.schema, **kw)

        yield from self.map(one, requests)


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.S)


def parse_json_object(text: str | None) -> dict[str, Any]:
    """Parse the model's answer; tolerate code fences and prose around one JSON object."""
    if not text or not text.strip():
        raise MalformedOutput("empty answer")
    s = _FENCE.sub("", text.strip())
    try:
        obj = json.loads(s, strict=False)  # small models put raw newlines in strings
    except json.JSONDecodeError:
        start, end = s.find("{"), s.rfind("}")
        if start < 0 or end <= start:
            raise MalformedOutput(f"not JSON: {text[:80]!r}") from None
        try:
            obj = json.loads(s[start : end + 1], strict=False)
        except json.JSONDecodeError:
            raise MalformedOutput(f"not valid JSON (truncated?): {text[:80]!r}") from None
    if not isinstance(obj, dict):
        raise MalformedOutput(f"expected a JSON object, got {type(obj).__name__}")
    return obj


class RefusedLLM(Refused, LLM):
    """A hosted LLM a model file names; a request raises before anything is sent (see ``Refused``)."""

    def generate_json(self, messages, schema, *, temperature=0.8, max_tokens=256, seed=None):
        raise self.refusal("LLM", "llm", "OpenAILLM")


DEFAULT_LLM = "llama-cpp:smollm2"
# With the default LLM, on a task of at most MORE_WRITERS_UP_TO_CLASSES classes, these LLMs write an
# even share of each class's examples too ("auto" then asks each for what one writer would write). Two
# classes, prompt only, 96 per class from SmolLM2 -> 96 from each: sst2 +0.6 / +1.2 / +0.9 / -0.5 points
# macro-F1 on four samples; twelve samples of four two-class tasks cut from the held-back sets +0.0 to
# +4.5, none lower. Three classes, 64 from SmolLM2 -> 64 from each (the same SmolLM2 sample with and
# without Gemma's): nine samples of three three-class tasks cut from the held-back sets -1.0 to +4.1,
# mean +1.7, eight up and each task's mean up (+0.7 to +2.3). SmolLM2 repeats itself past 96 per class
# (128 from it alone: sst2 -0.5), the base-model Gemma writes other, plainer texts. Four classes, 32 from
# SmolLM2 -> 32 from each (paired the same way): ag_news +1.2 / +1.3 / +0.3, and six samples of two
# four-class tasks cut from the held-back sets +0.9 to +5.8. From five classes on one writer: half each at the
# same count cost trec6 (six classes) 0.9 points, a full share on top of SmolLM2's +1.5 / -2.7 on two samples
# (BENCHMARKS.md, "Two small LLMs write the examples", "Two writers for two classes", "Two writers for
# three classes", "Two writers for four classes").
DEFAULT_MORE_WRITERS: tuple[str, ...] = ("llama-cpp:gemma3-270m",)
MORE_WRITERS_UP_TO_CLASSES = 4


def default_more_writers(n_classes: int, strategy: str = "direct") -> tuple[str, ...]:
    """The specs of the LLMs that write beside the default one on a task of ``n_classes`` classes with
    generation ``strategy`` (none for "summaries": asking for summaries is a chat task for one LLM)."""
    return DEFAULT_MORE_WRITERS if strategy == "direct" and n_classes <= MORE_WRITERS_UP_TO_CLASSES else ()


LLMS: Registry[LLM] = Registry("llm", LLM, DEFAULT_LLM)
register_llm = LLMS.register


def llms() -> Registry[LLM]:
    """The registry, with the built-in kinds registered (their modules import nothing heavy)."""
    from . import hosted, local  # noqa: F401

    return LLMS


def get_llm(spec: str | dict[str, Any] | LLM | None) -> LLM:
    """Resolve ``None`` (local SmolLM2), ``"llama-cpp:PATH|smollm2|gemma3-270m"``, ``"openai:MODEL"``, or an LLM."""
    return llms().resolve(spec)
