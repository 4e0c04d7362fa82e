"""The links of an escalation chain: the trained classifier, and LLM labelers.

A link has one abstract method, ``answer``: texts in, one probability row per text over the chain's
classes out (a NaN row where the link gave no answer). An LLM link asks its LLM(s) to pick one class
given the class descriptions (``LLM.choose``: constrained output, probabilities from the answer
tokens' log-probabilities, or from a few samples where the backend has none); with several LLMs it
fuses their answers (LLM-Blender's idea, for labels: a weighted rank aggregation); with
``verify`` it also asks whether the label it gave fits the text (AutoMix's self-verification) and
the probability of "Yes" becomes its routing signal.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BackendError, ConfigurationError

# Longest text shown to an LLM, in characters: the packaged local models have a 2,048-token window
# that also holds the class descriptions.
MAX_TEXT_CHARS = 2000

LABEL_SYSTEM = "You classify texts into exactly one category. Answer with the category name only."
VERIFY_SYSTEM = "You check whether a category fits a text. Answer Yes or No."


@dataclass
class LinkAnswers:
    """What a link said about some texts.

    Attributes
    ----------
    proba : ndarray of shape (n, k)
        Probabilities over the chain's classes; a row of NaN where the link gave no answer.
    members : list of ndarray
        Per LLM of a fused link, its own rows (the fused ``proba`` is made from these).
    verified : ndarray of shape (n,) or None
        The probability that the label fits the text, where the link verifies its answers.
    error : str or None
        Why the link stopped answering (a backend that failed after its retries), if it did.
    """

    proba: np.ndarray
    members: list[np.ndarray] = field(default_factory=list)
    verified: np.ndarray | None = None
    error: str | None = None

    @property
    def answered(self) -> np.ndarray:
        return ~np.isnan(self.proba).any(axis=1)

    def take(self, idx: np.ndarray) -> LinkAnswers:
        return LinkAnswers(
            self.proba[idx],
            [m[idx] for m in self.members],
            None if self.verified is None else self.verified[idx],
            self.error,
        )


@dataclass
class LinkCost:
    """Calls, tokens and seconds a link has spent (cumulative)."""

    texts: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
        }


class Link(ABC):
    """One labeler of a chain. Subclasses implement ``answer``."""

    name: str = "link"

    def __init__(self) -> None:
        self.cost = LinkCost()

    @abstractmethod
    def answer(self, texts: list[str], classes: Sequence[str]) -> LinkAnswers:
        """Probabilities over ``classes`` for each text (NaN rows where there is no answer)."""

    def __call__(self, texts: list[str], classes: Sequence[str]) -> LinkAnswers:
        """``answer``, with its cost counted."""
        before = self._usage()
        start = time.perf_counter()
        out = self.answer(texts, classes)
        self.cost.seconds += time.perf_counter() - start
        self.cost.texts += len(texts)
        after = self._usage()
        self.cost.calls += after[0] - before[0]
        self.cost.prompt_tokens += after[1] - before[1]
        self.cost.completion_tokens += after[2] - before[2]
        return out

    def _usage(self) -> tuple[int, int, int]:
        return (0, 0, 0)


class ClassifierLink(Link):
    """A trained ``PromptClassifier`` as a link (the first one of every chain)."""

    def __init__(self, classifier: Any, name: str = "classifier") -> None:
        super().__init__()
        self.classifier = classifier
        self.name = name

    def answer(self, texts: list[str], classes: Sequence[str]) -> LinkAnswers:
        proba = self.classifier.predict_proba(texts)
        order = [list(self.classifier.classes_).index(c) for c in classes]
        return LinkAnswers(proba[:, order])


def _text(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " ..."


def label_messages(text: str, descriptions: Mapping[str, str], classes: Sequence[str]) -> list[dict[str, str]]:
    lines = "\n".join(f"- {c}: {descriptions.get(c) or c}" for c in classes)
    return [
        {"role": "system", "content": LABEL_SYSTEM},
        {"role": "user", "content": f"Categories:\n{lines}\n\nText: {_text(text)}\n\nWhich category fits the text?"},
    ]


def verify_messages(text: str, label: str, description: str | None) -> list[dict[str, str]]:
    what = f"{label}: {description}" if description else label
    return [
        {"role": "system", "content": VERIFY_SYSTEM},
        {
            "role": "user",
            "content": f"Text: {_text(text)}\n\nCategory: {what}\n\nDoes the category fit the text? Answer Yes or No.",
        },
    ]


def rank_fuse(members: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Fuse several labelers' rows: a weighted Borda count over each one's ranking of the classes.

    Each available member ranks the classes by its probabilities (k-1 points for its first choice,
    0 for its last); points are weighted and summed; ties are broken by the weighted mean probability.
    The result is a probability row: the weighted mean of the members' rows, with the winner of the
    rank aggregation moved to the top (its mass swapped with the row's maximum) so that ``argmax``
    and the confidence agree. A text no member answered stays a NaN row.
    """
    stack = np.stack(members)  # (m, n, k)
    w = np.asarray(weights, dtype=float)[:, None]
    _m, n, k = stack.shape
    out = np.full((n, k), np.nan)
    avail = ~np.isnan(stack).any(axis=2)  # (m, n)
    for j in range(n):
        have = avail[:, j]
        if not have.any():
            continue
        rows, ww = stack[have, j], w[have, 0]
        if ww.sum() <= 0:
            ww = np.ones_like(ww)
        points = np.argsort(np.argsort(rows, axis=1, kind="stable"), axis=1, kind="stable").astype(float)
        score = (ww[:, None] * points).sum(0)
        mean = (ww[:, None] * rows).sum(0) / ww.sum()
        best = max(range(k), key=lambda c: (score[c], mean[c]))
        top = int(mean.argmax())
        mean[best], mean[top] = mean[top], mean[best]
        out[j] = mean
    return out


