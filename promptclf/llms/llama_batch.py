"""Several completions side by side in one llama.cpp context: how the local LLM decodes the example
requests of a batch (``local.BATCHED``).

``Llama.create_completion`` decodes one sequence at a time. For the packaged 135-270M models on a
few cores much of each decoding step is a fixed cost, so one step over 8 sequences costs far less
than 8 steps over one: measured on 2 cores, SmolLM2 took about 15 ms for a step of one token and 50 for
a step of 8, and the generation pipeline keeps 1.35-1.94x the examples per minute (BENCHMARKS.md,
"Generation in batches"). llama.cpp's batch API decodes a token of each sequence in one call; this
drives it through llama-cpp-python's own wrappers of it (``llama_cpp._internals``, the classes
``Llama`` is built on), with the sampler chain ``Llama.create_completion`` uses (top-k 40, typical
1.0, top-p 0.95, min-p 0.05, temperature, a seeded draw), and stops as it does: at an
end-of-generation token, at the first stop string (the text before it is the answer) or after
``max_tokens`` tokens.

Each group starts from an empty cache, so a group's prompts and seeds give the same texts in any
process, whatever ran before (why ``LlamaCppLLM.continue_text`` resets the model too). A prompt and
seed may give another text in another group, or from ``create_completion``: the sums are rounded
otherwise (see ``BatchDecoder.__init__``), and a sampled answer that meets a near tie goes another way
from there: other draws from the same model (bench/generation.py --batches measures what they are worth).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A group's sequences decode together and share one cache of ``N_CTX`` cells, each taking its prompt
# and answer (counted whole, though a common beginning is stored once). The generation pipeline sends
# 8 requests at a time.
N_SEQ_MAX = 16
N_CTX = 4096


@dataclass
class Completion:
    """One sequence's answer: ``text`` up to the first stop (``None`` when cut off at ``max_tokens``)."""

    text: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Prompt:
    """One sequence to complete: its prompt tokens and how to sample and stop it."""

    tokens: list[int]
    max_tokens: int
    temperature: float
    seed: int
    stop: Sequence[str] = ()

    def fits(self, n_ctx: int = N_CTX) -> bool:
        """Whether the prompt (not empty) and its longest answer fit a decoder's cache alone."""
        return len(self.tokens) > 0 and len(self.tokens) + self.max_tokens <= n_ctx


