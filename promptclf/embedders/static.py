"""Static token embeddings distilled from the packaged MiniLM: a text's vector is the mean of its
tokens' vectors, no transformer at prediction time (tens of times faster, less accurate).

The distillation is model2vec's algorithm (``model2vec.distill``): every vocabulary token is run
through the transformer between ``[CLS]`` and ``[SEP]`` and mean-pooled, the vectors are reduced
with PCA, and each is weighted by SIF over a Zipf estimate of its frequency (the tokenizer lists
frequent tokens first). It runs here over our ONNX Runtime export, not through ``model2vec.distill``,
because model2vec's ``distill`` extra pins ``transformers<5.4`` and we pin 5.23. The result is
saved in model2vec's folder layout (``StaticModel.from_pretrained`` reads it; a test checks it gives
our vectors) and served by ``Distilled``, so neither distilling nor serving it needs model2vec:
only a model2vec folder of your own does. Made once on this machine from the packaged weights,
cached; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from .base import Embedder, register_embedder

log = logging.getLogger("promptclf")
PCA_DIMS = 256  # model2vec's default
SIF_COEFFICIENT = 1e-4  # model2vec's default
UNUSED = re.compile(r"\[unused\d+\]")  # placeholder tokens: no text ever maps to them
_MODELS: dict[str, Callable[[list[str], int], np.ndarray]] = {}
_LOCK = threading.Lock()


def static_dir(model: str) -> Path:
    """The distilled model for ``model`` (a packaged transformer name), distilling it first if needed."""
    from .._cache import cache_dir
    from .local import resolve_model_path
    from .onnx_backend import onnx_file

    fp32 = onnx_file(model, False)
    stamp = hashlib.sha256(f"{fp32}:{fp32.stat().st_size}:{PCA_DIMS}:{SIF_COEFFICIENT}".encode()).hexdigest()[:12]
    out = cache_dir() / "static" / f"{Path(resolve_model_path(model)).name}-{stamp}"
    if not (out / "model.safetensors").exists():
        distill(model, fp32, out)
    return out


def token_vectors(model: str, fp32: Path, batch_size: int = 512) -> tuple[np.ndarray, Any]:
    """Every vocabulary token's mean-pooled output of ``[CLS] token [SEP]``; and the tokenizer."""
    from tokenizers import Tokenizer

    from .local import resolve_model_path
    from .onnx_backend import session

    # a tokenizer of its own: model2vec keeps the one it is given (the chunking window's is shared)
    tok = Tokenizer.from_file(str(Path(resolve_model_path(model)) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    n = tok.get_vocab_size()
    sess = session(str(fp32))
    out = np.zeros((n, 0), dtype=np.float32)
    for start in range(0, n, batch_size):
        ids = np.arange(start, min(n, start + batch_size), dtype=np.int64)
        feed = {
            "input_ids": np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1),
            "attention_mask": np.ones((len(ids), 3), dtype=np.int64),
            "token_type_ids": np.zeros((len(ids), 3), dtype=np.int64),
        }
        pooled = sess.run(None, feed)[0].mean(axis=1)
        if out.shape[1] == 0:
            out = np.zeros((n, pooled.shape[1]), dtype=np.float32)
        out[ids] = pooled
    return out, tok


def distill(model: str, fp32: Path, out: Path) -> None:
    """Distil, PCA, SIF-weight and save (atomic: a half-made folder is never used)."""
    from safetensors.numpy import save_file
    from sklearn.decomposition import PCA

    log.info("distilling static embeddings from %s (once)", model)
    vectors, tok = token_vectors(model, fp32)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    used = np.array([not UNUSED.fullmatch(t) for t, _ in vocab])
    pca = PCA(n_components=min(PCA_DIMS, vectors.shape[1]), svd_solver="full", random_state=0).fit(vectors[used])
    reduced = pca.transform(vectors).astype(np.float32)
    # SIF weight from a Zipf estimate of each token's frequency: its rank among the used tokens
    rank = np.cumsum(used) + 1.0
    proba = (1 / rank) / np.sum(1 / rank[used])
    reduced *= (SIF_COEFFICIENT / (SIF_COEFFICIENT + proba))[:, None].astype(np.float32)
    reduced[~used] = 0.0
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # model2vec's layout (its save_pretrained, version 0.10): the vectors, the tokenizer, the config
    # (with the keys StaticModel adds), and the sentence-transformers modules
    save_file({"embeddings": np.ascontiguousarray(reduced)}, tmp / "model.safetensors")
    tok.enable_truncation(max_length=512)  # as StaticModel saves it: the same bytes as a folder it wrote
    tok.save(str(tmp / "tokenizer.json"), pretty=False)
    config = {"apply_pca": PCA_DIMS, "sif_coefficient": SIF_COEFFICIENT, "normalize": True, "distilled_from": model,
              "max_length": 512, "embedding_dtype": "float32"}  # fmt: skip
    (tmp / "config.json").write_text(json.dumps(config, indent=4))
    modules = [
        {"idx": 0, "name": "0", "path": ".", "type": "sentence_transformers.models.StaticEmbedding"},
        {"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (tmp / "modules.json").write_text(json.dumps(modules, indent=4))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)


def _load(model: str) -> Callable[[list[str], int], np.ndarray]:
    """``encode(texts, batch_size)`` of ``model``: a model2vec folder, or a packaged transformer's distillation."""
    with _LOCK:
        if model not in _MODELS:
            if os.path.isdir(model):  # a model2vec folder of any layout: model2vec serves it
                try:
                    from model2vec import StaticModel
                except ImportError:
                    raise ConfigurationError("static embeddings need model2vec: pip install model2vec") from None

                m = StaticModel.from_pretrained(model)
                # one process: model2vec would otherwise fork workers for large inputs
                _MODELS[model] = lambda texts, batch_size: m.encode(
                    texts, batch_size=batch_size, max_length=None, use_multiprocessing=False
                )
            else:
                from .chunking import window_for
                from .local import resolve_model_path

                folder = static_dir(model)
                # distil saved the packaged model's tokenizer there: use the parse the window and ONNX share
                window = window_for(resolve_model_path(model))
                assert window is not None  # static_dir distilled with that model's tokenizer.json
                _MODELS[model] = Distilled(folder, window.tokenizer).encode
        return _MODELS[model]


def mapped_embeddings(path: Path) -> np.ndarray:
    """The ``embeddings`` tensor of the safetensors file ``distill`` writes, memory-mapped, read-only.

    A text touches a few rows of the 31 MB table: mapping it instead of reading it (safetensors'
    ``load_file`` and ``safe_open`` both copy the whole tensor) took 30 ms off the fast path's cold
    start. The header is safetensors' (8-byte little-endian length, then JSON); a file of any other
    layout is left to ``load_file``, which reads whatever safetensors can and names what it cannot.
    """
    from .._safetensors import read_header

    try:
        start, header = read_header(path)
    except ValueError:  # safetensors says what is wrong
        start, header = 0, {}
    entry = header.get("embeddings")
    if isinstance(entry, dict) and set(header) - {"__metadata__"} == {"embeddings"} and entry.get("dtype") == "F32":
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (
            isinstance(shape, list)
            and len(shape) == 2
            and all(isinstance(d, int) and d > 0 for d in shape)
            and offsets == [0, shape[0] * shape[1] * 4]
            and os.path.getsize(path) == start + offsets[1]
        ):
            return np.memmap(path, dtype="<f4", mode="r", offset=start, shape=tuple(shape)).view(np.ndarray)
    from safetensors.numpy import load_file

    return load_file(path)["embeddings"]


class Distilled:
    """The model ``distill`` saved in ``folder``, served as model2vec's
    ``StaticModel.encode(texts, max_length=None)`` serves it: the mean of each text's token vectors
    (no special tokens added, unknown tokens dropped), normalised as its config says.

    Not through ``StaticModel`` itself, for the fast path's cold start: importing model2vec and
    building a ``StaticModel`` (it sorts the vocabulary, copies the tokenizer, imports joblib, tqdm,
    and for ``from_pretrained`` huggingface_hub with an HTTP client) took 0.43 s of a 0.71 s cold
    start. This folder has the one layout ``distill`` writes (an ``embeddings`` tensor, no weights
    or token mapping); tests/test_cascade.py checks that model2vec gives the same vectors.
    """

    def __init__(self, folder: Path, tokenizer: Any) -> None:
        """``tokenizer``: the folder's tokenizer, parsed, without truncation (``max_length=None``:
        every token counts) or padding."""
        config = json.loads((folder / "config.json").read_text())
        self.normalize = bool(config.get("normalize", False))
        self.vectors = mapped_embeddings(folder / "model.safetensors")
        self.tokenizer = tokenizer
        unk = getattr(self.tokenizer.model, "unk_token", None)
        self.unk = None if unk is None else self.tokenizer.token_to_id(unk)

    def encode(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        out = np.zeros((len(texts), self.vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(texts), batch_size):  # bounds the gathered token vectors, as model2vec does
            encodings = self.tokenizer.encode_batch_fast(texts[start : start + batch_size], add_special_tokens=False)
            ids = [[t for t in e.ids if t != self.unk] for e in encodings]
            by_length: dict[int, list[int]] = defaultdict(list)  # one gather and mean per token count
            for row, tokens in enumerate(ids):
                if tokens:
                    by_length[len(tokens)].append(row)
            for rows in by_length.values():
                gathered = self.vectors[np.array([ids[r] for r in rows], dtype=np.int64)]
                out[[start + r for r in rows]] = gathered.mean(axis=1)
        if self.normalize:
            out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-32
        return out


@register_embedder
class StaticEmbedder(Embedder):
    """model2vec static embeddings: distilled here from a packaged transformer, or a local model2vec
    folder. No window: a long text is the mean over all its tokens."""

    kind = "model2vec"

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = 1024) -> None:
        super().__init__(model)
        self.batch_size = batch_size

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return _load(self.model)(texts, self.batch_size)

    def dimension_hint(self) -> int:
        return PCA_DIMS
