"""Spec-string registry shared by embedders and LLMs: ``"kind:model"``, a dict, or an instance."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, base: type, default: str) -> None:
        self.what, self.base, self.default = what, base, default
        self.kinds: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: make ``cls`` reachable as ``"<cls.kind>:<model>"``."""
        self.kinds[cls.kind] = cls
        return cls

    def resolve(self, spec: Any) -> T:
        if spec is None:
            spec = self.default
        if isinstance(spec, self.base):
            return spec
        if isinstance(spec, str):
            kind, sep, model = spec.partition(":")
            if not sep:
                kind, model = self.default.partition(":")[0], spec
            spec = {"kind": kind, "model": model}
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ConfigurationError(
                f"{self.what} must be a spec string like {self.default!r} or a {self.base.__name__}, got {spec!r}"
            )
        cls = self.kinds.get(spec["kind"])
        if cls is None:
            raise ConfigurationError(f"unknown {self.what} kind {spec['kind']!r}; known: {sorted(self.kinds)}")
        if not spec.get("model"):
            raise ConfigurationError(f"{self.what} spec {spec!r} names no model")
        return cls.from_spec(spec)