class BatchDecoder:
    """Completes many prompts of one loaded ``llama_cpp.Llama`` in groups of up to ``N_SEQ_MAX``.

    Its own context (the ``Llama``'s holds one sequence) shares the model's weights; made once and
    kept with the model. Its cache costs memory: about 95 MiB for SmolLM2 and 91 MiB for Gemma 3 270M.
    """

    def __init__(self, llama: Any, *, n_ctx: int = N_CTX, n_seq_max: int = N_SEQ_MAX) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._llama, self._lib, self._internals = llama, llama_cpp, _internals
        self.n_ctx, self.n_seq_max = n_ctx, n_seq_max
        # The Llama's own settings (threads, flash attention off), with room for several sequences. Flash
        # attention on made a sequence's logits the same in any group (SmolLM2; Gemma in groups of 2), but
        # trec6 trained on examples decoded that way scored 0.658-0.773 over three samples against
        # 0.749-0.776 one at a time and 0.759-0.766 batched without it (BENCHMARKS.md, "Generation in
        # batches"); without it the texts depend on the group too, and a group is the same for the same
        # requests, so a seed still gives the same texts.
        p = type(llama.context_params).from_buffer_copy(llama.context_params)
        p.n_ctx, p.n_seq_max, p.kv_unified = n_ctx, n_seq_max, True
        p.n_batch = p.n_ubatch = self.n_batch = llama.n_batch
        with contextlib.redirect_stderr(io.StringIO()):  # llama.cpp's notices about the cache
            self._ctx = _internals.LlamaContext(model=llama._model, params=p, verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()

    def complete(self, prompts: Sequence[Prompt]) -> list[Completion]:
        """Every prompt's completion, in order. Each prompt must fit the cache (``Prompt.fits``).

        Raises ``RuntimeError`` if llama.cpp cannot decode a batch.
        """
        out: list[Completion] = []
        with self._lock:  # one context: two callers would overwrite each other's batch and cache
            for group in self._groups(prompts):
                out += self._complete_group(group)
        return out

    def _groups(self, prompts: Sequence[Prompt]) -> list[list[Prompt]]:
        groups: list[list[Prompt]] = []
        cells = 0
        for p in prompts:
            need = len(p.tokens) + p.max_tokens
            if not groups or len(groups[-1]) >= self.n_seq_max or cells + need > self.n_ctx:
                groups.append([])
                cells = 0
            groups[-1].append(p)
            cells += need
        return groups

    def _sampler(self, p: Prompt) -> Any:
        s = self._internals.LlamaSampler()
        s.add_top_k(40)
        s.add_typical(1.0, 1)
        s.add_top_p(0.95, 1)
        s.add_min_p(0.05, 1)
        s.add_temp(p.temperature)
        s.add_dist(p.seed)
        return s

    def _add(self, token: int, pos: int, seq: int) -> int:
        """Put one token in the batch with its logits wanted; its row in the batch."""
        b = self._batch.batch
        j = b.n_tokens
        b.token[j], b.pos[j], b.seq_id[j][0], b.n_seq_id[j], b.logits[j] = token, pos, seq, 1, True
        b.n_tokens = j + 1
        return j

    def _decode(self) -> None:
        self._ctx.decode(self._batch)
        self._batch.reset()

    def _complete_group(self, group: list[Prompt]) -> list[Completion]:
        lib, llama, ctx = self._lib, self._llama, self._ctx
        vocab = llama._model.vocab
        ctx.kv_cache_clear()
        self._batch.reset()
        samplers = [self._sampler(p) for p in group]
        answers: list[list[int]] = [[] for _ in group]
        texts: list[str | None] = [None] * len(group)
        row: dict[int, int] = {}  # sequence -> its row in the batch just decoded

        # The prompts' common beginning (in the pipeline's batches usually the whole prompt) is decoded
        # once and shared by every sequence; the rest of each prompt is packed into calls of at most
        # n_batch tokens. Each sequence's first token is sampled right after the call holding its
        # prompt's last token (the next call overwrites the logits).
        shared = _common_prefix([p.tokens for p in group])
        if any(len(p.tokens) > shared for p in group):
            shared = min(shared, min(len(p.tokens) for p in group) - 1)  # every sequence keeps a token of its own
        else:
            row = dict.fromkeys(range(len(group)), -1)  # one prompt: all sample from its last logits
        for i, t in enumerate(group[0].tokens[:shared]):
            if self._batch.n_tokens() >= self.n_batch:
                self._decode()
            self._add(t, i, 0)
            self._batch.batch.logits[self._batch.n_tokens() - 1] = i == shared - 1 and bool(row)
        if row:
            self._decode_and_start(samplers, answers, row)
        elif shared:
            self._decode()
        for s in range(1, len(group)):
            ctx.kv_cache_seq_cp(0, s, 0, shared)
        for s, p in enumerate(group):
            for i in range(shared, len(p.tokens)):
                if self._batch.n_tokens() >= self.n_batch:
                    self._decode_and_start(samplers, answers, row)
                j = self._add(p.tokens[i], i, s)
                if i == len(p.tokens) - 1:
                    row[s] = j
                else:
                    self._batch.batch.logits[j] = False
        self._decode_and_start(samplers, answers, row)

        active = set(range(len(group)))
        while active:
            for s in sorted(active):
                p, tokens = group[s], answers[s]
                t = tokens[-1]
                done = lib.llama_vocab_is_eog(vocab, t)
                if done:
                    tokens.pop()  # the end token is not part of the text
                text = llama.detokenize(tokens, prev_tokens=p.tokens).decode("utf-8", errors="ignore")
                cut = [text.index(x) for x in p.stop if x in text]
                if cut:
                    texts[s], done = text[: min(cut)], True
                elif done:
                    texts[s] = text
                elif len(tokens) >= p.max_tokens:
                    done = True  # cut off: no text
                if done:
                    active.discard(s)
                    continue
                row[s] = self._add(t, len(p.tokens) + len(tokens) - 1, s)
            if active:
                self._decode_and_start(samplers, answers, row, only=active)
        return [Completion(texts[s], len(p.tokens), len(answers[s])) for s, p in enumerate(group)]

    def _decode_and_start(self, samplers: list, answers: list[list[int]], row: dict[int, int], only=None) -> None:
        """Decode the batch; sample the next token of every sequence whose row was in it."""
        if not self._batch.n_tokens():
            return
        self._decode()
        for s in list(row) if only is None else sorted(only):
            answers[s].append(samplers[s].sample(self._ctx, row.pop(s)))


def _common_prefix(seqs: list[list[int]]) -> int:
    """How many leading tokens all of ``seqs`` share."""
    n = min(len(x) for x in seqs)
    first = seqs[0]
    for other in seqs[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return n
