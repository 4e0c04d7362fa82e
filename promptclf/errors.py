"""One exception hierarchy, so callers can catch ``PromptClfError`` and nothing from deep inside a library."""

from __future__ import annotations


class PromptClfError(Exception):
    """Base class of every error promptclf raises on purpose."""


class ConfigurationError(PromptClfError, ValueError):
    """A setting, spec string, credential or backend is unusable."""


class InvalidInputError(PromptClfError, ValueError):
    """Texts, labels, class names or prompts given by the caller are malformed."""


class NotFittedError(PromptClfError, AttributeError):
    """The classifier was used before ``train``/``prompt_train`` or ``load``."""


class ModelFileError(PromptClfError):
    """A ``.clf`` file cannot be read or written: corrupt, truncated, tampered with or too new."""


class BackendError(PromptClfError):
    """An LLM or embedding backend failed after retries (server down, bad answers)."""


class GenerationError(PromptClfError):
    """Synthetic-data generation could not produce the examples asked for."""
