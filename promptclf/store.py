"""The example store: every training text with its class and provenance.

Stored as JSON Lines in Lamini's format (``{"class_name": ..., "examples": [...]}``) with additive
provenance fields (``source``, ``meta``), so a Lamini file loads as is and our files stay readable
by Lamini. When the store has a path, each addition is appended at once: an interrupted
generation keeps everything it made.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._atomic import atomic_write
from ._validation import check_class_name, check_examples
from .errors import InvalidInputError

# llm: answers an escalation chain got from an LLM for texts the classifier was unsure of
SOURCES = ("user", "generated", "pseudo", "llm")


@dataclass(frozen=True)
class Example:
    text: str
    class_name: str
    source: str = "user"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _record(class_name: str, texts: list[str], source: str, meta: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {"class_name": class_name, "examples": texts}
    if source != "user":
        rec["source"] = source
    if meta:
        rec["meta"] = meta
    return rec


def _mark_record(class_name: str, mark: dict[str, Any]) -> dict[str, Any]:
    # an empty Lamini record (it only declares the class) with the mark in our additive meta
    return {"class_name": class_name, "examples": [], "source": "generated", "meta": {"exhausted": mark}}


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise InvalidInputError(f"unknown source {source!r}; expected one of {SOURCES}")


@dataclass
class Record:
    """One JSONL line: a class, its source and meta, and its examples (possibly none)."""

    class_name: str
    source: str
    meta: dict[str, Any]
    examples: list[Example]


def parse_records(lines: Iterable[str], origin: str = "examples") -> Iterator[Record]:
    """Parse Lamini-style JSONL lines; a bad line is an ``InvalidInputError`` naming the line."""
    from .safejson import UnsafeJSON, loads

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = loads(line)
        except UnsafeJSON as e:
            raise InvalidInputError(f"{origin}, line {lineno}: {e}", argument=origin) from None
        if not isinstance(rec, dict) or "class_name" not in rec:
            raise InvalidInputError(f"{origin}, line {lineno}: expected an object with 'class_name'", argument=origin)
        try:
            name = check_class_name(rec["class_name"])
            texts = rec.get("examples", rec.get("example", []))
            texts = check_examples(texts) if texts else []
        except InvalidInputError as e:
            raise InvalidInputError(f"{origin}, line {lineno}: {e}", argument=origin) from None
        source = rec.get("source", "user")
        if source not in SOURCES:
            raise InvalidInputError(f"{origin}, line {lineno}: unknown source {source!r}", argument=origin)
        meta = rec.get("meta") or {}
        if not isinstance(meta, dict):
            raise InvalidInputError(f"{origin}, line {lineno}: 'meta' must be an object", argument=origin)
        yield Record(name, source, meta, [Example(t, name, source, dict(meta)) for t in texts])


class ExampleStore:
    """Ordered, de-duplicated (per class, text and source) collection of examples."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._examples: list[Example] = []
        self._keys: set[tuple[str, str, str]] = set()
        self._classes: list[str] = []  # insertion order, includes classes with no examples yet
        # class -> {"prompt_sha", "examples_per_class"}: generation for that description ran to its end
        # and still came up short; a later prompt_train does not try again unless asked (or asked for more)
        self._exhausted: dict[str, dict[str, Any]] = {}

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self._examples)

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def examples(self, sources: Iterable[str] | None = None) -> list[Example]:
        wanted = set(SOURCES if sources is None else sources)
        return [e for e in self._examples if e.source in wanted]

    def by_class(self, sources: Iterable[str] | None = None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in self._classes}
        for e in self.examples(sources):
            out[e.class_name].append(e.text)
        return out

    def count(self, class_name: str, source: str | None = None) -> int:
        return sum(1 for e in self._examples if e.class_name == class_name and (source is None or e.source == source))

    def exhausted(self, class_name: str) -> dict[str, Any] | None:
        """The shortfall remembered for a class's generation, if any (see ``mark_exhausted``)."""
        return self._exhausted.get(class_name)

    def mark_exhausted(
        self, class_name: str, prompt_sha: str, examples_per_class: int, *, persist: bool = True
    ) -> None:
        """Remember that generating ``examples_per_class`` for this description ended short."""
        mark = {"prompt_sha": prompt_sha, "examples_per_class": int(examples_per_class)}
        if self._exhausted.get(class_name) == mark:
            return
        self.add_class(class_name)
        self._exhausted[class_name] = mark
        if persist:
            self._append([_mark_record(class_name, mark)])

    # -- writing -------------------------------------------------------------------------------
    def add_class(self, class_name: str) -> None:
        if class_name not in self._classes:  # names already here were checked when they came
            self._classes.append(check_class_name(class_name))

    def _insert(self, e: Example) -> bool:
        key = (e.class_name, e.text, e.source)
        if key in self._keys:
            return False
        self.add_class(e.class_name)
        self._keys.add(key)
        self._examples.append(e)
        return True

    def _append(self, records: list[dict[str, Any]]) -> None:
        """Append records to ``path`` and fsync: what was added survives a crash a moment later."""
        if not records or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def add(
        self,
        class_name: str,
        texts: str | Iterable[str],
        source: str = "user",
        meta: dict[str, Any] | None = None,
        *,
        persist: bool = True,
    ) -> list[str]:
        """Add texts of one class; return those that were new. Appends them to ``path`` when one is set."""
        check_class_name(class_name)
        _check_source(source)
        meta = dict(meta or {})
        self.add_class(class_name)
        added = [t for t in check_examples(texts) if self._insert(Example(t, class_name, source, meta))]
        if added and persist:
            self._append([_record(class_name, added, source, meta)])
        return added

    def extend(self, examples: Iterable[Example], *, persist: bool = True) -> int:
        """Add many examples (each with its own meta) in one append; return how many were new."""
        new = []
        for e in examples:
            _check_source(e.source)  # the class name is checked by _insert (add_class), once per class
            if self._insert(e):
                new.append(e)
        if persist:
            self._append([_record(e.class_name, [e.text], e.source, e.meta) for e in new])
        return len(new)

    def remove(self, predicate) -> int:
        """Drop examples for which ``predicate(example)`` is true; rewrite the file if there is one."""
        keep = [e for e in self._examples if not predicate(e)]
        removed = len(self._examples) - len(keep)
        if removed:
            self._examples = keep
            self._keys = {(e.class_name, e.text, e.source) for e in keep}
            if self.path is not None:
                self.save(self.path)
        return removed

    # -- files ---------------------------------------------------------------------------------
    def to_jsonl(self) -> str:
        """Group consecutive examples that share class, source and meta into one Lamini record."""
        lines: list[str] = []
        group: list[Example] = []

        def flush() -> None:
            if group:
                g0 = group[0]
                rec = _record(g0.class_name, [e.text for e in group], g0.source, g0.meta)
                lines.append(json.dumps(rec, ensure_ascii=False))
                group.clear()

        for e in self._examples:
            if group and (e.class_name, e.source, e.meta) != (group[0].class_name, group[0].source, group[0].meta):
                flush()
            group.append(e)
        flush()
        seen = {e.class_name for e in self._examples}
        for c in self._classes:  # classes declared without examples survive a round trip
            if c not in seen and c not in self._exhausted:
                lines.append(json.dumps({"class_name": c, "examples": []}, ensure_ascii=False))
        for c, mark in self._exhausted.items():
            lines.append(json.dumps(_mark_record(c, mark), ensure_ascii=False))
        return "".join(line + "\n" for line in lines)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the whole store atomically (temporary file, then rename)."""
        atomic_write(Path(path), self.to_jsonl().encode("utf-8"))

    @classmethod
    def from_jsonl(
        cls, text: str, origin: str = "examples", path: str | os.PathLike[str] | None = None
    ) -> ExampleStore:
        store = cls(path)
        for rec in parse_records(io.StringIO(text), origin):
            store.add_class(rec.class_name)  # a record with no examples still declares its class
            store.extend(rec.examples, persist=False)
            mark = rec.meta.get("exhausted") if not rec.examples and rec.source == "generated" else None
            if isinstance(mark, dict) and isinstance(mark.get("prompt_sha"), str):
                n = mark.get("examples_per_class")
                if isinstance(n, int) and not isinstance(n, bool):
                    store.mark_exhausted(rec.class_name, mark["prompt_sha"], n, persist=False)
        return store

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, attach: bool = True) -> ExampleStore:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInputError(f"examples file not found: {p}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInputError(f"cannot read examples file {p}: {e}") from None
        return cls.from_jsonl(text, origin=str(p), path=p if attach else None)
