"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._openai import BadAnswer, OpenAICompatible, call_with_retries
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
            out.append(
                call_with_retries(
                    lambda chunk=chunk: self._parse(self._request(chunk), len(chunk)),
                    what=f"embedding with {self.model!r} at {self.server}",
                    max_retries=self.max_retries,
                    backend=self.id,
                )
            )
        return np.concatenate(out)

    def _request(self, chunk: list[str]) -> dict[str, Any]:
        raw = self.client.embeddings.with_raw_response.create(model=self.model, input=chunk, encoding_format="float")
        return self._answer(raw)

    def _parse(self, obj: dict[str, Any], n: int) -> np.ndarray:
        data = obj.get("data")
        if not isinstance(data, list) or not all(
            isinstance(d, dict) and isinstance(d.get("embedding"), list) for d in data
        ):
            raise BadAnswer(f"{self.server} answered without a list of embeddings: {str(obj)[:120]!r}", 200)
        if len(data) != n:
            raise BackendError(
                f"embedding server {self.server} returned {len(data)} vectors for {n} texts", backend=self.id
            )
        if all(isinstance(d.get("index"), int) for d in data):
            data = sorted(data, key=lambda d: d["index"])
        rows = []
        for d in data:
            emb = d["embedding"]
            if emb and isinstance(emb[0], list):
                raise BackendError(
                    f"embedding server returned one vector per token ({len(emb)} vectors for one text), not one "
                    "pooled vector per text: serve a model with pooling (llama.cpp's server does not pool chat "
                    "models)",
                    backend=self.id,
                )
            rows.append(emb)
        try:
            return np.asarray(rows, dtype=np.float32)
        except (ValueError, TypeError):
            raise BackendError(
                f"embedding server {self.server} returned vectors of different lengths or non-numbers", backend=self.id
            ) from None
