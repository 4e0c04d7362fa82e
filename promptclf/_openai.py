"""What the hosted embedder and LLM share: the client, an overall deadline per request, reading the
server's answer defensively, and tenacity retries on transient errors only.

A server can misbehave in ways the openai client passes through as raw exceptions: a 200 whose
body is HTML or broken JSON, an object without ``choices`` or ``data``, or a body dripped one byte
a second (the client's timeout is per read, so that never ends). Here the raw body is read and
checked by us, each of those becomes a ``BadAnswer`` (retried: a flaky proxy may answer properly
next time) and, after the retries, a ``BackendError`` naming the server and what it sent.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import BackendError, ConfigurationError

log = logging.getLogger("promptclf")
T = TypeVar("T")


class BadAnswer(Exception):
    """The server answered, but not with what the API promises (retried like a transient error)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _deadline_transport(deadline_s: float):
    """An httpx transport that ends any request, body included, ``deadline_s`` after it starts."""
    import httpx2 as httpx

    class DeadlineStream(httpx.SyncByteStream):
        def __init__(self, inner, deadline: float) -> None:
            self.inner, self.deadline = inner, deadline

        def __iter__(self):
            for chunk in self.inner:
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout(f"no complete answer within {deadline_s:g} s")
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class DeadlineTransport(httpx.HTTPTransport):
        def handle_request(self, request):
            deadline = time.monotonic() + deadline_s
            response = super().handle_request(request)
            response.stream = DeadlineStream(response.stream, deadline)
            return response

    return DeadlineTransport()


def make_client(base_url: str | None, api_key: str | None, timeout: float):
    """An ``openai.OpenAI`` client: its own retries off (tenacity does them), ``timeout`` per request in all."""
    try:
        import httpx2 as httpx
        import openai
    except ImportError as e:  # pragma: no cover - openai is a hard dependency
        raise ConfigurationError("the 'openai' package is required for hosted backends") from e
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if base_url is None:
            raise ConfigurationError(
                "no API key: pass api_key=... or set OPENAI_API_KEY (for a local OpenAI-compatible "
                "server pass base_url=...)",
                setting="api_key",
            )
        api_key = "EMPTY"  # local servers (vLLM, llama.cpp, Ollama) accept any key
    http = httpx.Client(transport=_deadline_transport(timeout), timeout=timeout, follow_redirects=True)
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=http)


class OpenAICompatible:
    """Connection settings shared by the hosted backends; the client is made on first use."""

    hosted = True
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

    @property
    def server(self) -> str:
        """The address requests go to, for messages."""
        return str(self.client.base_url).rstrip("/")

    def to_spec(self) -> dict:
        # The model name only: never the key, and never the address, so that a model file written
        # from this spec cannot send anyone's texts to a server they did not name themselves.
        return {"kind": self.kind, "model": self.model}  # type: ignore[attr-defined]

    @classmethod
    def from_spec(cls, spec: dict):
        return cls(spec["model"], base_url=spec.get("base_url"))

    def _answer(self, raw: Any) -> dict[str, Any]:
        """The JSON object a raw response carries, or ``BadAnswer`` saying what came instead."""
        from .safejson import UnsafeJSON, loads

        http = raw.http_response
        body = http.content
        try:
            obj = loads(body)
        except UnsafeJSON as e:
            raise BadAnswer(
                f"{self.server} answered HTTP {http.status_code} with {_snippet(body)} ({e})", http.status_code
            ) from None
        if not isinstance(obj, dict):
            raise BadAnswer(
                f"{self.server} answered with JSON that is not an object: {_snippet(body)}", http.status_code
            )
        return obj


def _snippet(body: bytes, n: int = 120) -> str:
    text = body[:n].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(body) > n else "")) if body else "an empty body"


def is_transient(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (BadAnswer, openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def describe(exc: BaseException) -> str:
    import openai

    if isinstance(exc, openai.APIStatusError):
        msg = getattr(exc, "message", None) or str(exc)
        return f"HTTP {exc.status_code}: {msg}"
    if isinstance(exc, BadAnswer):
        return str(exc)
    cause = f" ({exc.__cause__})" if isinstance(exc, openai.APITimeoutError) and exc.__cause__ else ""
    return f"{type(exc).__name__}: {exc}{cause}"


def _status(exc: BaseException | None) -> int | None:
    return getattr(exc, "status_code", None)


def call_with_retries(
    fn: Callable[[], T], *, what: str, max_retries: int, backend: str | None = None, max_wait: float = 20.0
) -> T:
    """Run ``fn``; retry transient failures with exponential backoff and jitter; translate errors.

    Authentication and request errors fail at once as ``ConfigurationError``: retrying them only
    delays the message the user needs. Transient ones (429, 5xx, timeouts, dropped connections,
    malformed answers) end, after ``max_retries`` retries, in a ``BackendError`` carrying the
    backend, the number of attempts and the last HTTP status.
    """
    import openai
    from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

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
        attempts = e.last_attempt.attempt_number
        raise BackendError(
            f"{what} failed after {attempts} attempts: {describe(exc)}",
            backend=backend,
            attempts=attempts,
            status_code=_status(exc),
        ) from exc
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        raise ConfigurationError(
            f"{what}: the server refused the credentials ({describe(e)})", setting="api_key"
        ) from e
    except openai.NotFoundError as e:
        raise ConfigurationError(
            f"{what}: not found, check the model name and base_url ({describe(e)})", setting="model"
        ) from e
    except openai.APIStatusError as e:
        raise ConfigurationError(f"{what}: the server rejected the request ({describe(e)})") from e
    except openai.APIError as e:  # anything else the client raises: not retried, still ours
        raise BackendError(f"{what} failed: {describe(e)}", backend=backend, attempts=1, status_code=_status(e)) from e
