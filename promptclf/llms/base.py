"""LLM base class and registry.

A backend implements one method, ``generate_json``: messages and a JSON schema in, a parsed object
out. Concurrency (``generate_json_many``), token accounting and JSON repair are built here once.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._registry import Backend, Refused, Registry
from ..errors import GenerationError

Messages = list[dict[str, str]]


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
    messages: Messages
    schema: dict[str, Any]
    temperature: float = 0.8
    max_tokens: int = 256
    seed: int | None = None


class LLM(Backend, ABC):
    """Structured-output text generator. Subclasses set ``kind`` and implement ``generate_json``."""

    max_concurrency: int = 1

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

    def generate_json_many(self, requests: Sequence[Request]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """Yield ``(index, object or MalformedOutput)`` as answers arrive; other errors propagate.

        Sequential here; backends that talk to a server run ``max_concurrency`` requests at once.
        """
        for i, r in enumerate(requests):
            yield i, self._one(r)

    def _one(self, r: Request) -> dict[str, Any] | Exception:
        try:
            return self.generate_json(
                r.messages, r.schema, temperature=r.temperature, max_tokens=r.max_tokens, seed=r.seed
            )
        except MalformedOutput as e:
            return e


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
LLMS: Registry[LLM] = Registry("llm", LLM, DEFAULT_LLM)
register_llm = LLMS.register


def llms() -> Registry[LLM]:
    """The registry, with the built-in kinds registered (their modules import nothing heavy)."""
    from . import hosted, local  # noqa: F401

    return LLMS


def get_llm(spec: str | dict[str, Any] | LLM | None) -> LLM:
    """Resolve ``None`` (local SmolLM2), ``"llama-cpp:PATH|smollm2|gemma3-270m"``, ``"openai:MODEL"``, or an LLM."""
    return llms().resolve(spec)
