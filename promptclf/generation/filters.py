"""Text-level filters for generated examples: cheap checks that need no model.

Each returns a reason string when the text must be dropped, so the report can say why.
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)
_LIST_MARK = re.compile(r"(^|\s)(\d+[.)]|[-*•])\s")
_META = re.compile(
    r"(\b(this|the) category\b|\b(category|summary|description)\s*:|training data|text classifier|\bjson\b)", re.I
)
# Text about being an example rather than an example: "One example of such a text is: ...", "I can
# certainly help with that", "a realistic ...": 9-37% of the examples the tiny local LLM kept for the
# dev sets (trec6's "description" class: 18-22 of 30), 0.1-0.5% of those sets' real texts. Words the
# class's description itself uses are not counted.
_ECHO = re.compile(
    r"\b(examples?|realistic)\b|\bsuch an? (text|sentence)\b|\bone or two sentences\b"
    r"|^(i('ll| will| can| could| would)|sure|certainly|of course|okay)\b",
    re.I,
)
_QUOTED = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')
# A switch for the benchmarks' ablations, not a setting: drop such text, or keep the example quoted in
# it, for every class. Off: from the prompt alone, over three samples of each dev set, it lifted trec6
# by 3.2 points of macro-F1 on average but cost sst2 0.9 and ag_news 0.4 (bench/prompt_seeds.py;
# BENCHMARKS.md, "The prompt alone, over several samples"). Where such text is rare it mostly
# restates the class's description, which the head can use.
ECHO_FILTER = False
# Where it is not rare: when more than this share of a class's kept examples is such text, generation
# drops them and goes on with the filter on for that class (1.0: never). A switch, off: over three
# samples per set (bench/prompt_seeds.py) 0.5 fired on trec6's "description" class every time and lifted
# trec6 from +8.5 to +12.5 points over zero-shot on average, but on the held-back newsgroups_long it
# fired in two samples of three and cost 4.1 and 1.1 points (0.842 -> 0.801, 0.851 -> 0.840): in posts,
# "example" is often part of a good example ("As a recent example, I used a PC..."), which it dropped.
# A gain on a dev set that a held-back set does not keep (BENCHMARKS.md, "The prompt alone, over several
# samples").
ECHO_MAJORITY = 1.0
_PLACEHOLDER = re.compile(r"\[[^\]]{2,40}\]|</?[a-z][a-z0-9]*[\s>/]|\{\w+\}|\bx{3,}\b", re.I)
MIN_WORDS, MAX_WORDS = 3, 120


def normalize(text: str) -> str:
    """Collapse whitespace and strip wrapping quotes: the form examples are compared and stored in."""
    t = " ".join(str(text).split())
    while len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'`":
        t = t[1:-1].strip()
    return t


# "Sure! Here's an example: ...", "Example: ..." : a lead-in small models put before the text
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|okay|ok|certainly)\b[,.!]?\s*)?"
    r"(?:here(?:'s| is)\b[^:\n]{0,60}:|(?:example|text|answer|output)\s*(?:\d+\s*)?:)\s*",
    re.I,
)


def strip_preamble(text: str) -> str:
    """The text without a lead-in such as "Here's an example:" (kept whole if nothing follows it)."""
    rest = _PREAMBLE.sub("", str(text), count=1)
    return rest if rest.strip() else str(text)


def echoes(text: str, description: str) -> bool:
    """Whether ``text`` talks about being an example (``_ECHO``), in words its description does not use."""
    own = set(words(description))
    return any(not set(words(m.group(0))) <= own for m in _ECHO.finditer(text))


def _dropping(drop_echoes: bool | None) -> bool:
    """Whether text about being an example is dropped: ``drop_echoes``, or ``ECHO_FILTER`` when None."""
    return ECHO_FILTER if drop_echoes is None else drop_echoes


def unwrap_quoted(text: str, description: str, drop_echoes: bool | None = None) -> str:
    """The example inside text about an example: 'One example of such a text is: "The plot drags."'
    gives "The plot drags." (the longest quoted part that is a text of its own); ``text`` otherwise,
    or when such text is not being dropped (``drop_echoes``; None: ``ECHO_FILTER``)."""
    if not _dropping(drop_echoes) or not echoes(text, description):
        return text
    parts = [normalize(a or b) for a, b in _QUOTED.findall(text)]
    parts = [p for p in parts if len(words(p)) >= MIN_WORDS and not echoes(p, description)]
    return max(parts, key=len) if parts else text


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def dedup_key(text: str) -> str:
    return " ".join(words(text))


def degenerate(ws: list[str]) -> bool:
    """Repetition loops, the typical failure of tiny models."""
    if len(ws) >= 8:
        grams = Counter(zip(ws, ws[1:], ws[2:]))
        if grams and grams.most_common(1)[0][1] >= 3:
            return True
    return len(ws) >= 12 and len(set(ws)) / len(ws) < 0.4


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def reject_reason(text: str, description: str, class_name: str, drop_echoes: bool | None = None) -> str | None:
    """Why ``text`` is not kept as an example of ``class_name``, or None; ``drop_echoes``: whether text
    about being an example is dropped (None: ``ECHO_FILTER``)."""
    ws = words(text)
    if not ws:
        return "empty"
    if len(ws) < MIN_WORDS:
        return "too_short"
    if len(ws) > MAX_WORDS:
        return "too_long"
    if degenerate(ws):
        return "degenerate"
    key = " ".join(ws)
    desc_ws = words(description)
    desc_set = set(desc_ws)
    inside = sum(w in desc_set for w in ws) / len(ws)  # a truncated or reworded copy stays inside the description
    if key in " ".join(desc_ws) or jaccard(set(ws), desc_set) >= 0.6 or (len(ws) >= 5 and inside >= 0.8):
        return "copies_description"
    if _PLACEHOLDER.search(text):
        return "placeholder"
    if _META.search(text) or key == dedup_key(class_name):
        return "prompt_leak"
    if _dropping(drop_echoes) and echoes(text, description):
        return "about_an_example"
    if len(_LIST_MARK.findall(text)) >= 2:
        return "list_not_text"
    return None
