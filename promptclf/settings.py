"""The constructor settings in one place: defaults, validation, ``get_params``/``set_params``.

scikit-learn's contract: ``__init__`` only stores settings; they are checked when training starts
(``validate``), not when set, so ``set_params`` and ``sklearn.base.clone`` work on any value and a
bad one is reported by name at the first ``train``. ``SAVED`` are the settings a ``.clf`` carries so
that ``load(...).train()`` trains the same model; the rest are about this machine (a path, a
progress bar) or are backends recorded separately (``llm``, ``embedder``).
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigurationError

STRATEGIES = ("direct", "summaries")
SAVED = (
    "examples_per_class",
    "target_precision",
    "random_state",
    "strategy",
    "templates",
    "filter_generated",
    "llm_label_budget",
    "prior_weight",
    "C",
    "finetune",
    "finetune_budget_s",
    "distill",
    "multi_label",
    "min_labels",
    "long_texts",
    "fast",
)
MAX_EXAMPLES_PER_CLASS = 10_000
MAX_SEED = 2**32 - 1


def _int(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= int(v) <= hi:
            return f"an integer from {lo} to {hi}"
        return None

    return check


def _real(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
        if ok:
            x = float(v)
            ok = (x > lo if lo_open else x >= lo) and x <= hi
        if not ok:
            return f"a number {'over' if lo_open else 'from'} {lo} {'and at most' if lo_open else 'to'} {hi}"
        return None

    return check


def _choice(*options: Any) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and v in options else f"one of {list(options)}"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "True or False"


def _int_or_auto(lo: int, hi: int) -> Callable[[Any], str | None]:
    as_int = _int(lo, hi)

    def check(v: Any) -> str | None:
        why = None if v == "auto" else as_int(v)
        return None if why is None else f'"auto" or {why}'

    return check


def _bool_or_auto(v: Any) -> str | None:
    return None if isinstance(v, bool) or v == "auto" else 'True, False or "auto"'


def _path(v: Any) -> str | None:
    return None if v is None or isinstance(v, (str, os.PathLike)) else "None or a file path"


def _templates(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        return "None or a dict of template name -> text"
    from .generation.templates import DEFAULT_TEMPLATES

    for k, t in v.items():
        if k not in DEFAULT_TEMPLATES:
            return f"a dict whose keys are among {sorted(DEFAULT_TEMPLATES)} (got {k!r})"
        if not isinstance(t, str) or not t.strip():
            return f"a dict of non-empty strings (template {k!r} is not)"
    return None


def _C(v: Any) -> str | None:
    if v is None or v == "cv":
        return None
    return None if _real(0.0, 1e6, lo_open=True)(v) is None else "None, 'cv' or a positive number"


def _backend(v: Any) -> str | None:
    return None  # resolved (and checked) by the registries on first use


# name -> check returning None when the value is fine, else what it should be
CONSTRAINTS: dict[str, Callable[[Any], str | None]] = {
    "llm": _backend,
    "embedder": _backend,
    "examples_per_class": _int_or_auto(1, MAX_EXAMPLES_PER_CLASS),
    "saved_examples_path": _path,
    "target_precision": _real(0.0, 1.0, lo_open=True),
    "random_state": _int(0, MAX_SEED),
    "strategy": _choice(*STRATEGIES),
    "templates": _templates,
    "filter_generated": _bool,
    "llm_label_budget": _int_or_auto(0, 10**7),
    "prior_weight": _real(0.0, 1e4),
    "C": _C,
    "finetune": _bool_or_auto,
    "finetune_budget_s": _real(0.0, 86_400.0),
    "distill": _bool,
    "multi_label": _bool,
    "min_labels": _int(0, 1),
    "long_texts": _choice("chunk", "truncate"),
    "fast": _bool_or_auto,
    "progress": _bool,
}


def check_setting(name: str, value: Any) -> None:
    """Raise a ``ConfigurationError`` naming ``name`` if ``value`` is not allowed for it."""
    want = CONSTRAINTS[name](value)
    if want is not None:
        raise ConfigurationError(f"{name} must be {want}, got {value!r}", setting=name)


def validate(params: Mapping[str, Any]) -> None:
    """Check every known setting in ``params``."""
    for name, value in params.items():
        if name in CONSTRAINTS:
            check_setting(name, value)


class ParamsMixin:
    """``get_params``/``set_params`` from the ``__init__`` signature, as ``sklearn.base.BaseEstimator`` does."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor settings, by name (``deep`` is accepted for scikit-learn; backends have none)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Change settings; they are checked when training next starts. Returns ``self``."""
        names = set(self._param_names())
        for name, value in params.items():
            if name not in names:
                raise ConfigurationError(
                    f"{type(self).__name__} has no setting {name!r}; settings: {sorted(names)}", setting=name
                )
            setattr(self, name, value)
            self._settings_changed(name)
        return self

    def _settings_changed(self, name: str) -> None:
        """Hook: drop working state made from a setting that changed."""
