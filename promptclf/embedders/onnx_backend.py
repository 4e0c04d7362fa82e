"""ONNX Runtime embedder: tokenizers + onnxruntime + numpy. Prediction imports no PyTorch.

The packaged all-MiniLM-L6-v2 is exported once on this machine (``torch.onnx.export``), quantised
to int8 (``onnxruntime.quantization.quantize_dynamic``), and cached. Nothing is downloaded. The fp32
vectors match the sentence-transformers ones (mean pooling, L2 norm), so a ``.clf`` trained with the
PyTorch embedder is served with this one; the int8 ones stay within a point of macro-F1 of them on
every dev set (bench/speed.py), so a loaded model predicts with int8 by default and trains with fp32.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .._cache import cache_dir
from .._cpu import available_cpus
from ..errors import ConfigurationError, ModelFileError, PromptClfError
from .base import Embedder, register_embedder
from .local import resolve_model_path

if TYPE_CHECKING:
    from .chunking import Window

log = logging.getLogger("promptclf")
_SESSIONS: dict[tuple[str, bool, int], Any] = {}
_LOCK = threading.Lock()
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Texts per ONNX Runtime call, and padded tokens (rows x longest) per call. Texts are sorted by
# length first, so a small batch pads only to texts of about its own length, and long texts go a few
# at a time: the attention buffers ONNX Runtime keeps (its arena never shrinks) grow with rows x
# width^2. Chosen in bench/onnx_batching.py.
ONNX_BATCH = 16
ONNX_TOKENS = 512
INT8_RECIPE = "int8-s8-perchannel-7bit"  # in the cached file's name: a new recipe never reuses an old file


def onnx_file(model: str, quantized: bool) -> Path:
    """The exported model for ``model``, exporting (and, for int8, quantising) it first if needed.

    Only what is asked for is made: serving fp32 never pays for the int8 quantisation.
    """
    folder = Path(resolve_model_path(model))
    weights = folder / "model.safetensors"
    stamp = f"{folder}:{weights.stat().st_size if weights.exists() else 0}"
    out = cache_dir() / "onnx" / f"{folder.name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    fp32 = out / "model.onnx"
    if not fp32.exists():
        export(folder, out)
    if not quantized:
        return fp32
    int8 = out / f"model-{INT8_RECIPE}.onnx"
    if not int8.exists():
        quantize(fp32, int8)
    return int8


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' warnings and log lines: first use prints nothing but our own progress."""
    loggers = [logging.getLogger(n) for n in ("", "torch", "torch.onnx", "onnx", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export(folder: Path, out: Path) -> None:
    """Export the transformer of a sentence-transformers folder to ONNX fp32 (atomic rename)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigurationError(f"exporting to ONNX needs torch, onnx and sentence-transformers ({e})") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX in %s (once)", folder, out)
    tmp = out / f".model.{os.getpid()}.onnx"
    with _quiet():
        st = SentenceTransformer(str(folder), device="cpu")
    tmp.write_bytes(export_model(st))
    os.replace(tmp, out / "model.onnx")


def export_model(st: Any) -> bytes:
    """The ONNX fp32 graph (token ids in, last hidden state out) of an in-memory sentence-transformers model.

    Pooling and normalisation stay in numpy (``OnnxEmbedder``), as for the packaged model, so a
    fine-tuned encoder is served by exactly the same code.
    """
    import io

    import torch

    hf = st[0].auto_model.eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = hf

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        sample = st.tokenizer(["an example", "a slightly longer example text"], padding=True, return_tensors="pt")
        torch.onnx.export(
            LastHidden(),
            tuple(sample[k] for k in INPUTS),
            buf,
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in (*INPUTS, "last_hidden_state")},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def half_graph(graph: bytes) -> bytes:
    """The graph with each float32 weight that float16 holds exactly stored as float16.

    How a fine-tuned or distilled encoder travels in a ``.clf``: half the bytes to store, read and
    hash (its weights are rounded to float16 precision when it is made, ``round_to_half``, so every
    weight qualifies and nothing changes). A weight float16 would change stays float32. Not meant to
    run as it is: ``float_graph`` restores the float32 graph, exactly.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load_model_from_string(graph)
    changed = False
    for t in m.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(t)
        h = a.astype(np.float16)
        if np.array_equal(h.astype(np.float32), a):  # exact (NaN never is: it stays float32)
            t.CopyFrom(numpy_helper.from_array(h, name=t.name))
            changed = True
    return m.SerializeToString() if changed else graph


def float_graph(graph: bytes) -> bytes:
    """A graph stored by ``half_graph`` with its float16 weights back as float32: what ONNX Runtime
    and the quantiser run. A graph without float16 weights (a file of before) is returned as it is,
    not serialised again."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load_model_from_string(graph)
    halves = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    if not halves:
        return graph
    for t in halves:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), name=t.name))
    return m.SerializeToString()


def round_to_half(model: Any) -> None:
    """Round a torch model's float weights to float16 precision, in place (kept as float32), so that
    ``half_graph`` of its export loses nothing: the vectors the head is fit on are those a loaded
    ``.clf`` computes."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.dtype == torch.float32:
                p.copy_(p.half().float())


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation of an exported model (onnxruntime), atomic rename.

    Per-channel weight scales (one per output column, not one per matrix) are what keep accuracy:
    per-tensor int8 lost 2.2 points of macro-F1 on trec6, per-channel loses at most 0.3 on the dev
    sets. ``reduce_range`` (7-bit weights) is what ONNX Runtime advises for CPUs without VNNI, where
    the AVX2 u8*s8 kernels can saturate; it cost nothing measurable here, so the one recipe holds on
    both kinds of CPU. Static (calibrated) quantisation and the fused graph were slower or less
    accurate (BENCHMARKS.md, "int8 variants").
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8 (once)", fp32)
    tmp = int8.with_name(f".{int8.stem}.{os.getpid()}.onnx")
    with _quiet():
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    os.replace(tmp, int8)


class Encoded(NamedTuple):
    ids: list[int]
    attention_mask: list[int]
    type_ids: list[int]


class TruncatingTokenizer:
    """The model's tokenizer cut where sentence-transformers cuts (``max_length`` word pieces, the
    closing special tokens kept), without a tokenizer of its own: it encodes with the chunking
    window's tokenizer, which never truncates, so a process parses ``tokenizer.json`` once (a parse
    is 20-30 ms of a cold start here; ``bench/cold_start.py``)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def encode_batch(self, texts: list[str]) -> list[Any]:
        """Encodings with ``ids``, ``attention_mask`` and ``type_ids``: the tokenizer's own where they
        fit (nothing copied on the predict path), a cut ``Encoded`` where they do not."""
        limit = self.max_length
        return [e if len(e) <= limit else self._cut(e) for e in self.tokenizer.encode_batch(texts)]

    def _cut(self, e: Any) -> Encoded:
        ids, mask, types = e.ids, e.attention_mask, e.type_ids
        n, limit = len(ids), self.max_length
        # what the tokenizer's own truncation gives: the text's word pieces cut to fit, then the
        # template's closing specials ([SEP] for BERT) after them
        special = e.special_tokens_mask
        tail = 0
        while tail < n and special[n - 1 - tail]:
            tail += 1
        keep = limit - tail
        return Encoded(ids[:keep] + ids[n - tail :], mask[:keep] + mask[n - tail :], types[:keep] + types[n - tail :])


@functools.cache  # every embed_batch asks: resolving the folder and reading its config is 30 us
def _tokenizer(model: str) -> tuple[TruncatingTokenizer, int]:
    """The packaged model's fast tokenizer, truncating where sentence-transformers does; and its pad id."""
    from .chunking import max_seq_length, window_for

    folder = Path(resolve_model_path(model))
    window = window_for(folder)
    if window is None:
        raise ConfigurationError(f"{folder} has no tokenizer.json: the ONNX embedder needs a fast tokenizer")
    tok = window.tokenizer
    return TruncatingTokenizer(tok, max_seq_length(folder)), tok.token_to_id("[PAD]") or 0


# sessions start from a copy of the graph with the portable rewrites done (bench/cold_start.py compares)
OPTIMIZED_COPY = True


def optimized_file(path: Path) -> Path:
    """``path``'s graph with ONNX Runtime's portable optimisations (fusions, constant folding) done,
    made once beside it and reused; ``path`` itself where that file cannot be written.

    A session spends most of its creation on those rewrites: starting from the rewritten graph about
    halves it (156 -> 84 ms for the int8 MiniLM on an AVX2 EPYC; bench/cold_start.py times a whole
    cold start with and without, 0.49 against 0.52 s). Only the "extended" level is saved: the level
    above it may bake in layouts specific to this CPU (ONNX Runtime warns that such a file belongs to
    the machine that made it), and a cache folder can be shared; sessions still apply that level when
    they load. The file name carries ONNX Runtime's version, whose rewrites it holds.
    """
    import onnxruntime as ort

    out = path.with_name(f"{path.stem}.ort-{ort.__version__}-extended.onnx")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.onnx")
    try:
        if not out.exists():
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            opts.optimized_model_filepath = str(tmp)
            opts.log_severity_level = 3  # its notes go to the C stderr, past _quiet(): first use prints nothing
            ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            os.replace(tmp, out)
        return out
    except Exception as e:  # a read-only cache, a full disk: the original graph serves as well, only slower to open
        log.debug("could not save the optimised graph of %s (%s): using the original", path, e)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return path


def session(source: str | Path | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime session (a path or the model's bytes) computing on ``threads`` threads (one
    per CPU this process may use by default).

    A path is opened from its optimised copy (``optimized_file``), made on first use.
    """
    import onnxruntime as ort

    if not isinstance(source, bytes):
        source = str(optimized_file(Path(source)) if OPTIMIZED_COPY else source)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = available_cpus() if threads is None else threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


@functools.cache
def workers() -> int:
    """How many batches run side by side: the CPUs this process may use, read once (as a session's
    thread count was; reading the container's quota costs 50 us, a lone text's prediction 3 ms)."""
    return available_cpus()


_POOL: dict[int, ThreadPoolExecutor] = {}  # by size: made once, kept for the process
# a forked child (multiprocessing's default on Linux) has none of its parent's threads: it would queue
# batches for workers that do not exist. It makes pools of its own.
os.register_at_fork(after_in_child=_POOL.clear)


def run_batches(
    sess: Any, batches: Iterable[tuple[np.ndarray, dict[str, np.ndarray]]], workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, mean-pooled vectors)`` of each ``(rows, inputs)`` batch, in order, at most
    ``workers`` of them running at once (one process-wide pool of threads; ONNX Runtime frees the
    GIL while it computes)."""

    def pooled(batch: tuple[np.ndarray, dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        idx, feed = batch
        hidden = sess.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        return idx, (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)

    if workers <= 1:
        yield from map(pooled, batches)
        return
    with _LOCK:
        if workers not in _POOL:
            _POOL[workers] = ThreadPoolExecutor(workers, thread_name_prefix="promptclf-onnx")
        pool = _POOL[workers]
    yield from pool.map(pooled, batches)


def _load(model: str, quantized: bool, threads: int) -> Any:
    key = (model, quantized, threads)
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = session(str(onnx_file(model, quantized)), threads)
        return _SESSIONS[key]


def _groups(lengths: list[int], batch_size: int, max_tokens: int) -> Iterator[np.ndarray]:
    """Indices by ascending length, cut into batches of at most ``batch_size`` rows whose padded size
    (rows x longest) stays within ``max_tokens`` (a batch of one text is always allowed)."""
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < batch_size and (end - start + 1) * lengths[order[end]] <= max_tokens:
            end += 1
        yield order[start:end]
        start = end


def padded_batches(
    tok: Any, pad: int, texts: list[str], batch_size: int, max_tokens: int | None = None
) -> Iterator[tuple[np.ndarray, dict]]:
    """``(rows, inputs)`` per batch: texts sorted by token count so each batch pads only to its own
    longest text (padding is most of the work on mixed-length input otherwise), and long texts in
    fewer rows per call (``max_tokens``, rows x width)."""
    encs = tok.encode_batch(texts)
    lengths = [len(e.ids) for e in encs]
    for idx in _groups(lengths, batch_size, max_tokens or max(lengths, default=1) * batch_size):
        width = lengths[idx[-1]]
        feed = {k: np.full((len(idx), width), pad if k == "input_ids" else 0, dtype=np.int64) for k in INPUTS}
        for row, i in enumerate(idx):
            e = encs[i]
            n = len(e.ids)
            feed["input_ids"][row, :n] = e.ids
            feed["attention_mask"][row, :n] = e.attention_mask
            feed["token_type_ids"][row, :n] = e.type_ids
        yield idx, feed


@register_embedder
class OnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 through ONNX Runtime (fp32). Batches texts of similar length together."""

    kind = "onnx"
    quantized = False

    def __init__(
        self, model: str = "all-MiniLM-L6-v2", *, batch_size: int = ONNX_BATCH, max_tokens: int | None = ONNX_TOKENS
    ) -> None:
        super().__init__(model)
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    def _tokenizer(self) -> tuple[TruncatingTokenizer, int]:
        return _tokenizer(self.model)

    def _session(self, threads: int) -> Any:
        return _load(self.model, self.quantized, threads)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled vectors. The batches of a call run side by side, one per CPU the process may
        use, each on a single-threaded session: a sentence's matrices are small, so the threads of
        one batch spread over the CPUs wait on each other at every operator (measured on 2 cores:
        1.09-1.19x the texts per second, more on a loaded machine; bench/onnx_parallel.py). A lone
        text, which cannot be split, computes on every CPU (a session of its own, made when first
        needed)."""
        tok, pad = self._tokenizer()
        cpus = workers()
        size = max(1, min(self.batch_size, -(-len(texts) // cpus)))  # a few texts still make a batch per CPU
        batches = list(padded_batches(tok, pad, texts, size, self.max_tokens))
        alone = len(batches) == 1
        sess = self._session(cpus if alone else 1)
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for idx, pooled in run_batches(sess, batches, 1 if alone else cpus):
            if out.shape[1] == 0:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
        return out

    def dimension_hint(self) -> int:
        return 384

    def window(self) -> Window | None:
        from .chunking import window_for

        return window_for(resolve_model_path(getattr(self, "base", self.model)))

    def space(self) -> dict[str, Any]:
        # fp32 ONNX gives the PyTorch vectors (cosine > 0.99 in the tests, identical macro-F1 on
        # every dev set), so both share cached embeddings and model files name the PyTorch one
        return {"kind": "sentence-transformers", "model": self.model}


def fast_equivalent(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The ONNX spec that serves a sentence-transformers spec, if it can run here: int8, trained in fp32."""
    import importlib.util

    from .local import PACKAGED

    if spec.get("kind") != "sentence-transformers":
        return None
    short = str(spec.get("model", "")).removeprefix("sentence-transformers/")
    if short not in PACKAGED or importlib.util.find_spec("onnxruntime") is None:
        return None
    if importlib.util.find_spec("tokenizers") is None:
        return None
    return {"kind": "onnx-int8", "model": short}


@register_embedder
class OnnxInt8Embedder(OnnxEmbedder):
    """The same, with weights quantised to int8 (per channel) and activations at run time: about
    twice as fast as fp32.

    It predicts; its fp32 twin trains (``trainer``), so a head is always fit on, and the embedding
    cache only ever holds, the exact vectors of the model it names. Serving that head on int8
    vectors is what bench/speed.py measures (within a point of macro-F1 on every dev set).
    """

    kind = "onnx-int8"
    quantized = True

    def trainer(self) -> Embedder:
        return OnnxEmbedder(self.model, batch_size=self.batch_size, max_tokens=self.max_tokens)

    def space(self) -> dict[str, Any]:
        return self.trainer().space()


class FinetunedOnnxEmbedder(OnnxEmbedder):
    """A fine-tuned encoder served from its ONNX graph (bytes from a ``.clf``), with the base model's
    tokenizer: the same code path, and speed, as the packaged model. Its vectors are their own space,
    ``finetuned:<name>``. Not in the registry: only a model file or training makes one.

    ``quantized``: predict with the graph quantised to int8 by the same recipe as the packaged model
    (made once per graph on this machine and cached); training still uses the fp32 graph
    (``trainer``), as for ``OnnxInt8Embedder``. ``source``: the model file the graph came from; where
    given, a graph that cannot be made into a session or run is a ``ModelFileError`` naming that file
    and its ``encoder/model.onnx`` member, whenever it first runs (a loaded file's session is made when
    first needed, ``PromptClassifier.load``), not an error from inside ONNX Runtime.
    """

    kind = "finetuned"

    def __init__(
        self,
        base: str,
        graph: bytes | Callable[[], bytes],
        name: str,
        *,
        batch_size: int = ONNX_BATCH,
        max_tokens: int | None = ONNX_TOKENS,
        quantized: bool = False,
        digest: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(base, batch_size=batch_size, max_tokens=max_tokens)
        self.base, self.name, self._graph = base, name, graph
        self.quantized = quantized
        # the graph's sha256 where the caller knows it: verified, or (``graph`` a function) what a .clf's
        # manifest says, which that function checks the bytes against when called
        self._digest = digest
        self.source = source
        self._sessions: dict[int, Any] = {}  # by thread count
        self._fp32: FinetunedOnnxEmbedder | None = None

    def _tokenizer(self) -> tuple[TruncatingTokenizer, int]:
        return _tokenizer(self.base)

    def _session(self, threads: int) -> Any:
        with _LOCK:
            if threads not in self._sessions:
                if self.quantized:  # the graph's bytes are asked for only if its int8 copy is not made yet
                    source: str | bytes = str(tuned_int8_file(lambda: self.graph, self._digest))
                else:
                    source = float_graph(self.graph)
                self._sessions[threads] = session(source, threads)
            return self._sessions[threads]

    @property
    def graph(self) -> bytes:
        """The ONNX graph as a ``.clf`` stores it (float16 weights)."""
        if callable(self._graph):  # a loaded file's: read beside the load, checked when first asked for
            self._graph = self._graph()
        return self._graph

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        try:
            return super().embed_batch(texts)
        except (MemoryError, PromptClfError):  # the texts' size, or a problem already named
            raise
        except Exception as e:  # onnxruntime's errors have no common base: any other failure is the graph's
            if self.source is None:
                raise
            raise self.fault(f"cannot run ({type(e).__name__}: {str(e)[:200]})") from None

    def fault(self, problem: str) -> ModelFileError:
        """The error for a ``problem`` of the graph, naming the file it came from and its member."""
        return ModelFileError(
            f"{self.source}: encoder/model.onnx: {problem}", path=self.source, member="encoder/model.onnx"
        )

    def trainer(self) -> Embedder:
        if not self.quantized:
            return self
        if self._fp32 is None:
            self._fp32 = FinetunedOnnxEmbedder(
                self.base, self._graph, self.name, batch_size=self.batch_size, max_tokens=self.max_tokens,
                digest=self._digest, source=self.source,
            )  # fmt: skip
        return self._fp32

    def space(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.name}

    def to_spec(self) -> dict[str, Any]:
        return self.space()


def tuned_int8_file(graph: bytes | Callable[[], bytes], digest: str | None = None) -> Path:
    """The int8 quantisation of a fine-tuned graph (as stored: float16 weights are restored first),
    made once per graph (keyed by the hash of the stored bytes) and cached.

    ``digest``: the graph's sha256 hex digest where it is known already (a loaded ``.clf``'s manifest):
    hashing tens of MB again would cost every cold start. ``graph`` may be a function giving the bytes
    (checking them against ``digest``), called only when the int8 copy is not made yet.
    """
    stored = graph if callable(graph) else lambda: graph
    out = cache_dir() / "finetuned" / (digest or hashlib.sha256(stored()).hexdigest())[:16]
    int8 = out / f"model-{INT8_RECIPE}.onnx"
    if not int8.exists():
        out.mkdir(parents=True, exist_ok=True)
        fp32 = out / f".model.{os.getpid()}.onnx"  # quantize_dynamic reads a file
        fp32.write_bytes(float_graph(stored()))
        try:
            quantize(fp32, int8)
        finally:
            fp32.unlink(missing_ok=True)
    return int8
