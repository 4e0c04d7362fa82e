"""Generate, diversify, expand: synthetic examples for each class from its description.

1. generate: a few short summaries of texts of the class (with up to three of the user's examples);
2. diversify: new summaries, similar in kind but different in subject from a sample of earlier ones;
3. expand: each summary into one complete example consistent with it and the description.

Every kept example is appended to the example store as it is made (with its provenance), so an
interrupted run resumes where it stopped. Then near-duplicates are dropped by embedding cosine;
the classifier's ``train`` later drops examples the rest of the data contradicts.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..llms import LLM, Request
from .filters import dedup_key, normalize, reject_reason, words
from .templates import EXAMPLES_BLOCK, bullets, resolve_templates

if TYPE_CHECKING:
    from ..classifier import PromptClassifier

log = logging.getLogger("promptclf")
STRATEGIES = ("direct", "summaries")
SUMMARIES_PER_CALL = 8
SUMMARY_TEMPERATURE = 1.0  # summaries are short: spread them out
TEXT_TEMPERATURE = 0.8  # measured: 0.5 repeats itself, 1.0 drifts off the class
NEAR_DUPLICATE_COSINE = 0.95
DESCRIPTION_AGREEMENT = True  # see BENCHMARKS.md: drop generated examples nearer another class's description
MAX_ROUNDS = 3  # generation rounds per class (near-duplicate removal can open a deficit)


def _summaries_schema(n: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "summaries": {
                "type": "array",
                "items": {"type": "string", "minLength": 8, "maxLength": 90},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["summaries"],
    }


TEXT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 15, "maxLength": 400}},
    "required": ["text"],
}


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


@dataclass
class ClassReport:
    requested: int = 0
    expanded: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    summary_calls: int = 0
    expand_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "expanded": self.expanded,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "summary_calls": self.summary_calls,
            "expand_calls": self.expand_calls,
        }


class ClassGenerator:
    """Runs the three phases for one class until it has enough kept examples or its call budget is spent."""

    def __init__(
        self, clf: PromptClassifier, llm: LLM, templates: dict[str, str], class_name: str, description: str, sha: str
    ) -> None:
        self.clf, self.llm, self.t = clf, llm, templates
        self.class_name, self.description, self.sha = class_name, description, sha
        self.rng = random.Random(_seed(clf.random_state, class_name, sha))
        self.summaries: list[str] = []
        self.unused: list[str] = []
        self.report = ClassReport()
        self.strategy = clf.strategy
        self.rejected: set[str] = set()  # keys of texts dropped later (near duplicates) so they are not re-added

    # -- prompts ---------------------------------------------------------------------------------
    def _messages(self, template: str, **fields: Any) -> list[dict[str, str]]:
        user = self.clf._store.examples(["user"])
        mine = [e.text for e in user if e.class_name == self.class_name]
        self.rng.shuffle(mine)
        block = EXAMPLES_BLOCK.format(items=bullets(mine[:3])) if mine else ""
        content = self.t[template].format(
            class_name=self.class_name, description=self.description, examples=block, **fields
        )
        return [{"role": "system", "content": self.t["system"]}, {"role": "user", "content": content}]

    def _request(
        self,
        template: str,
        schema: dict[str, Any],
        max_tokens: int,
        temperature: float = TEXT_TEMPERATURE,
        **fields: Any,
    ) -> Request:
        return Request(
            self._messages(template, **fields),
            schema,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=self.rng.randrange(2**31),
        )

    # -- phases ----------------------------------------------------------------------------------
    def _more_summaries(self) -> None:
        n = SUMMARIES_PER_CALL
        if len(self.summaries) >= 3 and self.rng.random() < 0.6:
            sample = self.rng.sample(self.summaries, min(5, len(self.summaries)))
            req = self._request(
                "diversify", _summaries_schema(n), 40 * n, SUMMARY_TEMPERATURE, n=n, summaries=bullets(sample)
            )
        else:
            req = self._request("generate", _summaries_schema(n), 40 * n, SUMMARY_TEMPERATURE, n=n)
        self.report.summary_calls += 1
        [(_, out)] = list(self.llm.generate_json_many([req]))
        if isinstance(out, Exception):
            self.report.dropped["malformed_summaries"] += 1
            return
        seen = {dedup_key(s) for s in self.summaries}
        items = out.get("summaries")
        for s in items if isinstance(items, list) else []:
            s = normalize(s) if isinstance(s, str) else ""
            k = dedup_key(s)
            if 2 <= len(words(s)) <= 20 and k not in seen and "{" not in s:
                seen.add(k)
                self.summaries.append(s)
                self.unused.append(s)

    def run(self, need: int, taken: dict[str, str], bar: Any = None) -> int:
        """Generate until ``need`` more examples are kept; return how many were kept."""
        kept, budget = 0, 4 * need + 8
        calls = 0
        while kept < need and calls < budget:
            if self.strategy == "direct":
                batch: list[str | None] = [None] * min(need - kept, 8)
                reqs = [self._request("direct", TEXT_SCHEMA, 120) for _ in batch]
            elif not self.unused:
                self._more_summaries()
                calls += 1
                continue
            else:
                batch = [self.unused.pop(0) for _ in range(min(len(self.unused), need - kept, 8))]
                reqs = [self._request("expand", TEXT_SCHEMA, 160, summary=s) for s in batch]
            for i, out in self.llm.generate_json_many(reqs):
                calls += 1
                self.report.expand_calls += 1
                reason = self._consider(out, taken)
                if reason is not None:
                    self.report.dropped[reason] += 1
                    continue
                text = normalize(out["text"])
                self.report.expanded += 1
                taken[dedup_key(text)] = self.class_name
                self.clf._store.add(
                    self.class_name,
                    [text],
                    source="generated",
                    meta=self._meta(batch[i]),
                )
                kept += 1
                if bar is not None:
                    bar.update(1)
                if kept >= need:
                    break
        self.report.kept += kept
        return kept

    def _meta(self, summary: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"model": self.llm.id, "phase": "expand" if summary else "direct"}
        if summary:
            meta["summary"] = summary
        meta["prompt_sha"] = self.sha
        return meta

    def _consider(self, out: dict[str, Any] | Exception, taken: dict[str, str]) -> str | None:
        if isinstance(out, Exception):  # MalformedOutput from the backend
            return "malformed"
        text = out.get("text")
        if not isinstance(text, str):
            return "malformed"
        text = normalize(text)
        reason = reject_reason(text, self.description, self.class_name)
        if reason:
            return reason
        key = dedup_key(text)
        if key in self.rejected:
            return "rejected_before"
        owner = taken.get(key)
        if owner is not None:
            return "duplicate" if owner == self.class_name else "ambiguous"
        return None


def _embedding_filter(clf: PromptClassifier, class_name: str, gen: ClassGenerator) -> int:
    """Drop generated examples that are near-duplicates of an earlier one of their class, or that sit
    closer to another class's description than to their own (the tiny model drifted)."""
    prompts = getattr(clf, "prompts_", {})
    names = list(prompts)
    D = clf._embedder.embed([prompts[c] for c in names], cache=clf._cache)
    own = names.index(class_name) if class_name in prompts else None
    exs = [e for e in clf._store if e.class_name == class_name and e.source in ("user", "generated")]
    if not exs:
        return 0
    X = clf._embedder.embed([e.text for e in exs], cache=clf._cache)
    sim = X @ X.T  # all pairwise cosines at once
    to_desc = X @ D[own] if own is not None else np.full(len(exs), -np.inf)
    nearest_desc = (X @ D.T).argmax(1) if len(names) else None
    kept = np.zeros(len(exs), dtype=bool)  # earlier examples still in; the description counts as kept
    drop: dict[str, str] = {}
    for j, e in enumerate(exs):
        if e.source == "generated":
            closest = max(float(to_desc[j]), float(sim[j, :j][kept[:j]].max(initial=-np.inf)))
            if closest > NEAR_DUPLICATE_COSINE:
                drop[e.text] = "near_duplicate"
                continue
            if DESCRIPTION_AGREEMENT and own is not None and len(names) > 1 and nearest_desc[j] != own:
                drop[e.text] = "closer_to_other_class"
                continue
        kept[j] = True
    if drop:
        clf._store.remove(lambda e: e.class_name == class_name and e.source == "generated" and e.text in drop)
        for text, reason in drop.items():
            gen.rejected.add(dedup_key(text))
            gen.report.dropped[reason] += 1
        gen.report.kept -= len(drop)
    return len(drop)


