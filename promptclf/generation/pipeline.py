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
from typing import Any

import numpy as np

from .._progress import progress_bar
from ..embedders import Embedder, EmbeddingCache
from ..errors import GenerationError
from ..llms import LLM, Request
from ..store import ExampleStore
from . import filters
from .filters import dedup_key, echoes, normalize, reject_reason, strip_preamble, unwrap_quoted, words
from .templates import EXAMPLES_BLOCK, bullets, resolve_templates

log = logging.getLogger("promptclf")
SUMMARIES_PER_CALL = 8
SUMMARY_TEMPERATURE = 1.0  # summaries are short: spread them out
TEXT_TEMPERATURE = 0.8  # measured: 0.5 repeats itself, 1.0 drifts off the class
NEAR_DUPLICATE_COSINE = 0.95
DESCRIPTION_AGREEMENT = True  # see BENCHMARKS.md: drop generated examples nearer another class's description
# Multi-label classes co-occur and their descriptions sit close (GoEmotions: annoyance, anger,
# disapproval): an example of one is often nearest another's description without having drifted.
# There it is dropped only if its own description is not among its this many nearest.
MULTI_LABEL_AGREEMENT_RANK = 3
MAX_ROUNDS = 3  # generation rounds per class (near-duplicate removal can open a deficit)
# Examples are asked for as one line of plain text, not a JSON object: about twice the kept
# examples per minute with the local model, accuracy not lower (BENCHMARKS.md, "Generation speed").
PLAIN_TEXT = True
TEXT_TOKENS = {"direct": 96, "expand": 128}  # an answer longer than this is dropped, not cut


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


# ``examples_per_class="auto"``: 32 per class, 96 for two classes and 64 for three. With few classes,
# fine-tuning has few texts to contrast and gains from more distinct ones, not from more pairs of the
# same ones. Prompt only, 32 -> 96 per class: sst2 +3.3 points macro-F1, four two-class tasks cut from
# the held-back sets +0.0 to +2.6, none lower; three-class tasks (held-back only, so not confirmed
# elsewhere) 32 -> 64: +0.0 to +2.1 (bench/finetune_pairs.py --first; BENCHMARKS.md, "How many examples
# for few classes"). From four classes on, more pairs do what more examples would (same section).
# Generation of two or three classes then takes about what four to six classes take at 32. The counts
# are per writer: where a second LLM writes too (two to four classes, llms.base.default_more_writers) each
# writes that many, since a second writer's worth is in the distinct examples it adds.
AUTO_EXAMPLES_PER_CLASS = 32
AUTO_EXAMPLES_FEW_CLASSES = {2: 96, 3: 64}


def examples_per_class_for(setting: int | str, n_classes: int, writers: int = 1) -> int:
    """The examples per class a ``prompt_train`` over ``n_classes`` classes generates for ``setting``,
    shared between ``writers`` LLMs: a number you set is shared out, "auto" is a count per writer (a second
    writer's worth is in the distinct examples it adds, not in replacing half of the first's)."""
    if setting != "auto":
        return int(setting)
    return writers * AUTO_EXAMPLES_FEW_CLASSES.get(n_classes, AUTO_EXAMPLES_PER_CLASS)


@dataclass
class GenerationContext:
    """What generation needs from the classifier, and nothing else.

    ``descriptions`` holds every class's description (the agreement filter compares against all of
    them); ``generate_for_classes`` is told which classes to fill. ``llm`` writes the examples; with
    ``more_writers``, each class's examples are shared out evenly between it and them (``"direct"``
    strategy; summaries are asked of ``llm`` alone).
    """

    store: ExampleStore
    llm: LLM
    embedder: Embedder
    cache: EmbeddingCache
    descriptions: dict[str, str]
    examples_per_class: int = AUTO_EXAMPLES_PER_CLASS
    strategy: str = "direct"
    templates: dict[str, str] | None = None
    random_state: int = 0
    filter_generated: bool = True
    progress: bool = False
    regenerate: bool = False
    multi_label: bool = False
    more_writers: tuple[LLM, ...] = ()

    @property
    def writers(self) -> list[LLM]:
        """Every LLM that writes examples, ``llm`` first, each once (``llm`` alone for summaries)."""
        if self.strategy != "direct":
            return [self.llm]
        return list({id(w): w for w in (self.llm, *self.more_writers)}.values())


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
    by_writer: dict[str, int] = field(default_factory=dict)  # kept examples per LLM, when several write

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "expanded": self.expanded,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "summary_calls": self.summary_calls,
            "expand_calls": self.expand_calls,
            **({"by_writer": dict(self.by_writer)} if len(self.by_writer) > 1 else {}),
        }


