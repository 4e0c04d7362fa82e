"""The packaged SmolLM2 requantised from its Q4_1 weights to Q8_0, on this machine, once, cached
(opt-in: ``promptclf.llms.local.REQUANTISED = True``).

llama.cpp's CPU kernels decode Q8_0 weights faster than Q4_1 in the steps the example requests take
(the pipeline's batch decoded side by side, ``llama_batch``): measured on 2 cores, a step of 8
sequences 1.45x and of 16 1.53x faster, of one as fast, and the pipeline kept 1.18x the examples per
minute (0.89-1.33x over eight samples). The model is the same to within rounding: on 5,167 tokens of
real text its next-token distributions are 0.009 nats (KL) from the packaged file's and its likelihood
is unchanged, where the 4-bit formats llama.cpp also runs faster (Q4_0, IQ4_NL) move them by 0.49 /
0.31 nats. But it samples other texts, and over three samples each, trec6 and emotion6 trained on them
(frozen encoder, with unlabeled texts) scored 1.8 and 1.9 points lower on average, and the default
tuned models +0.3 (trec6) and -4.4 (emotion6): no average favours it, so the packaged file stays the default
(BENCHMARKS.md, "Generation threads and weights"). The cost is disk and memory: 145 MB instead of 98.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import logging
import os
import threading
from pathlib import Path

from .._cache import cache_dir
from .._cpu import physical_cores

log = logging.getLogger("promptclf")
RECIPE = "Q8_0"  # in the cached file's name: another recipe never reuses this one's file
_LOCK = threading.Lock()
_FOUND: dict[Path, Path] = {}  # the cached file's path -> the file decoded


def requantised(src: Path) -> Path:
    """``src`` requantised to Q8_0 in the cache, made at first use (about a second); ``src`` itself,
    with a warning, where it cannot be made (the cache not writable, llama.cpp refusing the file)."""
    stamp = hashlib.sha256(f"{src}:{src.stat().st_size}:{RECIPE}".encode()).hexdigest()[:12]
    out = cache_dir() / "gguf" / f"{src.stem}-as-{RECIPE}-{stamp}.gguf"
    with _LOCK:
        # asked for at every request: made, or given up on, once per process (again if the file went away)
        if out not in _FOUND or not _FOUND[out].is_file():
            _FOUND[out] = out
            if not out.is_file():
                try:
                    quantise(src, out, "MOSTLY_Q8_0")
                except (OSError, RuntimeError) as e:
                    log.warning(
                        "could not requantise %s to %s in %s (%s): decoding it as packaged",
                        *(src.name, RECIPE, out.parent, e),
                    )
                    _FOUND[out] = src
        return _FOUND[out]


def quantise(src: Path, out: Path, ftype: str) -> None:
    """Write ``src`` requantised to ``ftype`` (a ``llama_cpp.LLAMA_FTYPE_*`` name without the prefix, as
    ``"MOSTLY_Q8_0"``) to ``out``, atomically: a half-written file is never used. Raises ``OSError`` or
    ``RuntimeError``."""
    import llama_cpp

    log.info("requantising %s to %s in %s (once)", src.name, ftype, out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{ftype}")
    params.allow_requantize = True  # the input is itself quantised: Q8_0 keeps each Q4_1 value to within its rounding
    params.nthread = physical_cores()
    notices = io.StringIO()  # llama.cpp logs every tensor; kept only for an error message
    try:
        with contextlib.redirect_stderr(notices):
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize returned {rc}: {notices.getvalue().strip()[-300:]}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