def generate_for_classes(clf: PromptClassifier, prompts: dict[str, str], shas: dict[str, str]) -> dict[str, Any]:
    """Fill every prompted class up to ``clf.examples_per_class`` generated examples."""
    llm: LLM = clf._llm
    templates = resolve_templates(clf.templates)
    if clf.strategy not in STRATEGIES:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"unknown strategy {clf.strategy!r}; expected one of {STRATEGIES}")
    start, usage0 = time.perf_counter(), dict(llm.usage.as_dict())
    taken = {dedup_key(e.text): e.class_name for e in clf._store}
    for d_class, d in clf.prompts_.items():
        taken.setdefault(dedup_key(d), d_class)
    reports: dict[str, ClassReport] = {}
    for c, desc in prompts.items():
        gen = ClassGenerator(clf, llm, templates, c, desc, shas[c])
        reports[c] = gen.report
        for _ in range(MAX_ROUNDS):
            need = clf.examples_per_class - clf._store.count(c, "generated")
            if need <= 0:
                break
            gen.report.requested += need
            bar = _bar(need, f"generating {c}", clf.progress)
            try:
                got = gen.run(need, taken, bar)
            finally:
                if bar is not None:
                    bar.close()
            removed = _embedding_filter(clf, c, gen) if clf.filter_generated else 0
            if got == 0 or (removed == 0 and got < need):
                break
        have = clf._store.count(c, "generated")
        if have < clf.examples_per_class:
            log.warning(
                "class %r: kept %d of %d generated examples (the model's output was mostly filtered out: %s)",
                c,
                have,
                clf.examples_per_class,
                dict(gen.report.dropped),
            )
    used = {k: v - usage0[k] for k, v in llm.usage.as_dict().items()}
    kept = sum(r.kept for r in reports.values())
    expanded = sum(r.expand_calls for r in reports.values())
    return {
        "llm": llm.id,
        "seconds": round(time.perf_counter() - start, 2),
        **used,
        "kept": kept,
        "kept_ratio": round(kept / expanded, 3) if expanded else None,
        "classes": {c: r.as_dict() for c, r in reports.items()},
    }


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False)