class ClassGenerator:
    """Runs the three phases for one class until it has enough kept examples or its call budget is spent."""

    def __init__(self, ctx: GenerationContext, templates: dict[str, str], class_name: str, sha: str) -> None:
        self.ctx, self.llm, self.t = ctx, ctx.llm, templates
        self.writers = ctx.writers
        self.class_name, self.description, self.sha = class_name, ctx.descriptions[class_name], sha
        self.rng = random.Random(_seed(ctx.random_state, class_name, sha))
        self.summaries: list[str] = []
        self.unused: list[str] = []
        self.report = ClassReport()
        self.strategy = ctx.strategy
        self.rejected: set[str] = set()  # keys of texts dropped later (near duplicates) so they are not re-added
        self.made: dict[str, str] = {}  # texts this run added and who wrote them, so the report counts only its own
        # drop text about being an example: None follows filters.ECHO_FILTER; True once most of the
        # class's examples were such text (_drop_echo_majority)
        self.drop_echoes: bool | None = None

    # -- prompts ---------------------------------------------------------------------------------
    def _users_examples(self) -> list[str]:
        """Up to three of the user's examples of the class, a fresh draw for each request."""
        mine = [e.text for e in self.ctx.store.examples(["user"]) if e.class_name == self.class_name]
        self.rng.shuffle(mine)
        return mine[:3]

    def _messages(
        self, template: str, system: str = "system", mine: list[str] | None = None, **fields: Any
    ) -> list[dict[str, str]]:
        mine = self._users_examples() if mine is None else mine
        block = EXAMPLES_BLOCK.format(items=bullets(mine)) if mine else ""
        content = self.t[template].format(
            class_name=self.class_name, description=self.description, examples=block, **fields
        )
        return [{"role": "system", "content": self.t[system]}, {"role": "user", "content": content}]

    def _frame(self, mine: list[str]) -> str:
        """The ``complete`` template: the request as a list of examples for a base model to go on with."""
        listed = "".join(f'{i}. "{t}"\n' for i, t in enumerate(mine, 1))
        return self.t["complete"].format(
            class_name=self.class_name, description=self.description, listed=listed, next=len(mine) + 1
        )

    def _request(
        self,
        template: str,
        schema: dict[str, Any],
        max_tokens: int,
        temperature: float = TEXT_TEMPERATURE,
        mine: list[str] | None = None,
        **fields: Any,
    ) -> Request:
        return Request(
            self._messages(template, mine=mine, **fields),
            schema,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=self.rng.randrange(2**31),
        )

    def _text_request(self, template: str, **fields: Any) -> Request:
        """A request for one example text: plain text (``PLAIN_TEXT``) or a ``{"text": ...}`` object."""
        if not PLAIN_TEXT:
            return self._request(template, TEXT_SCHEMA, {"direct": 120, "expand": 160}[template], **fields)
        mine = self._users_examples()
        req = self._request(template, TEXT_SCHEMA, TEXT_TOKENS[template], system="system_plain", mine=mine, **fields)
        req.plain = True
        if template == "direct":  # what a base model answers instead (LLM.is_base_model)
            req.frame = self._frame(mine)
        return req

    def _next_writer(self) -> LLM:
        """The writer with the fewest kept examples of this class (the first on a tie): an even share
        for each, also when a run resumes or tops up a class."""
        if len(self.writers) == 1:
            return self.writers[0]
        have = Counter(
            e.meta.get("model") for e in self.ctx.store.examples(["generated"]) if e.class_name == self.class_name
        )
        return min(self.writers, key=lambda w: have[w.id])

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
            writer = self._next_writer()
            if self.strategy == "direct":
                # one writer per batch, so a batch of 8 is at most 8 over its share
                size = 8 if len(self.writers) == 1 else max(1, min(8, (need - kept) // len(self.writers)))
                batch: list[str | None] = [None] * min(need - kept, size)
                reqs = [self._text_request("direct") for _ in batch]
            elif not self.unused:
                self._more_summaries()
                calls += 1
                continue
            else:
                batch = [self.unused.pop(0) for _ in range(min(len(self.unused), need - kept, 8))]
                reqs = [self._text_request("expand", summary=s) for s in batch]
            for i, out in writer.generate_json_many(reqs):
                calls += 1
                self.report.expand_calls += 1
                reason = self._consider(out, taken)
                if reason is not None:
                    self.report.dropped[reason] += 1
                    continue
                text = out["text"]  # _consider stored it stripped and normalised
                self.report.expanded += 1
                taken[dedup_key(text)] = self.class_name
                self.ctx.store.add(self.class_name, [text], source="generated", meta=self._meta(batch[i], writer))
                self.made[text] = writer.id
                kept += 1
                if bar is not None:
                    bar.update(1)
                if kept >= need:
                    break
        return kept

    def _meta(self, summary: str | None, writer: LLM) -> dict[str, Any]:
        meta: dict[str, Any] = {"model": writer.id, "phase": "expand" if summary else "direct"}
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
        text = out["text"] = unwrap_quoted(normalize(strip_preamble(text)), self.description, self.drop_echoes)
        reason = reject_reason(text, self.description, self.class_name, self.drop_echoes)
        if reason:
            return reason
        key = dedup_key(text)
        if key in self.rejected:
            return "rejected_before"
        owner = taken.get(key)
        if owner is not None:
            return "duplicate" if owner == self.class_name else "ambiguous"
        return None


def _drop_echo_majority(ctx: GenerationContext, class_name: str, gen: ClassGenerator) -> int:
    """When most of a class's generated examples talk about being an example instead of being one
    (``filters.ECHO_MAJORITY``), drop them and drop such text from then on for that class
    (``gen.drop_echoes``); return how many were dropped. Classes where such text is a minority keep it:
    there it mostly restates the description, which the head can use."""
    if gen.drop_echoes is not None or filters.ECHO_MAJORITY >= 1.0:  # decided, or off (the default): no scan
        return 0
    made = [e.text for e in ctx.store.examples(["generated"]) if e.class_name == class_name]
    about = {t for t in made if echoes(t, gen.description)}
    if not made or len(about) <= filters.ECHO_MAJORITY * len(made):
        return 0
    gen.drop_echoes = True
    ctx.store.remove(lambda e: e.class_name == class_name and e.source == "generated" and e.text in about)
    gen.rejected.update(dedup_key(t) for t in about)
    gen.report.dropped["about_an_example"] += len(about)
    log.info("class %r: %d of %d generated examples talk about being an example; generating others", class_name,
             len(about), len(made))  # fmt: skip
    return len(about)


def _embedding_filter(ctx: GenerationContext, class_name: str, gen: ClassGenerator) -> int:
    """Drop generated examples that are near-duplicates of an earlier one of their class, or that sit
    closer to another class's description than to their own (the tiny model drifted); for multi-label
    classes, closer to ``MULTI_LABEL_AGREEMENT_RANK`` or more others.

    Idempotent, so it can run again over examples an interrupted run made but never filtered.
    """
    names = list(ctx.descriptions)
    D = ctx.embedder.embed([ctx.descriptions[c] for c in names], cache=ctx.cache)
    own = names.index(class_name) if class_name in ctx.descriptions else None
    exs = [e for e in ctx.store if e.class_name == class_name and e.source in ("user", "generated")]
    if not exs:
        return 0
    X = ctx.embedder.embed([e.text for e in exs], cache=ctx.cache)
    sim = X @ X.T  # all pairwise cosines at once
    to_desc = X @ D[own] if own is not None else np.full(len(exs), -np.inf)
    # how many other descriptions each example is nearer to than to its own (0: its own is nearest;
    # a tie goes to the class listed first, as argmax breaks it)
    if own is not None:
        to_all = X @ D.T
        mine = to_all[:, own : own + 1]
        outranked = (to_all > mine).sum(1) + (to_all[:, :own] == mine).sum(1)
    allowed = MULTI_LABEL_AGREEMENT_RANK - 1 if ctx.multi_label else 0
    kept = np.zeros(len(exs), dtype=bool)  # earlier examples still in; the description counts as kept
    drop: dict[str, str] = {}
    for j, e in enumerate(exs):
        if e.source == "generated":
            closest = max(float(to_desc[j]), float(sim[j, :j][kept[:j]].max(initial=-np.inf)))
            if closest > NEAR_DUPLICATE_COSINE:
                drop[e.text] = "near_duplicate"
                continue
            if DESCRIPTION_AGREEMENT and own is not None and len(names) > 1 and outranked[j] > allowed:
                drop[e.text] = "closer_to_other_class"
                continue
        kept[j] = True
    if drop:
        ctx.store.remove(lambda e: e.class_name == class_name and e.source == "generated" and e.text in drop)
        for text, reason in drop.items():
            gen.rejected.add(dedup_key(text))
            gen.report.dropped[reason] += 1
    return len(drop)


def generate_for_classes(ctx: GenerationContext, classes: list[str], shas: dict[str, str]) -> dict[str, Any]:
    """Fill each of ``classes`` up to ``ctx.examples_per_class`` generated examples.

    A class whose generation for the same description already ran to its end and came up short is
    not tried again (it would fall short again, at the same cost) unless ``ctx.regenerate`` is set
    or more examples per class are asked for than that run was. Raises ``GenerationError`` if a
    class ends with no usable example at all (after the other classes are done and stored).
    """
    writers = ctx.writers
    templates = resolve_templates(ctx.templates)
    start, usage0 = time.perf_counter(), [w.usage.as_dict() for w in writers]
    taken = {dedup_key(e.text): e.class_name for e in ctx.store}
    for d_class, d in ctx.descriptions.items():
        taken.setdefault(dedup_key(d), d_class)
    reports: dict[str, ClassReport] = {}
    skipped: list[str] = []
    for c in classes:
        gen = ClassGenerator(ctx, templates, c, shas[c])
        reports[c] = gen.report
        mark = ctx.store.exhausted(c)
        if (
            not ctx.regenerate
            and mark is not None
            and mark["prompt_sha"] == shas[c]
            and mark["examples_per_class"] >= ctx.examples_per_class
        ):
            skipped.append(c)
            continue
        if ctx.filter_generated:  # first, examples an interrupted run made but never filtered
            _embedding_filter(ctx, c, gen)
        _drop_echo_majority(ctx, c, gen)
        for _ in range(MAX_ROUNDS):
            need = ctx.examples_per_class - ctx.store.count(c, "generated")
            if need <= 0:
                break
            gen.report.requested += need
            bar = progress_bar(need, f"generating {c}", "ex", ctx.progress)
            try:
                got = gen.run(need, taken, bar)
            finally:
                if bar is not None:
                    bar.close()
            removed = _embedding_filter(ctx, c, gen) if ctx.filter_generated else 0
            removed += _drop_echo_majority(ctx, c, gen)
            if got == 0 or (removed == 0 and got < need):
                break
        # this run's examples that are still in (the filters may have dropped some it made)
        present = {e.text for e in ctx.store.examples(["generated"])}
        still = [w for t, w in gen.made.items() if t in present]
        gen.report.kept = len(still)
        gen.report.by_writer = dict(Counter(still))
        have = ctx.store.count(c, "generated")
        if have < ctx.examples_per_class:  # reached only when the run ended normally
            ctx.store.mark_exhausted(c, shas[c], ctx.examples_per_class)
            log.warning(
                "class %r: kept %d of %d generated examples (the model's output was mostly filtered out: %s); "
                "later runs with this description keep them; prompt_train(..., regenerate=True) tries again",
                c,
                have,
                ctx.examples_per_class,
                dict(gen.report.dropped),
            )
    if skipped:
        log.info("not generating again for %s: an earlier run with the same description came up short", skipped)
    used = Counter()
    for w, before in zip(writers, usage0):
        used.update({k: v - before[k] for k, v in w.usage.as_dict().items()})
    kept = sum(r.kept for r in reports.values())
    expanded = sum(r.expand_calls for r in reports.values())
    report = {
        "llm": " + ".join(w.id for w in writers),
        "examples_per_class": ctx.examples_per_class,
        "seconds": round(time.perf_counter() - start, 2),
        **{k: used[k] for k in ("calls", "prompt_tokens", "completion_tokens")},
        "kept": kept,
        "kept_ratio": round(kept / expanded, 3) if expanded else None,
        "skipped_short_before": skipped,
        "classes": {c: r.as_dict() for c, r in reports.items()},
    }
    for c in classes:
        if ctx.store.count(c, "generated") == 0 and ctx.store.count(c, "user") == 0:
            dropped = reports[c].as_dict()["dropped"]
            tries = (
                "in an earlier run with this description; prompt_train(..., regenerate=True) tries again"
                if c in skipped
                else f"{reports[c].expand_calls} tries; dropped: {dropped or 'nothing made'}"
            )
            raise GenerationError(
                f"class {c!r}: the LLM produced no usable example ({tries}); reword its description, add a few "
                "examples of your own with add_data_to_class, or use a stronger LLM",
                class_name=c,
                dropped=dropped,
                report=report,
            )
    return report
