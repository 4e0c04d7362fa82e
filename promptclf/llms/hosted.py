"""Generation through OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from .._openai import OpenAICompatible, call_with_retries
from .base import LLM, Messages, Request, parse_json_object, register_llm

log = logging.getLogger("promptclf")
# Status codes with which servers refuse a response_format they do not know. llama-cpp-python's
# server answers ``json_schema`` with HTTP 500, so that code counts here too, but only once.
_UNSUPPORTED_FORMAT = {400, 422, 500, 501}


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
        return self.client.chat.completions.create(model=self.model, messages=messages, response_format=fmt, **kw)

    def _attempt(self, messages: Messages, schema: dict[str, Any], **kw: Any):
        import openai

        mode = self._mode or "json_schema"
        try:
            resp = self._request(mode, messages, schema, **kw)
        except openai.APIStatusError as e:
            if self._mode is not None or e.status_code not in _UNSUPPORTED_FORMAT:
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
        resp = call_with_retries(
            lambda: self._attempt(messages, schema, temperature=temperature, max_tokens=max_tokens, seed=seed),
            what=f"generation with {self.model!r}",
            max_retries=self.max_retries,
        )
        if resp.usage is not None:
            self.usage.add(resp.usage.prompt_tokens, resp.usage.completion_tokens)
        else:
            self.usage.add(0, 0)
        return parse_json_object(resp.choices[0].message.content)

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
