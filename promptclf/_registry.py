"""Spec-string registry shared by embedders and LLMs: ``"kind:model"``, a dict, or an instance."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")


class Backend:
    """What every embedder and LLM backend has: a kind (its registry key), a model, and a JSON spec."""

    kind: ClassVar[str] = ""
    # True for backends that send texts over the network: a model file may name one (its model
    # only), but never chooses one; the user passes it, or allows it, in their own code.
    hosted: ClassVar[bool] = False

    def __init__(self, model: str) -> None:
        self.model = model

    @property
    def id(self) -> str:
        """Identity in caches, reports and model files."""
        return f"{self.kind}:{self.model}"

    def to_spec(self) -> dict[str, Any]:
        """JSON-safe settings that rebuild this backend (never secrets)."""
        return {"kind": self.kind, "model": self.model}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Backend:
        return cls(spec["model"])


def spec_id(spec: dict[str, Any]) -> str:
    return f"{spec.get('kind')}:{spec.get('model')}"


class Refused:
    """Mixin for stand-ins of a hosted backend that a model file names but the user has not passed:
    loading works, the first use raises a ``ConfigurationError`` saying what to pass; nothing is sent."""

    kind = "refused"

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        super().__init__(str(spec.get("model")))  # type: ignore[call-arg]
        self._spec = {"kind": spec.get("kind"), "model": spec.get("model")}
        self.where = where

    def to_spec(self) -> dict[str, Any]:
        return dict(self._spec)

    def refusal(self, what: str, setting: str, cls: str) -> ConfigurationError:
        sid = spec_id(self._spec)
        return ConfigurationError(
            f"{self.where} names the hosted {what} {sid}; a model file never chooses where your texts are sent, "
            f'so pass it yourself: load(path, {setting}="{sid}") (key and address from OPENAI_API_KEY and '
            f"OPENAI_BASE_URL) or an {cls}(...) object, or load(path, allow_hosted=True)",
            setting=setting,
        )


class Registry(Generic[T]):
    def __init__(self, what: str, base: type, default: str) -> None:
        self.what, self.base, self.default = what, base, default
        self.kinds: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: make ``cls`` reachable as ``"<cls.kind>:<model>"``."""
        self.kinds[cls.kind] = cls
        return cls

    def unregister(self, kind: str) -> None:
        """Forget a kind (for plugins and tests that register a backend for a while)."""
        self.kinds.pop(kind, None)

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
        if not isinstance(spec.get("model"), str) or not spec["model"]:
            raise ConfigurationError(f"{self.what} spec {spec!r} names no model")
        return cls.from_spec(spec)

    def is_hosted(self, spec: dict[str, Any]) -> bool:
        """Would this spec send texts over the network? (An unknown kind fails later, when resolved.)"""
        cls = self.kinds.get(spec.get("kind"))  # type: ignore[arg-type]
        return cls is not None and bool(cls.hosted)
