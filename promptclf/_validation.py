"""Input checks shared by the classifier, the store and the CLI, so every entry point says the same thing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import InvalidInputError


def check_class_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"class name must be a string, got {type(name).__name__}: {name!r}")
    if not name.strip():
        raise InvalidInputError("class name must not be empty")
    return name


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Accept a list/tuple/iterable of strings; name the first bad element by position."""
    if isinstance(texts, str):
        return [texts]
    if texts is None:
        raise InvalidInputError(f"{what} must be a string or a list of strings, got None")
    if isinstance(texts, Mapping) or not isinstance(texts, Iterable):
        raise InvalidInputError(f"{what} must be a string or a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInputError(f"{what}[{i}] must be a string, got {type(t).__name__}: {t!r}")
    return out


def check_examples(examples: object) -> list[str]:
    out = check_texts(examples, "examples")
    for i, t in enumerate(out):
        if not t.strip():
            raise InvalidInputError(f"examples[{i}] is empty")
    return out


def check_prompts(prompts: object) -> dict[str, str]:
    if not isinstance(prompts, Mapping):
        raise InvalidInputError(f"prompts must be a dict of class name -> description, got {type(prompts).__name__}")
    if not prompts:
        raise InvalidInputError("prompts is empty: give one description per class")
    out: dict[str, str] = {}
    for name, desc in prompts.items():
        check_class_name(name)
        if not isinstance(desc, str):
            raise InvalidInputError(f"description of class {name!r} must be a string, got {type(desc).__name__}")
        if not desc.strip():
            raise InvalidInputError(f"description of class {name!r} is empty")
        out[name] = " ".join(desc.split())
    return out
