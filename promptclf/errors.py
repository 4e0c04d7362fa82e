"""One exception hierarchy, so callers can catch ``PromptClfError`` and nothing from deep inside a library.

Errors carry fields (the setting, the member, the backend, the status code) besides the message, so
code can react without parsing text; ``str(error)`` stays the one line the CLI prints.
"""

from __future__ import annotations

from typing import Any


class PromptClfError(Exception):
    """Base class of every error promptclf raises on purpose."""


class ConfigurationError(PromptClfError, ValueError):
    """A setting, spec string, credential or backend is unusable.

    Attributes
    ----------
    setting : str or None
        The constructor setting or option at fault, where there is one.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InvalidInputError(PromptClfError, ValueError):
    """Texts, labels, class names or prompts given by the caller are malformed.

    Attributes
    ----------
    argument : str or None
        The argument at fault (``"texts"``, ``"labels"``, ``"prompts"``), where known.
    index : int or None
        Position of the first bad element, where the argument is a list.
    """

    def __init__(self, message: str, *, argument: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.index = index


class NotFittedError(PromptClfError, AttributeError):
    """The classifier was used before ``train``/``prompt_train`` or ``load``."""


class ModelFileError(PromptClfError):
    """A ``.clf`` file cannot be read or written: corrupt, truncated, tampered with or too new.

    Attributes
    ----------
    path : str or None
        The model file.
    member : str or None
        The member of the archive at fault (``"manifest.json"``, ``"head/coef.npy"``), where one is.
    """

    def __init__(self, message: str, *, path: str | None = None, member: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.member = member


class BackendError(PromptClfError):
    """An LLM or embedding backend failed after retries (server down, bad answers).

    Attributes
    ----------
    backend : str or None
        The backend's id (``"openai:gpt-4o-mini"``) or the server it talked to.
    attempts : int or None
        How many attempts were made before giving up.
    status_code : int or None
        The last HTTP status, where the failure was an HTTP answer.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        attempts: int | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.backend = backend
        self.attempts = attempts
        self.status_code = status_code


class GenerationError(PromptClfError):
    """Synthetic-data generation could not produce the examples asked for.

    Attributes
    ----------
    class_name : str or None
        The class left without usable examples.
    dropped : dict
        Why the model's outputs were dropped, reason -> count.
    report : dict or None
        The whole generation report (every class), as ``generation_report_`` would have been.
    """

    def __init__(
        self,
        message: str,
        *,
        class_name: str | None = None,
        dropped: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.class_name = class_name
        self.dropped = dict(dropped or {})
        self.report = report


class UncalibratedThresholdsWarning(UserWarning):
    """``predict(abstain=True)`` on thresholds that no real label has measured (warned once per model)."""
