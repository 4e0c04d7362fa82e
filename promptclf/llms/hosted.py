"""Generation through OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from .._openai import BadAnswer, OpenAICompatible, call_with_retries
from .base import LLM, Messages, Request, parse_json_object, register_llm

log = logging.getLogger("promptclf")
# Status codes with which servers refuse a response_format they do not know.
_UNSUPPORTED_FORMAT = {400, 422, 501}
# llama-cpp-python's server answers ``json_schema`` with HTTP 500; a 500 counts as a refusal only
# when its message is about the format, so a passing server error is retried, not taken for one.
_FORMAT_WORDS = ("json_schema", "response_format")


def _refuses_format(e) -> bool:
    if e.status_code in _UNSUPPORTED_FORMAT:
        return True
    text = f"{getattr(e, 'message', '')} {getattr(e, 'body', '')}".lower()
    return e.status_code == 500 and any(w in text for w in _FORMAT_WORDS)


@register_llm
class OpenAILLM(OpenAICompatible, LLM):
    kind = "openai"

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_concurrency: int = 4,
        timeout: float = 60.0,
        max_retries: int = 4,
    ) -> None:
        super().__init__(model)
        self._connect(base_url, api_key, timeout, max_retries)
        self.max_concurrency = max_concurrency
        self._mode: str | None = None  # "json_schema" or "json_object", learnt on the first answer
        self._mode_lock = threading.Lock()

    def _request(self, mode: str, messages: Messages, schema: dict[str, Any], **kw: Any):
        if mode == "json_schema":
            fmt = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
        else:
            fmt = {"type": "json_object", "schema": schema}  # the schema is honoured by llama.cpp-style servers
        kw = {k: v for k, v in kw.items() if v is not None}
        raw = self.client.chat.completions.with_raw_response.create(
            model=self.model, messages=messages, response_format=fmt, **kw
        )
        return self._completion(self._answer(raw))

    def _completion(self, obj: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The message content and usage of a chat completion, checked."""
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadAnswer(f"{self.server} answered without choices: {str(obj)[:120]!r}", 200)
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise BadAnswer(f"{self.server} answered with a non-text message: {str(message)[:120]!r}", 200)
        usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
        return content, usage

    def _attempt(self, messages: Messages, schema: dict[str, Any], **kw: Any):
        import openai

        mode = self._mode or "json_schema"
        try:
            resp = self._request(mode, messages, schema, **kw)
        except openai.APIStatusError as e:
            if self._mode is not None or not _refuses_format(e):
                raise
            log.info("%s refused json_schema output (HTTP %s); using json_object with a schema", self.id, e.status_code)
            with self._mode_lock:
                self._mode = "json_object"
            resp = self._request("json_object", messages, schema, **kw)
        else:
            with self._mode_lock:
                self._mode = self._mode or mode
        return resp

    def generate_json(
        self,
        messages: Messages,
        schema: dict[str, Any],
        *,
        temperature: float = 0.8,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> dict[str, Any]:
        content, usage = call_with_retries(
            lambda: self._attempt(messages, schema, temperature=temperature, max_tokens=max_tokens, seed=seed),
            what=f"generation with {self.model!r} at {self.server}",
            max_retries=self.max_retries,
            backend=self.id,
        )
        tokens = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
        self.usage.add(*(t if isinstance(t, int) and not isinstance(t, bool) else 0 for t in tokens))
        return parse_json_object(content)

    def generate_json_many(self, requests: Sequence[Request]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """Keep up to ``max_concurrency`` requests in flight; yield answers as they complete."""
        if self.max_concurrency <= 1 or len(requests) <= 1:
            yield from super().generate_json_many(requests)
            return
        self.client  # noqa: B018  (make the client once, before the threads start)
        pending = iter(enumerate(requests))
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            running = {}
            for i, r in pending:
                running[pool.submit(self._one, r)] = i
                if len(running) >= self.max_concurrency:
                    break
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = running.pop(fut)
                        yield i, fut.result()  # a BackendError here propagates after what was yielded
                        nxt = next(pending, None)
                        if nxt is not None:
                            running[pool.submit(self._one, nxt[1])] = nxt[0]
            finally:
                for fut in running:
                    fut.cancel()
