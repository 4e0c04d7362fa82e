"""Embedder base class, registry and cache.

A backend implements one method, ``embed_batch``; batching, L2 normalisation, caching and progress
are built once here on top of it (the shape of simonw/llm's ``EmbeddingModel.embed_batch``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._progress import progress_bar
from .._registry import Backend, Refused, Registry, spec_id
from ..errors import BackendError, InvalidInputError

if TYPE_CHECKING:
    from .chunking import Window

log = logging.getLogger("promptclf")


class Embedder(Backend, ABC):
    """Turns texts into vectors. Subclasses set ``kind`` and implement ``embed_batch``."""

    batch_size: int = 64

    def space(self) -> dict[str, Any]:
        """The spec of the embedder whose vectors these are.

        Usually ``to_spec()``; a backend that reproduces another's vectors (ONNX fp32 serving the
        PyTorch MiniLM) names that one, so cached vectors and model files stay in one space however
        the model is served.
        """
        return self.to_spec()

    def trainer(self) -> Embedder:
        """The embedder a head served by this one is trained with: itself, unless this one only
        approximates another's vectors for speed (int8 weights serving the fp32 model), in which
        case training and the embedding cache use the exact vectors."""
        return self

    @property
    def id(self) -> str:
        """Identity of the vector space, the key of cached embeddings."""
        return spec_id(self.space())

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Return one row per text (any scale; normalisation happens in ``embed``)."""

    def window(self) -> Window | None:
        """The tokenizer and token budget of this embedder's input window; ``None`` if unknown.

        Backends that know it (the local models) return it, and ``embed`` then never truncates:
        longer texts are chunked. A backend without one sends texts as they are.
        """
        return None

    def count_long(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the window (chunked by ``embed``, or truncated)."""
        w = self.window()
        return 0 if w is None else sum(w.long_mask(list(dict.fromkeys(texts))))

    def embed(
        self,
        texts: Sequence[str],
        *,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
        chunk_size: int = 2048,
        long_texts: str = "chunk",
    ) -> np.ndarray:
        """L2-normalised float32 vectors for ``texts``; only texts missing from ``cache`` are computed.

        ``long_texts``: ``"chunk"`` embeds a text longer than the window as the mean of its chunks'
        vectors (``embedders.chunking``); ``"truncate"`` lets the backend cut it at the window.
        """
        texts = list(texts)
        key = self._cache_key(long_texts)
        todo = [t for t in dict.fromkeys(texts) if cache is None or cache.get(key(t), t) is None]
        computed: dict[str, np.ndarray] = {}
        if todo:
            bar = _progress(len(todo), progress, "embedding")
            window = self.window() if long_texts == "chunk" else None
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                vecs = self._checked(chunk) if window is None else self._chunked(chunk, window)
                for t, v in zip(chunk, vecs):
                    computed[t] = v
                    if cache is not None:
                        cache.put(key(t), t, v)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        if not texts:
            return np.zeros((0, self.dimension_hint()), dtype=np.float32)
        rows = [computed[t] if t in computed else cache.get(key(t), t) for t in texts]  # type: ignore[union-attr]
        return np.stack(rows).astype(np.float32, copy=False)

    def _cache_key(self, long_texts: str) -> Callable[[str], str]:
        """Cached vectors are filed under the vector space; a truncated long text is another vector."""
        if long_texts not in ("chunk", "truncate"):
            raise InvalidInputError(
                f"long_texts must be 'chunk' or 'truncate', got {long_texts!r}", argument="long_texts"
            )
        ident = self.id
        window = self.window() if long_texts == "truncate" else None
        if window is None:
            return lambda t: ident
        return lambda t: f"{ident}#truncated" if window.is_long(t) else ident

    def _chunked(self, texts: list[str], window: Window) -> np.ndarray:
        """Vectors of ``texts``, each long one the normalised mean of its chunks' vectors."""
        from .chunking import split

        long = window.long_mask(texts)
        if not any(long):
            return self._checked(texts)
        parts = [split(t, window, long=True) if is_long else [t] for t, is_long in zip(texts, long)]
        flat = [c for p in parts for c in p]
        vecs = self._checked(flat)
        out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        i = 0
        for row, p in enumerate(parts):
            v = vecs[i : i + len(p)].mean(axis=0)
            out[row] = v / max(float(np.linalg.norm(v)), 1e-12)
            i += len(p)
        return out

    def dimension_hint(self) -> int:
        return 0

    def _checked(self, texts: list[str]) -> np.ndarray:
        vecs = np.asarray(self.embed_batch(texts), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise BackendError(
                f"embedder {self.id} returned shape {vecs.shape} for {len(texts)} texts; expected one vector per text"
            )
        if not np.all(np.isfinite(vecs)):
            raise BackendError(f"embedder {self.id} returned NaN or infinite values")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


class Joined(Embedder):
    """Several embedders' vectors side by side, each part unit length (so the row is too): one space in
    which a head sees what each of them sees. Training only (``PromptClassifier._first_labeller``), never
    a model's serving embedder; each part embeds through the cache under its own identity."""

    kind = "joined"

    def __init__(self, *parts: Embedder) -> None:
        super().__init__("+".join(p.id for p in parts))
        self.parts = parts

    def trainer(self) -> Embedder:
        return Joined(*(p.trainer() for p in self.parts))

    def embed(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        """``Embedder.embed``'s options go to each part (the cache, the long-text mode...)."""
        texts = list(texts)
        vecs = [p.embed(texts, **options) for p in self.parts]
        return np.hstack(vecs) / np.float32(np.sqrt(len(self.parts)))

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts)

    def dimension_hint(self) -> int:
        return sum(p.dimension_hint() for p in self.parts)


class EmbeddingCache:
    """Vectors keyed by (embedder id, text): retraining embeds only what is new."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._data)

    def get(self, embedder_id: str, text: str) -> np.ndarray | None:
        return self._data.get((embedder_id, text))

    def put(self, embedder_id: str, text: str, vec: np.ndarray) -> None:
        self._data[(embedder_id, text)] = vec

    def export(self, embedder_id: str, texts: Sequence[str]) -> tuple[list[str], np.ndarray] | None:
        """The cached vectors of ``texts`` (those present), for saving beside the model."""
        have = [t for t in dict.fromkeys(texts) if (embedder_id, t) in self._data]
        if not have:
            return None
        return have, np.stack([self._data[(embedder_id, t)] for t in have])

    def load(self, embedder_id: str, texts: Sequence[str], matrix: np.ndarray) -> None:
        for t, v in zip(texts, matrix):
            self._data[(embedder_id, t)] = v


class RefusedEmbedder(Refused, Embedder):
    """A hosted embedder a model file names; embedding raises before anything is sent (see ``Refused``)."""

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        raise self.refusal("embedder", "embedder", "OpenAIEmbedder")


def _progress(total: int, enabled: bool, desc: str):
    return progress_bar(total, desc, "text", enabled and total >= 256)  # a few texts embed in a blink


DEFAULT_EMBEDDER = "sentence-transformers:all-MiniLM-L6-v2"
EMBEDDERS: Registry[Embedder] = Registry("embedder", Embedder, DEFAULT_EMBEDDER)
register_embedder = EMBEDDERS.register


def embedders() -> Registry[Embedder]:
    """The registry, with the built-in kinds registered (their modules import nothing heavy)."""
    from . import hosted, local, onnx_backend, static  # noqa: F401

    return EMBEDDERS


def get_embedder(spec: str | dict[str, Any] | Embedder | None) -> Embedder:
    """Resolve ``None`` (the packaged MiniLM), a spec string ``"kind:model"``, a spec dict, or an instance."""
    return embedders().resolve(spec)
