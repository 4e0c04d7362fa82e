"""Input checks shared by the classifier, the store and the CLI, so every entry point says the same thing."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidInputError


def _check_unicode(text: str, what: str) -> None:
    """A lone surrogate (``"\\ud800"``) is a str Python accepts but no tokenizer or file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"{what} is not valid Unicode (a lone surrogate {text[e.start]!r} at position {e.start})",
            argument=what.split("[")[0],
        ) from None


def check_class_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(
            f"class name must be a string, got {type(name).__name__}: {name!r}", argument="class_name"
        )
    if not name.strip():
        raise InvalidInputError("class name must not be empty", argument="class_name")
    _check_unicode(name, "class name")
    return name


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Accept a string, or a list/tuple/iterable/1-d array of strings; name the first bad element by position."""
    if isinstance(texts, str):
        _check_unicode(texts, what)
        return [texts]
    if texts is None:
        raise InvalidInputError(f"{what} must be a string or a list of strings, got None", argument=what)
    if getattr(texts, "ndim", 1) != 1:  # numpy: a 0-d array is not iterable, a 2-d one yields rows
        raise InvalidInputError(
            f"{what} must be a string or a 1-d list of strings, got a {texts.ndim}-d array",  # type: ignore[attr-defined]
            argument=what,
        )
    if isinstance(texts, (Mapping, bytes)) or not isinstance(texts, Iterable):
        raise InvalidInputError(
            f"{what} must be a string or a list of strings, got {type(texts).__name__}", argument=what
        )
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInputError(
                f"{what}[{i}] must be a string, got {type(t).__name__}: {t!r}", argument=what, index=i
            )
        _check_unicode(t, f"{what}[{i}]")
    return [str(t) for t in out]  # numpy's str_ is a str subclass; keep plain strings


def check_examples(examples: object) -> list[str]:
    out = check_texts(examples, "examples")
    for i, t in enumerate(out):
        if not t.strip():
            raise InvalidInputError(f"examples[{i}] is empty", argument="examples", index=i)
    return out


def check_prompts(prompts: object) -> dict[str, str]:
    if not isinstance(prompts, Mapping):
        raise InvalidInputError(
            f"prompts must be a dict of class name -> description, got {type(prompts).__name__}", argument="prompts"
        )
    if not prompts:
        raise InvalidInputError("prompts is empty: give one description per class", argument="prompts")
    out: dict[str, str] = {}
    for name, desc in prompts.items():
        check_class_name(name)
        if not isinstance(desc, str):
            raise InvalidInputError(
                f"description of class {name!r} must be a string, got {type(desc).__name__}", argument="prompts"
            )
        if not desc.strip():
            raise InvalidInputError(f"description of class {name!r} is empty", argument="prompts")
        _check_unicode(desc, f"description of class {name!r}")
        out[name] = " ".join(desc.split())
    return out


def check_positive_int(value: Any, what: str, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidInputError(
            f"{what} must be a positive integer{' or None' if allow_none else ''}, got {value!r}", argument=what
        )
    return int(value)


def check_probability(value: Any, what: str, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0
    if not ok:
        raise InvalidInputError(
            f"{what} must be a number from 0 to 1{' or None' if allow_none else ''}, got {value!r}", argument=what
        )
    return float(value)
