"""Embedding backends: a base class with one abstract method, a registry and a cache."""

from .base import DEFAULT_EMBEDDER, Embedder, EmbeddingCache, get_embedder, register_embedder

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "EmbeddingCache", "get_embedder", "register_embedder"]


def __getattr__(name: str):  # lazy, so importing the package loads no backend library
    if name == "SentenceTransformerEmbedder":
        from .local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    if name == "OpenAIEmbedder":
        from .hosted import OpenAIEmbedder

        return OpenAIEmbedder
    raise AttributeError(name)