class LLMLink(Link):
    """Asks one LLM, or several fused, to pick a class for each text.

    Parameters
    ----------
    llms : LLM, spec string, or a list of them
        The labelers (``"llama-cpp:smollm2"``, ``"openai:gpt-4o-mini"``, LLM objects). Several are fused.
    descriptions : mapping, optional
        Class descriptions shown to the LLM (the classifier's ``prompts_`` when a chain makes the link).
    weights : list of float, optional
        Fusion weights per LLM; ``Chain.fit_routing`` fits them on labeled data (equal otherwise).
    verify : bool or LLM, default False
        Ask whether the label fits the text (True: the link's first LLM; or another LLM) and route
        on the probability of "Yes" instead of the label's confidence.
    name : str, optional
        Name in reports (default: the LLMs' ids joined by "+").
    seed : int, default 0
        Seed for backends that sample.
    """

    def __init__(
        self,
        llms: Any,
        descriptions: Mapping[str, str] | None = None,
        *,
        weights: Sequence[float] | None = None,
        verify: Any = False,
        name: str | None = None,
        seed: int = 0,
    ) -> None:
        from ..llms import get_llm

        super().__init__()
        items = llms if isinstance(llms, (list, tuple)) else [llms]
        if not items:
            raise ConfigurationError("an LLM link needs at least one LLM", setting="llms")
        self.llms = [get_llm(x) for x in items]
        self.descriptions = dict(descriptions or {})
        if weights is not None and len(weights) != len(self.llms):
            raise ConfigurationError(f"weights: {len(weights)} given for {len(self.llms)} LLMs", setting="weights")
        self.weights = [1.0] * len(self.llms) if weights is None else [float(w) for w in weights]
        self.verifier = (self.llms[0] if verify is True else get_llm(verify)) if verify else None
        self.name = name or "+".join(x.id for x in self.llms)
        self.seed = seed

    def _usage(self) -> tuple[int, int, int]:
        backends = {id(x): x for x in [*self.llms, *([self.verifier] if self.verifier else [])]}
        u = [b.usage for b in backends.values()]
        return sum(x.calls for x in u), sum(x.prompt_tokens for x in u), sum(x.completion_tokens for x in u)

    def _ask(self, llm: Any, messages: list[list[dict[str, str]]], options: Sequence[str]):
        """Rows of probabilities over ``options`` (NaN where no usable answer) and the error, if the
        backend failed: what was answered before it failed is kept, the rest is left unanswered."""
        out = np.full((len(messages), len(options)), np.nan)
        try:
            for i, choice in llm.map(lambda m: llm.choose(m, options, seed=self.seed), messages):
                if not isinstance(choice, Exception):
                    out[i] = choice.proba
                    # the option the model wrote leads, even where one token could not tell it apart
                    top = int(out[i].argmax())
                    out[i, choice.index], out[i, top] = out[i, top], out[i, choice.index]
        except BackendError as e:
            return out, f"{llm.id}: {e}"
        return out, None

    def answer(self, texts: list[str], classes: Sequence[str]) -> LinkAnswers:
        classes = list(classes)
        messages = [label_messages(t, self.descriptions, classes) for t in texts]
        members, errors = [], []
        for llm in self.llms:
            rows, err = self._ask(llm, messages, classes)
            members.append(rows)
            if err:
                errors.append(err)
        proba = members[0] if len(members) == 1 else rank_fuse(members, self.weights)
        verified = None
        if self.verifier is not None:
            verified = np.full(len(texts), np.nan)
            ok = np.flatnonzero(~np.isnan(proba).any(axis=1))
            vm = [
                verify_messages(
                    texts[i], classes[int(proba[i].argmax())], self.descriptions.get(classes[int(proba[i].argmax())])
                )
                for i in ok
            ]
            rows, err = self._ask(self.verifier, vm, ["Yes", "No"])
            verified[ok] = rows[:, 0]
            if err:
                errors.append(err)
        return LinkAnswers(proba, members, verified, "; ".join(errors) or None)


def label_texts(link: Link, texts: list[str], classes: Sequence[str]) -> list[str | None]:
    """The class a link picks for each text (``None`` where it gave none)."""
    ans = link(texts, classes)
    return [str(classes[int(r.argmax())]) if ok else None for r, ok in zip(ans.proba, ans.answered)]
