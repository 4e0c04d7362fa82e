"""Texts longer than an embedder's window: overlapping chunks on sentence boundaries.

MiniLM sees 256 word pieces (about 200 words) and silently drops the rest. A long text is instead cut
into chunks that each fit the window, on sentence boundaries, consecutive chunks sharing a short
sentence for context; the text's vector is the mean of its chunks' vectors (``Embedder.embed``).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# a sentence ends at . ! ? (and closing quotes or brackets) before whitespace, or at a blank line
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+|\n\s*\n")
OVERLAP_SHARE = 0.25  # the last sentence of a chunk opens the next one if it is at most this share of the window
_WINDOWS: dict[str, Window] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Window:
    """A tokenizer that never truncates, and how many tokens of text fit (special tokens excluded)."""

    tokenizer: Any
    max_tokens: int

    def n_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def is_long(self, text: str) -> bool:
        return bool(self.long_mask([text])[0])

    def long_mask(self, texts: list[str]) -> list[bool]:
        """Which texts are over the window: one batched tokenisation of the candidates only.

        A word piece covers at least one character, so a text no longer than the window in characters
        fits without being tokenised (most texts: short-text cost stays at zero).
        """
        mask = [False] * len(texts)
        idx = [i for i, t in enumerate(texts) if len(t) > self.max_tokens]
        if idx:
            encs = self.tokenizer.encode_batch([texts[i] for i in idx], add_special_tokens=False)
            for i, e in zip(idx, encs):
                mask[i] = len(e.ids) > self.max_tokens
        return mask


def max_seq_length(folder: str | Path, default: int = 256) -> int:
    """The sequence length sentence-transformers truncates at, from the model folder's config."""
    cfg = Path(folder) / "sentence_bert_config.json"
    if cfg.exists():
        return int(json.loads(cfg.read_text()).get("max_seq_length", default))
    return default


def window_for(folder: str | Path) -> Window | None:
    """The window of a sentence-transformers model folder (``None`` without a fast tokenizer file)."""
    key = str(folder)
    with _LOCK:
        if key not in _WINDOWS:
            path = Path(folder) / "tokenizer.json"
            if not path.exists():
                return None
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(path))
            tok.no_truncation()
            tok.no_padding()
            specials = len(tok.encode("", add_special_tokens=True).ids)  # [CLS] and [SEP]
            _WINDOWS[key] = Window(tok, max_seq_length(folder) - specials)
        return _WINDOWS[key]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace between them left out)."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text) and text[start:].strip():
        spans.append((start, len(text)))
    return spans


def split(text: str, window: Window, *, long: bool | None = None) -> list[str]:
    """``text`` as chunks of at most ``window.max_tokens`` tokens, cut between sentences where possible.

    A text that fits is returned whole. A sentence longer than the window is cut between word pieces
    (at the offset of a token). Consecutive chunks share the sentence between them when it is short.
    ``long``: whether the text is over the window, if the caller knows already (``Window.long_mask``).
    """
    if not (window.is_long(text) if long is None else long):
        return [text]
    limit = window.max_tokens
    spans = sentence_spans(text)
    encs = window.tokenizer.encode_batch([text[a:b] for a, b in spans], add_special_tokens=False)
    pieces: list[tuple[int, int, int]] = []  # start, end, tokens
    for (a, b), enc in zip(spans, encs):
        n = len(enc.ids)
        if n <= limit:
            pieces.append((a, b, n))
            continue
        offsets, tokens = enc.offsets, enc.tokens
        s = 0
        while s < n:  # a run-on "sentence": cut between words (between word pieces if a word is that long)
            e = min(s + limit, n)
            while e < n and e > s + 1 and tokens[e].startswith("##"):
                e -= 1
            if e < n and tokens[e].startswith("##"):
                e = min(s + limit, n)
            pieces.append((a + offsets[s][0], a + offsets[e - 1][1], e - s))
            s = e
    budget = limit
    for _ in range(4):
        chunks = _pack(text, pieces, budget)
        # token counts of sentences add up to the count of their concatenation but for rare
        # tokenizer edge cases: check, and pack tighter by the overshoot if a chunk came out over
        over = max(len(e.ids) for e in window.tokenizer.encode_batch(chunks, add_special_tokens=False)) - limit
        if over <= 0:
            break
        budget -= over
    return chunks


def _pack(text: str, pieces: list[tuple[int, int, int]], limit: int) -> list[str]:
    chunks: list[str] = []
    current: list[tuple[int, int, int]] = []
    used = 0
    for p in pieces:
        if current and used + p[2] > limit:
            chunks.append(text[current[0][0] : current[-1][1]])
            last = current[-1]
            carry = last[2] <= OVERLAP_SHARE * limit and last[2] + p[2] <= limit
            current, used = ([last], last[2]) if carry else ([], 0)
        current.append(p)
        used += p[2]
    if current:
        chunks.append(text[current[0][0] : current[-1][1]])
    return chunks
