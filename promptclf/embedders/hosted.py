"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._openai import OpenAICompatible, call_with_retries
from ..errors import BackendError
from .base import Embedder, register_embedder


@register_embedder
class OpenAIEmbedder(OpenAICompatible, Embedder):
    kind = "openai"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        batch_size: int = 128,
        timeout: float = 60.0,
        max_retries: int = 4,
    ) -> None:
        super().__init__(model)
        self._connect(base_url, api_key, timeout, max_retries)
        self.batch_size = batch_size

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            resp = call_with_retries(
                lambda chunk=chunk: self.client.embeddings.create(model=self.model, input=chunk),
                what=f"embedding with {self.model!r}",
                max_retries=self.max_retries,
            )
            out.append(self._parse(resp, len(chunk)))
        return np.concatenate(out)

    def _parse(self, resp: Any, n: int) -> np.ndarray:
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != n:
            raise BackendError(f"embedding server returned {len(data)} vectors for {n} texts")
        rows = []
        for d in data:
            emb = d.embedding
            if emb and isinstance(emb[0], list):
                raise BackendError(
                    f"embedding server returned one vector per token ({len(emb)} vectors for one text), not one "
                    "pooled vector per text: serve a model with pooling (llama.cpp's server does not pool chat "
                    "models)"
                )
            rows.append(emb)
        try:
            return np.asarray(rows, dtype=np.float32)
        except ValueError:
            raise BackendError("embedding server returned vectors of different lengths") from None
