"""Deterministic fakes for the LLM and the embedder, and shared fixtures."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from promptclf.embedders import Embedder
from promptclf.embedders.base import embedders
from promptclf.llms import LLM, parse_json_object
from promptclf.llms.base import llms

# ONNX exports made by the tests live beside the repo's other caches (git ignores .pytest_cache)
os.environ.setdefault("PROMPTCLF_CACHE", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "promptclf"))
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not DATASETS.exists():  # CI clones the repo beside shared/
    DATASETS = Path(os.environ.get("PROMPTCLF_DATASETS", "../shared/datasets")).resolve()


class FakeEmbedder(Embedder):
    """Hashed bag of words: texts sharing words get similar vectors; records what it embedded."""

    kind = "fake"

    def __init__(self, model: str = "bow64", dim: int = 64) -> None:
        super().__init__(model)
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                h = int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0
            out[i, -1] += 0.1
        return out

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


class FakeLLM(LLM):
    """Answers from a queue of canned outputs (dicts, raw strings or exceptions), then from ``fallback``."""

    kind = "fake"

    def __init__(self, model: str = "fake", outputs: list[Any] | None = None, fallback=None) -> None:
        super().__init__(model)
        self.queue = deque(outputs or [])
        self.fallback = fallback
        self.calls: list[dict[str, Any]] = []

    def generate_json(self, messages, schema, *, temperature=0.8, max_tokens=256, seed=None):
        self.calls.append({"messages": messages, "schema": schema, "seed": seed})
        out = self.queue.popleft() if self.queue else self.fallback(messages, schema, len(self.calls))
        self.usage.add(10, 5)
        if isinstance(out, BaseException):
            raise out
        if isinstance(out, str):
            return parse_json_object(out)
        return out


WORDS = {
    "pos": ["wonderful", "superb", "delightful", "moving", "brilliant", "charming", "joyful", "masterful"],
    "neg": ["dreadful", "boring", "tedious", "awful", "clumsy", "dull", "painful", "lifeless"],
}


def topic_llm(seed: int = 0) -> FakeLLM:
    """A fake that writes on-topic texts for classes named pos/neg, varied by a counter."""
    rng = np.random.default_rng(seed)

    def answer(messages, schema, n):
        content = messages[-1]["content"]
        cls = "pos" if ("Category: pos" in content or "praise" in content) else "neg"
        if "summaries" in schema["properties"]:
            k = schema["properties"]["summaries"]["minItems"]
            return {"summaries": [f"summary {n} {i} {rng.choice(WORDS[cls])} film" for i in range(k)]}
        words = rng.choice(WORDS[cls], size=4, replace=False)
        verb = "praise" if cls == "pos" else "criticise"
        return {"text": f"{' '.join(words)} scene{n} film, i {verb} it"}

    return FakeLLM(fallback=answer)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def toy_data() -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    data = {}
    for cls, ws in WORDS.items():
        data[cls] = [f"a {' '.join(rng.choice(ws, size=3, replace=False))} movie number {i}" for i in range(12)]
    return data


@pytest.fixture
def trained(fake_embedder, toy_data):
    from promptclf import PromptClassifier

    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, xs)
    return clf.train()


def read_csv(name: str, split: str) -> list[dict[str, str]]:
    path = DATASETS / name / f"{split}.csv"
    if not path.exists():
        pytest.skip(f"dataset not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_without_torch(code: str, stdin: str | None = None) -> list[str]:
    """Run ``code`` in a fresh interpreter where ``import torch`` fails; the lines it printed."""
    import subprocess
    import sys

    head = "import sys\nsys.modules['torch'] = None  # import torch now fails\n"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", head + code], input=stdin, capture_output=True, text=True, cwd=root, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


class TopicLLM(FakeLLM):
    """``--llm fake-topic:x`` from the command line: the on-topic fake."""

    kind = "fake-topic"

    def __init__(self, model: str = "x") -> None:
        super().__init__(model, fallback=topic_llm().fallback)


class EchoLLM(FakeLLM):
    """``--llm fake-echo:x``: writes each example from words of the description it is given (the
    first line of the direct template), so any prompts file gets on-topic texts."""

    kind = "fake-echo"

    def __init__(self, model: str = "x") -> None:
        rng = np.random.default_rng(0)

        def answer(messages, schema, n):
            desc = re.findall(r"[a-z]{4,}", messages[-1]["content"].splitlines()[0].lower())
            return {"text": f"{' '.join(rng.choice(desc, size=6))} message {n}"}

        super().__init__(model, fallback=answer)


FAKE_EMBEDDERS = (FakeEmbedder,)
FAKE_LLMS = (FakeLLM, TopicLLM, EchoLLM)


@pytest.fixture(autouse=True)
def fake_backends():
    """Register the fakes for one test and remove them after, so no test sees another's backends."""
    for cls in FAKE_EMBEDDERS:
        embedders().register(cls)
    for cls in FAKE_LLMS:
        llms().register(cls)
    yield
    for cls in FAKE_EMBEDDERS:
        embedders().unregister(cls.kind)
    for cls in FAKE_LLMS:
        llms().unregister(cls.kind)
    for kind in [k for k in embedders().kinds if k.endswith("-test")]:  # registered by a test itself
        embedders().unregister(kind)
