"""What the hosted embedder and LLM share: client construction and tenacity retries on transient errors only."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from .errors import BackendError, ConfigurationError

log = logging.getLogger("promptclf")
T = TypeVar("T")


def make_client(base_url: str | None, api_key: str | None, timeout: float):
    """An ``openai.OpenAI`` client with its own retries off (tenacity does them, on transient errors only)."""
    try:
        import openai
    except ImportError as e:  # pragma: no cover - openai is a hard dependency
        raise ConfigurationError("the 'openai' package is required for hosted backends") from e
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if base_url is None:
            raise ConfigurationError(
                "no API key: pass api_key=... or set OPENAI_API_KEY (for a local OpenAI-compatible "
                "server pass base_url=...)"
            )
        api_key = "EMPTY"  # local servers (vLLM, llama.cpp, Ollama) accept any key
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


class OpenAICompatible:
    """Connection settings shared by the hosted backends; the client is made on first use."""

    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 4
    _client = None

    def _connect(self, base_url: str | None, api_key: str | None, timeout: float, max_retries: int) -> None:
        self.base_url, self.api_key, self.timeout, self.max_retries = base_url, api_key, timeout, max_retries
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = make_client(self.base_url, self.api_key, self.timeout)
        return self._client

    def to_spec(self) -> dict:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}  # never the key

    @classmethod
    def from_spec(cls, spec: dict):
        return cls(spec["model"], base_url=spec.get("base_url"))


def is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def describe(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        msg = getattr(exc, "message", None) or str(exc)
        return f"HTTP {exc.status_code}: {msg}"
    return f"{type(exc).__name__}: {exc}"


def call_with_retries(fn: Callable[[], T], *, what: str, max_retries: int, max_wait: float = 20.0) -> T:
    """Run ``fn``; retry transient failures with exponential backoff and jitter; translate errors.

    Authentication and request errors fail at once as ``ConfigurationError``: retrying them only
    delays the message the user needs.
    """
    import openai
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_exponential_jitter(initial=0.5, max=max_wait),
        before_sleep=lambda rs: log.warning(
            "%s failed (%s); retry %d of %d", what, describe(rs.outcome.exception()), rs.attempt_number, max_retries
        ),
        reraise=False,
    )
    try:
        return retrying(fn)
    except RetryError as e:
        exc = e.last_attempt.exception()
        raise BackendError(f"{what} failed after {max_retries + 1} attempts: {describe(exc)}") from exc
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        raise ConfigurationError(f"{what}: the server refused the credentials ({describe(e)})") from e
    except openai.NotFoundError as e:
        raise ConfigurationError(f"{what}: not found, check the model name and base_url ({describe(e)})") from e
    except openai.APIStatusError as e:
        raise ConfigurationError(f"{what}: the server rejected the request ({describe(e)})") from e
    except openai.APIError as e:  # transient errors once retries are off (max_retries=0)
        raise BackendError(f"{what} failed: {describe(e)}") from e
