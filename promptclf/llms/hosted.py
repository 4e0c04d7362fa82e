"""Generation through OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from .._openai import BadAnswer, OpenAICompatible, call_with_retries
from ..errors import ConfigurationError
from .base import (
    LLM,
    Choice,
    Messages,
    first_token_proba,
    match_option,
    parse_json_object,
    register_llm,
)

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
        self._logprobs: bool | None = None  # does the server give top_logprobs? learnt on the first choice
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
        self._count(usage)
        return parse_json_object(content)

    def _count(self, usage: dict[str, Any]) -> None:
        """Add a call's token counts (a server's non-integer counts count as 0)."""
        tokens = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
        self.usage.add(*(t if isinstance(t, int) and not isinstance(t, bool) else 0 for t in tokens))

    def _before_threads(self) -> None:
        self.client  # noqa: B018  (make the client once, before the threads start)

    def _choice_attempt(self, messages: Messages):
        raw = self.client.chat.completions.with_raw_response.create(
            model=self.model, messages=messages, temperature=0.0, max_tokens=16, logprobs=True, top_logprobs=20
        )
        obj = self._answer(raw)
        content, usage = self._completion(obj)
        logprobs = obj["choices"][0].get("logprobs")
        positions = logprobs.get("content") if isinstance(logprobs, dict) else None
        return content, usage, positions if isinstance(positions, list) else None

    def choose(self, messages: Messages, options: Sequence[str], *, seed: int | None = None) -> Choice:
        """One greedy answer with token log-probabilities: the options' probabilities come from the
        ``top_logprobs`` where the answer starts naming an option (after any preamble), from the
        tokens that start each option. An answer that names no option is asked again by
        self-consistency; a server that gives no log-probabilities (or refuses the parameter) is
        asked by self-consistency from then on."""
        import openai

        if self._logprobs is False:
            return super().choose(messages, options, seed=seed)
        try:
            content, usage, positions = call_with_retries(
                lambda: self._choice_attempt(messages),
                what=f"labeling with {self.model!r} at {self.server}",
                max_retries=self.max_retries,
                backend=self.id,
            )
        except ConfigurationError as e:  # a 400/422 for the logprobs parameters: the server refuses them
            cause = e.__cause__
            if not (isinstance(cause, openai.APIStatusError) and cause.status_code in (400, 422)):
                raise
            positions = content = usage = None
        if usage is not None:
            self._count(usage)
        if not positions:
            if self._logprobs is None:
                log.info("%s gave no token log-probabilities: choosing by self-consistency", self.id)
            self._logprobs = False
            return super().choose(messages, options, seed=seed)
        self._logprobs = True
        top = _answer_position(positions, options)
        proba = None if top is None else first_token_proba(options, lambda o: _token_logprob(top, o))
        if proba is None:  # the answer never started with an option (prose): ask by samples this time
            return super().choose(messages, options, seed=seed)
        index = match_option(content, options)
        if index is None:
            index = int(proba.argmax())
        return Choice(index, proba, "logprobs")


def _answer_position(positions: list, options: Sequence[str]) -> list | None:
    """The ``top_logprobs`` of the first generated token that starts an option ("The answer is
    Sports": the position of "Sports"), or ``None``."""
    for pos in positions:
        if not isinstance(pos, dict) or not isinstance(pos.get("top_logprobs"), list):
            continue
        tok = pos.get("token")
        t = tok.strip().strip("\"'").casefold() if isinstance(tok, str) else ""
        if t and any(o.casefold().startswith(t) for o in options):
            return pos["top_logprobs"]
    return None


def _token_logprob(top: list, option: str) -> float | None:
    """Log-probability mass of the listed tokens that could start ``option`` (case-insensitive)."""
    o = option.casefold()
    vals = []
    for entry in top:
        if not isinstance(entry, dict):
            continue
        tok, lp = entry.get("token"), entry.get("logprob")
        if not isinstance(tok, str) or not isinstance(lp, (int, float)) or isinstance(lp, bool):
            continue
        t = tok.strip().strip("\"'").casefold()
        if t and o.startswith(t) and math.isfinite(lp):
            vals.append(float(lp))
    if not vals:
        return None
    m = max(vals)
    return m + math.log(sum(math.exp(v - m) for v in vals))
