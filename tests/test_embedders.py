"""The embedder base: vectors side by side (``Joined``)."""

import numpy as np

from promptclf.embedders import EmbeddingCache
from promptclf.embedders.base import Joined
from tests.conftest import FakeEmbedder


def test_joined_puts_each_part_side_by_side_at_unit_length_and_caches_under_each_part():
    a, b = FakeEmbedder("bow16", dim=16), FakeEmbedder("bow8", dim=8)
    texts = ["a good film", "a bad film", "a good film"]
    cache = EmbeddingCache()
    joined = Joined(a, b)
    V = joined.trainer().embed(texts, cache=cache)
    assert V.shape == (3, 24) and V.dtype == np.float32 and joined.dimension_hint() == 0
    assert np.allclose(np.linalg.norm(V, axis=1), 1.0)
    assert np.allclose(V[:, :16] * np.sqrt(2), a.embed(texts)) and np.allclose(V[:, 16:] * np.sqrt(2), b.embed(texts))
    assert joined.id == "joined:fake:bow16+fake:bow8"
    # each part's vectors are filed under that part: a later embed by the part alone reuses them
    assert cache.get(a.id, "a good film") is not None and cache.get(b.id, "a bad film") is not None
    calls = len(a.calls)
    joined.embed(texts, cache=cache)
    assert len(a.calls) == calls
