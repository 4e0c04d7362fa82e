"""promptclf: train a text classifier from a prompt.

Importing the package is light: numpy, scikit-learn, torch and llama.cpp load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    BackendError,
    ConfigurationError,
    GenerationError,
    InvalidInputError,
    ModelFileError,
    NotFittedError,
    PromptClfError,
    UncalibratedThresholdsWarning,
)

if TYPE_CHECKING:
    from .classifier import PromptClassifier
    from .escalation import Chain

__all__ = [
    "BackendError",
    "Chain",
    "ConfigurationError",
    "GenerationError",
    "InvalidInputError",
    "ModelFileError",
    "NotFittedError",
    "PromptClassifier",
    "PromptClfError",
    "Suggestion",
    "UncalibratedThresholdsWarning",
    "__version__",
    "load",
]


def load(path: Any, **kwargs: Any) -> PromptClassifier:
    """Load a ``.clf`` model file (see ``PromptClassifier.load``)."""
    from .classifier import PromptClassifier

    return PromptClassifier.load(path, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "PromptClassifier":
        from .classifier import PromptClassifier

        return PromptClassifier
    if name == "Suggestion":
        from .review.suggest import Suggestion

        return Suggestion
    if name == "Chain":
        from .escalation import Chain

        return Chain
    raise AttributeError(f"module 'promptclf' has no attribute {name!r}")
