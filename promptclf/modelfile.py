"""The ``.clf`` model file: a zip of JSON, JSONL and ``.npy`` members. No pickle anywhere.

A model file is something people download and share, so load trusts nothing in it:

- only members it knows by name are read, each bounded in size, all together bounded too;
- every member's sha256 must match the manifest;
- the manifest is validated against a strict schema (pydantic-core), JSON is parsed with bounded nesting and
  numbers (``safejson``), ``.npy`` headers are checked (dtype, shape against the manifest and the
  bytes present) before anything is allocated, and every array must be finite;
- everything else the classifier will use later (prompts, calibration) is checked here too, so a file
  that loads does not fail later in ``info`` or ``precision_recall_curves``. The training members
  (the examples and their cached vectors, ``TRAINING_MEMBERS``), which prediction never reads, are
  read and hashed on a second thread during the load and checked like the rest when first used
  (training, saving, ``get_data``); so is a fine-tuned or distilled encoder's graph (``ENCODER``),
  which prediction needs only the first time this machine sees it (its structural check and int8 copy
  are then remembered in the cache, by its sha256).

Every failure is a ``ModelFileError`` naming the file and the member.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import os
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ._atomic import atomic_write
from ._version import __version__
from .errors import ConfigurationError, InvalidInputError, ModelFileError
from .head import LinearHead
from .multilabel import OneVsRestHead
from .safejson import UnsafeJSON
from .safejson import loads as safe_loads
from .store import ExampleStore
from .words import MAX_TERMS, WordColumns

if TYPE_CHECKING:
    from .cascade import FastPath

log = logging.getLogger("promptclf")
T = TypeVar("T")
MAGIC = "promptclf-model"
FORMAT_VERSION = 2  # see save: only files with an encoder graph are written as 2
MANIFEST = "manifest.json"
MiB = 1 << 20
# Members written uncompressed: float32 arrays, which deflate shrinks by 7-9% (an encoder of 69 MB by
# 6 MB) at the price of inflating them at every load (most of a distilled model's cold start).
STORED = frozenset({"encoder/model.onnx", "cache/embeddings.npy"})
# Every member the format knows, with the most bytes it may hold uncompressed.
MEMBER_LIMITS = {
    MANIFEST: 4 * MiB,
    "prompts.json": 16 * MiB,
    "examples.jsonl": 256 * MiB,
    "head/coef.npy": 256 * MiB,
    "head/intercept.npy": 1 * MiB,
    "calibration/proba.npy": 256 * MiB,
    "calibration/labels.npy": 64 * MiB,
    "cache/texts.json": 256 * MiB,
    "cache/embeddings.npy": 768 * MiB,
    "encoder/model.onnx": 256 * MiB,  # a fine-tuned MiniLM is ~90 MB
    "fast/coef.npy": 256 * MiB,  # the static fast path's head (promptclf.cascade)
    "fast/intercept.npy": 1 * MiB,
    "fast/words.json": 16 * MiB,  # the fast path's word columns (promptclf.words): terms, in column order
    "fast/idf.npy": 1 * MiB,
}
# All members together: each at its own limit would need several GB of memory to load.
TOTAL_LIMIT = 1024 * MiB
MAX_LINES = 2_000_000  # lines of examples.jsonl; also the most examples and cached texts
MAX_CLASSES = 10_000
MAX_NAME = 1_000  # characters of a class name, embedder or LLM model name
MAX_DIMENSION = 65_536
MAX_TERM = 1_000  # characters of one term of the fast path's word columns
ARRAY_MEMBERS = {m for m in MEMBER_LIMITS if m.endswith(".npy")}
HEAD_KINDS = {False: "logistic-regression", True: "one-vs-rest-logistic-regression"}
# Members only training reads (the examples and their cached vectors): read and checksummed on a second
# thread while load checks the rest, parsed on first use. A load grows less with the training set: the
# cold start of a model carrying 69,000 cached vectors (109 MB) 0.52 s instead of 0.61, of one carrying
# the 6,920 sst2 texts' 0.02 s less (bench/cold_start.py's noise is larger)
TRAINING_MEMBERS = ("examples.jsonl", "cache/texts.json", "cache/embeddings.npy")
# A fine-tuned or distilled encoder's graph (tens of MB): read and checksummed on the training members'
# thread (first), checked (``check_encoder_graph``) at load only the first time this machine sees it, and
# otherwise asked for only when its int8 copy must be made, it is served in fp32, trained or saved
ENCODER = "encoder/model.onnx"
# Off: the graph is read and checksummed with the other members, as before (a switch for the benchmarks)
ENCODER_BESIDE = True
REQUIRED = {MANIFEST, "prompts.json", "examples.jsonl", "head/coef.npy", "head/intercept.npy"}


@dataclass
class ModelState:
    """Everything a ``.clf`` holds, checked and typed; the classifier maps it to its attributes."""

    classes: list[str]
    embedder: dict[str, str]  # kind, model: the vector space the head was trained in
    dimension: int
    head: LinearHead
    thresholds: np.ndarray
    prompts: dict[str, str]
    store: ExampleStore | None  # None as read: see ``training``
    settings: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, str] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)  # source, target_precision, n, precision
    calibration_arrays: tuple[np.ndarray, np.ndarray] | None = None  # probabilities, label indices
    cached: tuple[list[str], np.ndarray] | None = None  # texts and their vectors in ``embedder``'s space
    training_summary: dict[str, Any] = field(default_factory=dict)
    generation_report: dict[str, Any] | None = None
    self_training_report: dict[str, Any] | None = None
    encoder: dict[str, Any] | None = None  # base, name, report of a fine-tuned encoder
    # its ONNX graph, checked against the base architecture; as read, a function giving its bytes (read
    # beside the load, checked against encoder_sha256 when first asked for)
    encoder_graph: bytes | Callable[[], bytes] | None = None
    encoder_sha256: str | None = None  # the graph's sha256: verified, or as read the manifest's (see above)
    fast: FastPath | None = None  # the static fast path: embedder spec, head, threshold
    promptclf_version: str = __version__
    sha256: str | Future[str] = ""  # of the whole file; as read, hashed on a second thread (``Archive.digest``)
    training: TrainingMembers | None = None  # as read: the examples and cached vectors, parsed when asked for


@dataclass
class Archive:
    """A model file's members as ``_Reader.members`` reads them: the encoder's graph and the training
    members (``TRAINING_MEMBERS``) on a second thread, the whole file's sha256 on a third, the rest at
    once. A member read beside that cannot be read (a damaged stream, a bad CRC) fails the others with
    it: each of their uses raises the error naming that member."""

    data: dict[str, bytes]  # every member but those read beside (``later``)
    later: frozenset[str]  # the members read beside: the training members and the encoder the file has
    beside: Future[dict[str, tuple[bytes, str]]]  # those, read: name -> (bytes, sha256)
    digest: Future[str]


@dataclass
class Beside:
    """Members read on another thread, each checked against the manifest's checksum when first asked for."""

    reader: _Reader
    members: Future[dict[str, tuple[bytes, str]]]  # as Archive.beside
    sha256: dict[str, str]  # what the manifest says each hashes to

    def checked(self, name: str) -> bytes:
        raw, digest = self.members.result()[name]
        if digest != self.sha256[name]:
            raise self.reader.fail("checksum mismatch; the file is damaged or was modified", name)
        return raw


@dataclass
class TrainingMembers(Beside):
    """A read file's examples and cached vectors: read beside the load, checked and parsed when first
    asked for.

    Prediction needs neither, and both grow with the training set: on a model trained on the 6,920
    sst2 texts parsing them at load took 0.03 s of a 0.3 s cold start (bench/cold_start.py) and
    reading them about 0.02 s (``TRAINING_MEMBERS``). Their sizes are checked at load with every other
    member's; a problem found when they are used (a checksum, the examples' line count, their content)
    is a ``ModelFileError`` naming the member, as it would have been at load.
    """

    embedder: dict[str, str]  # the vector space of the cached vectors (the head's)
    dimension: int

    def store(self) -> ExampleStore:
        raw = self.checked("examples.jsonl")
        # lines counted before anything decodes them: 512 MiB of newlines would become 512M empty strings
        if raw.count(b"\n") > MAX_LINES:
            raise self.reader.fail(f"has more than {MAX_LINES} lines", "examples.jsonl")
        return _store(self.reader, raw)

    def cached(self) -> tuple[list[str], np.ndarray] | None:
        """The cached texts and their vectors in the head's space, if the file has them."""
        if "cache/texts.json" not in self.sha256:
            return None
        r = self.reader
        texts = r.json(self.checked("cache/texts.json"), "cache/texts.json")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or len(texts) > MAX_LINES:
            raise r.fail(f"is not a list of at most {MAX_LINES} strings", "cache/texts.json")
        vectors = self.checked("cache/embeddings.npy")
        return texts, r.array(vectors, "cache/embeddings.npy", (len(texts), self.dimension))


# ---------------------------------------------------------------------------------------- schema
def _check_classes(v: list[str]) -> list[str]:
    if len(set(v)) != len(v):
        raise ValueError("class names must be unique")
    if any(not c.strip() for c in v):
        raise ValueError("class names must not be blank")
    return v


def _check_summary(v: dict[str, Any]) -> dict[str, Any]:
    # the fields info and the API read back
    cv = v.get("cv_accuracy")
    if cv is not None and (not isinstance(cv, (int, float)) or not 0 <= cv <= 1):
        raise ValueError("cv_accuracy must be a number from 0 to 1")
    for k in ("trained_at",):
        if v.get(k) is not None and not isinstance(v[k], str):
            raise ValueError(f"{k} must be a string")
    for k in ("C", "prior_weight"):
        if v.get(k) is not None and not isinstance(v[k], (int, float)):
            raise ValueError(f"{k} must be a number")
    if not isinstance(v.get("per_class", {}), dict):
        raise ValueError("per_class must be an object")
    return v


# schema_fingerprint() as of this code: markers of manifests that passed the schema are named with it,
# so that loading need not build the schema to find them. tests/test_modelfile.py fails until it is
# updated after a change of the schema (markers of the old rules are then ignored).
SCHEMA_FINGERPRINT = "4cec10f46b41db9e"


def schema_fingerprint() -> str:
    """A digest of the manifest schema's rules: its definition, and the source of the checks it calls."""
    import inspect

    rules = json.dumps(_schema_definition(), sort_keys=True, default=lambda f: f.__qualname__)  # functions by name
    checks = [inspect.getsource(f) for f in (_check_classes, _check_summary)]
    return hashlib.sha256(json.dumps([rules, checks]).encode()).hexdigest()[:16]


@functools.cache
def _schema():
    """The manifest's schema as a pydantic-core validator, built on first use (once)."""
    from pydantic_core import SchemaValidator

    # strict (a "3" is not a number, a true not a 1): asked for at validation, which covers every
    # level (a CoreConfig given to the validator alone does not reach the nested dicts)
    return SchemaValidator(_schema_definition())


def _schema_definition() -> Any:
    """The manifest's schema, in pydantic-core's schema language (plain dicts).

    Written in pydantic-core's own schema language rather than as pydantic models: building the
    models cost 60 ms of a 0.35 s cold start (BENCHMARKS.md, "Cold start"), the core validator
    under a millisecond, and the validation (Rust, strict) is the same. Validated manifests are
    plain dicts with every default filled in. Extra keys are ignored: a newer minor version may
    add some.
    """
    from pydantic_core import core_schema as cs

    def field(schema: Any, default: Any = ..., *, factory: Any = None) -> Any:
        if factory is not None:
            return cs.typed_dict_field(cs.with_default_schema(schema, default_factory=factory), required=False)
        if default is ...:
            return cs.typed_dict_field(schema)
        return cs.typed_dict_field(cs.with_default_schema(schema, default=default), required=False)

    def obj(fields: dict[str, Any]) -> Any:
        return cs.typed_dict_schema(fields, extra_behavior="ignore")

    def optional(schema: Any) -> Any:
        return cs.nullable_schema(schema)

    name = cs.str_schema(min_length=1, max_length=MAX_NAME)
    unit = cs.float_schema(ge=0.0, le=1.0, allow_inf_nan=False)
    count = cs.int_schema(ge=0, le=10**9)
    interval = cs.list_schema(unit, min_length=2, max_length=2)
    anything = cs.dict_schema(cs.str_schema(), cs.any_schema())
    number = cs.union_schema([cs.int_schema(), cs.float_schema()])
    spec = {"kind": field(name), "model": field(name)}
    embedder_spec = obj({**spec, "dimension": field(cs.int_schema(ge=1, le=MAX_DIMENSION))})
    class_estimate = obj(
        {"answered": field(count), "precision": field(optional(unit), None), "interval": field(interval)}
    )
    estimate = obj(
        {
            "n": field(count),
            "precision": field(optional(unit), None),
            "precision_interval": field(interval),
            "coverage": field(optional(unit), None),
            "coverage_interval": field(interval),
            "per_class": field(cs.dict_schema(name, class_estimate), factory=dict),
            "method": field(cs.str_schema(max_length=200), ""),
        }
    )
    calibration = obj(
        {
            "source": field(cs.literal_schema(["out-of-fold", "labelled"]), "out-of-fold"),
            "target_precision": field(cs.float_schema(gt=0.0, le=1.0, allow_inf_nan=False), 0.9),
            "n": field(optional(count), None),
            "precision": field(cs.dict_schema(name, unit), factory=dict),
            # which rows chose the thresholds: synthetic/pseudo out-of-fold, or real labels (calibrated).
            # Files written before these fields: "labelled" was real, anything else synthetic.
            "labels": field(optional(cs.literal_schema(["synthetic", "real"])), None),
            "calibrated_classes": field(optional(cs.list_schema(name)), None),  # classes real labels calibrated
            "real_labels": field(cs.dict_schema(name, count), factory=dict),
            "estimate": field(optional(estimate), None),
        }
    )
    encoder = obj({"base": field(obj(spec)), "name": field(name), "report": field(anything, factory=dict)})
    fast = obj(
        {
            "embedder": field(embedder_spec),
            "threshold": field(cs.float_schema(ge=0.0, le=1.01, allow_inf_nan=False)),
            "estimate": field(cs.dict_schema(cs.str_schema(), number), factory=dict),
            "words": field(optional(cs.int_schema(ge=1, le=MAX_TERMS)), None),  # word columns after the vector's
            # the static head's weight where it does not answer; files before it: 0, the transformer alone
            "blend": field(cs.float_schema(ge=0.0, le=1.0, allow_inf_nan=False), 0.0),
        }
    )
    member = obj(
        {
            "sha256": field(cs.str_schema(pattern=r"^[0-9a-f]{64}$")),
            "size": field(cs.int_schema(ge=0, le=TOTAL_LIMIT)),
        }
    )
    manifest = obj(
        {
            "format": field(cs.literal_schema([MAGIC])),
            "format_version": field(cs.int_schema(ge=1, le=FORMAT_VERSION)),
            "promptclf_version": field(cs.str_schema(max_length=64), "0"),
            "created": field(optional(cs.str_schema(max_length=64)), None),
            "classes": field(
                cs.no_info_after_validator_function(
                    _check_classes, cs.list_schema(name, min_length=2, max_length=MAX_CLASSES)
                )
            ),
            "embedder": field(embedder_spec),
            "llm": field(optional(obj(spec)), None),
            "encoder": field(optional(encoder), None),
            "fast": field(optional(fast), None),
            "head": field(
                obj(
                    {
                        "kind": field(cs.literal_schema(list(HEAD_KINDS.values()))),
                        "C": field(cs.float_schema(gt=0.0, le=1e6, allow_inf_nan=False)),
                    }
                )
            ),
            "thresholds": field(cs.list_schema(unit)),
            "target_precision": field(unit, 0.9),  # format 1 before calibration info; superseded by calibration
            "calibration": field(optional(calibration), None),
            "settings": field(anything, factory=dict),
            "training_summary": field(cs.no_info_after_validator_function(_check_summary, anything), factory=dict),
            "generation_report": field(optional(anything), None),
            "self_training_report": field(optional(anything), None),
            "members": field(cs.dict_schema(cs.str_schema(), member)),
        }
    )
    return manifest


# ---------------------------------------------------------------------------------------- write
def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _json_safe(obj: Any) -> Any:
    """Reports hold numpy scalars here and there; the file holds plain JSON."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def save(path: str | os.PathLike[str], state: ModelState) -> None:
    """Serialise ``state`` and write it atomically: a failed save leaves any existing file untouched."""
    arrays = {"head/coef.npy": state.head.coef_, "head/intercept.npy": state.head.intercept_}
    if state.calibration_arrays is not None:
        proba, labels = state.calibration_arrays
        arrays["calibration/proba.npy"] = np.nan_to_num(proba.astype(np.float32), nan=0.0)  # NaN: label unknown
        arrays["calibration/labels.npy"] = labels.astype(np.int8 if state.head.multi_label else np.int32)
    if state.store is None:  # a state as read carries its examples unparsed; the classifier parses them to save
        raise ValueError("a model state to save needs its example store")
    members: dict[str, bytes] = {
        "prompts.json": json.dumps(state.prompts, ensure_ascii=False, indent=1).encode(),
        "examples.jsonl": state.store.to_jsonl().encode(),
    }
    if state.cached is not None:
        arrays["cache/embeddings.npy"] = state.cached[1].astype(np.float32)
        members["cache/texts.json"] = json.dumps(state.cached[0], ensure_ascii=False).encode()
    for name, arr in arrays.items():
        members[name] = _npy_bytes(arr)
    if state.encoder_graph is not None:
        members["encoder/model.onnx"] = state.encoder_graph
    fast = None
    if state.fast is not None:
        members["fast/coef.npy"] = _npy_bytes(state.fast.head.coef_)
        members["fast/intercept.npy"] = _npy_bytes(state.fast.head.intercept_)
        words, n_terms = state.fast.words, state.fast.n_terms
        if words is not None:
            members["fast/words.json"] = json.dumps(words.vocabulary, ensure_ascii=False).encode()
            members["fast/idf.npy"] = _npy_bytes(words.idf.astype(np.float32))
        fast = {
            "embedder": {**state.fast.embedder, "dimension": int(state.fast.head.n_features_in_) - n_terms},
            "threshold": float(state.fast.threshold),
            "blend": float(state.fast.blend),
            "estimate": state.fast.estimate,
            "words": n_terms or None,
        }
    manifest = {
        "format": MAGIC,
        # 2: an encoder graph may hold float16 weights, which format-1 readers refuse with a
        # misleading message; files without an encoder stay readable by them
        "format_version": FORMAT_VERSION if state.encoder_graph is not None else 1,
        "promptclf_version": __version__,
        "created": utc_now(),
        "classes": list(state.classes),
        "embedder": {**state.embedder, "dimension": int(state.dimension)},
        "llm": state.llm,
        "encoder": state.encoder,
        "fast": fast,
        "head": {"kind": HEAD_KINDS[state.head.multi_label], "C": float(state.head.C_)},
        "thresholds": [float(t) for t in state.thresholds],
        "target_precision": float(state.calibration.get("target_precision", 0.9)),
        "calibration": {k: v for k, v in state.calibration.items() if k != "calibrated"},  # read derives it
        "settings": state.settings,
        "training_summary": state.training_summary,
        "generation_report": state.generation_report,
        "self_training_report": state.self_training_report,
        "members": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in members.items()},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(_json_safe(manifest), ensure_ascii=False, indent=1))
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name in STORED else None)
    try:
        atomic_write(Path(path), buf.getvalue())
    except OSError as e:
        raise ModelFileError(f"cannot write model file {path}: {e}", path=str(path)) from e


def utc_now() -> str:
    """The time stamp of manifests and training summaries: UTC, seconds."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------- read
# Work ``_beside`` started and not finished. A thread does not survive a fork: a process forked while one
# ran (a server's workers forked right after the parent loaded a model) would wait for its result for
# ever. Before a fork, they are let finish (tens of milliseconds).
_IN_FLIGHT: set[Future[Any]] = set()
_FORK_LOCK = threading.Lock()
_fork_hooked = False


def _settle() -> None:
    for future in list(_IN_FLIGHT):
        future.exception()  # waits; the error, if any, stays for whoever asks for the result


def _beside(work: Callable[[], T], name: str) -> Future[T]:
    """``work()`` on a second thread beside the rest of ``read``: its result, or its error, where it is wanted.

    hashlib, zlib and zlib's CRC let go of the GIL over large buffers, so on a second core the whole-file
    digest and the training members cost little wall time.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as e:  # raised where the result is wanted, not lost with the thread (a hang)
            future.set_exception(e)

    with _FORK_LOCK:
        global _fork_hooked
        if not _fork_hooked and hasattr(os, "register_at_fork"):  # POSIX: where there is no fork, no hook
            os.register_at_fork(before=_settle)
            _fork_hooked = True
        _IN_FLIGHT.add(future)
    future.add_done_callback(_IN_FLIGHT.discard)
    threading.Thread(target=run, daemon=True, name=f"promptclf-{name}").start()
    return future


def _sha256_beside(raw: bytes) -> Future[str]:
    """The sha256 of a file's bytes, hashed beside the rest of ``read`` (it was a quarter of a distilled
    model's cold start: the bytes were hashed once for the file and once more member by member)."""
    return _beside(lambda: hashlib.sha256(raw).hexdigest(), "sha256")


class _Reader:
    """Reads one file; ``fail`` makes every error name the file and the member."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.where = str(path)

    def fail(self, msg: str, member: str | None = None) -> ModelFileError:
        prefix = f"{self.where}: {member}: " if member else f"{self.where}: "
        return ModelFileError(prefix + msg, path=self.where, member=member)

    # -- the archive ---------------------------------------------------------------------------
    def members(self) -> Archive:
        p = Path(self.path)
        if not p.exists():
            raise ModelFileError(f"model file not found: {self.where}", path=self.where)
        if p.is_dir():
            raise ModelFileError(f"{self.where} is a folder, not a model file", path=self.where)
        try:
            raw = p.read_bytes() if p.stat().st_size <= TOTAL_LIMIT else None
        except OSError as e:
            raise ModelFileError(f"cannot read {self.where}: {e}", path=self.where) from None
        if raw is None:
            raise self.fail(f"the file is larger than {TOTAL_LIMIT} bytes")
        digest = _sha256_beside(raw)
        # zipfile raises a dozen kinds of exception on a damaged archive (BadZipFile, struct and
        # zlib errors, NotImplementedError for an unknown "version needed", EOFError, ...): any of
        # them means the same thing here, a file that is not a model we can read.
        try:
            zf = zipfile.ZipFile(io.BytesIO(raw))
        except Exception:
            raise ModelFileError(
                f"{self.where} is not a promptclf model file (not a zip archive, or truncated)", path=self.where
            ) from None
        with zf:
            infos: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                if info.filename not in MEMBER_LIMITS:
                    raise self.fail(f"unexpected member {info.filename!r}; refusing to load")
                if info.filename in infos:
                    raise self.fail(f"member {info.filename!r} appears twice")
                if info.file_size > MEMBER_LIMITS[info.filename]:
                    raise self.fail(
                        f"declares {info.file_size} bytes, over the {MEMBER_LIMITS[info.filename]} limit",
                        info.filename,
                    )
                infos[info.filename] = info
            total = sum(i.file_size for i in infos.values())
            if total > TOTAL_LIMIT:
                raise self.fail(f"members declare {total} bytes in all, over the {TOTAL_LIMIT} limit")
            if MANIFEST not in infos:
                raise ModelFileError(f"{self.where} is not a promptclf model file (no {MANIFEST})", path=self.where)
            # one thread for both (the encoder first): a thread start waits for a core, and on two cores
            # busy with the file's hash and this thread a third start cost about 10 ms
            beside = ((ENCODER,) if ENCODER_BESIDE else ()) + TRAINING_MEMBERS
            later = {name: infos.pop(name) for name in beside if name in infos}
            read = _beside(lambda: self._read_apart(raw, later), "members")
            data = {name: self._read(zf, info) for name, info in infos.items()}
            return Archive(data, frozenset(later), read, digest)

    def _read_apart(self, raw: bytes, infos: dict[str, zipfile.ZipInfo]) -> dict[str, tuple[bytes, str]]:
        """Members with their sha256, read through an archive of their own (a second thread's)."""
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            data = {name: self._read(zf, info) for name, info in infos.items()}
        return {name: (d, hashlib.sha256(d).hexdigest()) for name, d in data.items()}

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        limit = MEMBER_LIMITS[info.filename]
        try:
            with zf.open(info) as f:
                data = f.read(limit + 1)
        except Exception as e:
            raise self.fail(f"is corrupt ({type(e).__name__}: {e})", info.filename) from None
        if len(data) > limit:
            raise self.fail(f"is larger than the {limit}-byte limit", info.filename)
        return data

    def json(self, raw: bytes, member: str) -> Any:
        try:
            return safe_loads(raw)
        except UnsafeJSON as e:
            raise self.fail(f"is not valid JSON ({e})", member) from None

    # -- the manifest --------------------------------------------------------------------------
    def manifest(self, raw: bytes) -> Any:
        obj = self.json(raw, MANIFEST)
        if not isinstance(obj, dict) or obj.get("format") != MAGIC:
            raise ModelFileError(f"{self.where} is not a promptclf model file (bad manifest)", path=self.where)
        version = obj.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise self.fail(
                f"uses model format {version}, newer than this promptclf reads ({FORMAT_VERSION}): upgrade promptclf",
                MANIFEST,
            )
        # a manifest that passed the schema unchanged (no default filled, no key dropped) leaves a marker
        # named by its bytes: the next load of it skips importing pydantic-core (about a tenth of a
        # small model's cold start). Every other check of the file still runs at every load.
        marker = _check_marker("manifest", SCHEMA_FINGERPRINT, hashlib.sha256(raw).hexdigest())
        if marker.exists():
            return obj
        from pydantic_core import ValidationError

        try:
            valid = _schema().validate_python(obj, strict=True)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"]) or "(top)"
            raise self.fail(f"{loc}: {first['msg']} ({e.error_count()} problem(s) in all)", MANIFEST) from None
        if json.dumps(valid, sort_keys=True) == json.dumps(obj, sort_keys=True):  # exact: 1 is not 1.0
            _remember(marker)
        return valid

    # -- arrays --------------------------------------------------------------------------------
    def array(self, raw: bytes, member: str, shape: tuple[int | None, ...], kinds: str = "f") -> np.ndarray:
        """Parse a ``.npy`` after checking its header: dtype kind, shape (``None`` = any), byte count."""
        f = io.BytesIO(raw)
        try:
            major, _ = np.lib.format.read_magic(f)
            if major == 1:
                got_shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif major in (2, 3):
                got_shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unknown .npy version {major}")
        except Exception as e:
            raise self.fail(f"is not a valid array ({type(e).__name__}: {e})", member) from None
        if dtype.hasobject or dtype.kind not in kinds or dtype.itemsize > 8:
            raise self.fail(f"has unexpected type {dtype}", member)
        if len(got_shape) != len(shape) or any(w is not None and g != w for g, w in zip(got_shape, shape)):
            want = tuple("*" if w is None else w for w in shape)
            raise self.fail(f"has shape {got_shape}, expected {want}", member)
        count = math.prod(got_shape)
        offset = f.tell()
        if count * dtype.itemsize != len(raw) - offset:
            raise self.fail(
                f"holds {len(raw) - offset} bytes of data, not the {count * dtype.itemsize} its header says", member
            )
        arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
        arr = arr.reshape(got_shape, order="F" if fortran else "C")
        if dtype.kind == "f" and not np.isfinite(arr).all():
            raise self.fail("holds NaN or infinite values", member)
        return arr


def read(path: str | os.PathLike[str]) -> ModelState:
    """Read and check a ``.clf``; every problem is a ``ModelFileError``."""
    r = _Reader(path)
    archive = r.members()
    data, names = archive.data, set(archive.data) | archive.later
    m = r.manifest(data[MANIFEST])
    for name in REQUIRED - {MANIFEST}:
        if name not in names:
            raise r.fail("is missing", name)
    for name in names - {MANIFEST}:
        if name not in m["members"]:
            raise r.fail("is not listed in the manifest", name)
    for name, raw in data.items():  # the training members' when they are used (TrainingMembers)
        if name != MANIFEST and hashlib.sha256(raw).hexdigest() != m["members"][name]["sha256"]:
            raise r.fail("checksum mismatch; the file is damaged or was modified", name)
    for name in m["members"]:
        if name not in names:
            raise r.fail("is missing", name)
    _check_version(r, m["promptclf_version"])

    k, dim = len(m["classes"]), m["embedder"]["dimension"]
    if len(m["thresholds"]) != k:
        raise r.fail(f"has {len(m['thresholds'])} thresholds for {k} classes", MANIFEST)
    multi = m["head"]["kind"] == HEAD_KINDS[True]
    if multi != bool(m["settings"].get("multi_label", False)):
        raise r.fail(f"head {m['head']['kind']!r} does not match the setting multi_label={not multi}", MANIFEST)
    rows = k if multi or k > 2 else 1
    coef = r.array(data["head/coef.npy"], "head/coef.npy", (rows, None))
    if coef.shape[1] != dim:
        raise r.fail(f"has {coef.shape[1]} features but the manifest says dimension {dim}", "head/coef.npy")
    intercept = r.array(data["head/intercept.npy"], "head/intercept.npy", (rows,))
    classes = np.asarray(m["classes"], dtype=str)
    head_type = OneVsRestHead if multi else LinearHead
    head = head_type(classes, coef.astype(np.float32), intercept.astype(np.float32), float(m["head"]["C"]))

    calibration_arrays = None
    if ("calibration/proba.npy" in data) != ("calibration/labels.npy" in data):
        raise r.fail("calibration needs both calibration/proba.npy and calibration/labels.npy")
    if "calibration/proba.npy" in data:
        proba = r.array(data["calibration/proba.npy"], "calibration/proba.npy", (None, k))
        # single-label: a class index per row; multi-label: per row and class 1, 0, or -1 (unknown)
        shape = (proba.shape[0], k) if multi else (proba.shape[0],)
        labels = r.array(data["calibration/labels.npy"], "calibration/labels.npy", shape, kinds="iu")
        finite = proba[np.isfinite(proba)]  # multi-label: NaN where a class's label is unknown
        if (finite.size and (finite.min() < 0 or finite.max() > 1)) or (not multi and finite.size != proba.size):
            raise r.fail("holds values outside [0, 1]", "calibration/proba.npy")
        low, high = (-1, 1) if multi else (0, k - 1)
        if labels.size and (labels.min() < low or labels.max() > high):
            raise r.fail(f"holds labels outside {low}..{high}", "calibration/labels.npy")
        calibration_arrays = (proba, labels.astype(np.int64))

    prompts = r.json(data["prompts.json"], "prompts.json")
    if not isinstance(prompts, dict):
        raise r.fail("is not a mapping of class name to description", "prompts.json")
    from ._validation import check_prompts

    try:
        prompts = check_prompts(prompts) if prompts else {}
    except InvalidInputError as e:
        raise r.fail(str(e), "prompts.json") from None

    if ("cache/texts.json" in names) != ("cache/embeddings.npy" in names):
        raise r.fail("the embedding cache needs both cache/texts.json and cache/embeddings.npy")
    embedder = {"kind": m["embedder"]["kind"], "model": m["embedder"]["model"]}
    sums = {name: m["members"][name]["sha256"] for name in archive.later if name in TRAINING_MEMBERS}
    training = TrainingMembers(r, archive.beside, sums, embedder, dim)

    encoder, graph = None, None
    if (ENCODER in names) != (m["encoder"] is not None):
        raise r.fail("a fine-tuned encoder needs both its manifest entry and encoder/model.onnx")
    if m["encoder"] is not None:
        if m["embedder"]["kind"] != "finetuned" or m["embedder"]["model"] != m["encoder"]["name"]:
            raise r.fail("the head's embedder is not the fine-tuned encoder the file carries", MANIFEST)
        if m["encoder"]["base"]["kind"] != "sentence-transformers":
            raise r.fail(
                f"encoder base must be a sentence-transformers model, got {m['encoder']['base']['kind']}", MANIFEST
            )
        digest = m["members"][ENCODER]["sha256"]
        if ENCODER in archive.later:
            graph = functools.partial(Beside(r, archive.beside, {ENCODER: digest}).checked, ENCODER)
        else:  # read with the rest (ENCODER_BESIDE off): checksummed above
            graph = data[ENCODER]
        try:
            check_encoder_graph_once(graph, m["encoder"]["base"]["model"], digest)
        except ValueError as e:
            raise r.fail(str(e), "encoder/model.onnx") from None
        encoder = m["encoder"]

    fast = _fast(r, m, data, classes, rows)
    from .settings import SAVED, validate

    settings = {k2: v for k2, v in m["settings"].items() if k2 in SAVED}
    try:
        validate(settings)
    except ConfigurationError as e:
        raise r.fail(f"settings: {e}", MANIFEST) from None
    cal = m["calibration"] if m["calibration"] is not None else {"target_precision": m["target_precision"]}
    if cal.get("labels") is None:
        cal["labels"] = "real" if cal.get("source") == "labelled" else "synthetic"
    cal["calibrated"] = cal["labels"] == "real"
    if cal.get("calibrated_classes") is None:
        cal["calibrated_classes"] = list(m["classes"]) if cal["calibrated"] else []
    named = set(cal.get("precision", {})) | set(cal.get("real_labels", {})) | set(cal["calibrated_classes"])
    named |= set((cal.get("estimate") or {}).get("per_class", {}))
    unknown = named - set(m["classes"])
    if unknown:
        raise r.fail(f"calibration names classes not in the model: {sorted(unknown)[:5]}", MANIFEST)
    return ModelState(
        classes=list(m["classes"]),
        embedder=embedder,
        dimension=dim,
        head=head,
        thresholds=np.asarray(m["thresholds"], dtype=np.float64),
        prompts=prompts,
        store=None,
        settings=settings,
        llm={"kind": m["llm"]["kind"], "model": m["llm"]["model"]} if m["llm"] is not None else None,
        calibration=cal,
        calibration_arrays=calibration_arrays,
        training_summary=m["training_summary"],
        generation_report=m["generation_report"],
        self_training_report=m["self_training_report"],
        encoder=encoder,
        encoder_graph=graph,
        encoder_sha256=m["members"][ENCODER]["sha256"] if graph is not None else None,
        fast=fast,
        promptclf_version=m["promptclf_version"],
        sha256=archive.digest,
        training=training,
    )


def _fast(r: _Reader, m: dict[str, Any], data: dict[str, bytes], classes: np.ndarray, rows: int) -> FastPath | None:
    """The static fast path, if the file has one: both arrays and the manifest entry, consistent."""
    from .cascade import FastPath

    present = {"fast/coef.npy" in data, "fast/intercept.npy" in data, m["fast"] is not None}
    if present == {False}:
        return None
    if present != {True}:
        raise r.fail("a fast path needs its manifest entry, fast/coef.npy and fast/intercept.npy")
    if m["head"]["kind"] != HEAD_KINDS[False]:
        raise r.fail("a fast path goes with a single-label head only", MANIFEST)
    fast = m["fast"]
    if fast["embedder"]["kind"] != "model2vec":
        raise r.fail(f"a fast path's embedder must be static (model2vec), got {fast['embedder']['kind']!r}", MANIFEST)
    dim, n_terms = fast["embedder"]["dimension"], fast.get("words") or 0
    coef = r.array(data["fast/coef.npy"], "fast/coef.npy", (rows, dim + n_terms))
    intercept = r.array(data["fast/intercept.npy"], "fast/intercept.npy", (rows,))
    C = float(fast["estimate"].get("C", m["head"]["C"]))  # the static head's own, where training chose one
    head = LinearHead(classes, coef.astype(np.float32), intercept.astype(np.float32), C)
    spec = {"kind": fast["embedder"]["kind"], "model": fast["embedder"]["model"]}
    words = _words(r, data, n_terms)
    return FastPath(spec, head, float(fast["threshold"]), dict(fast["estimate"]), words, float(fast["blend"]))


def _words(r: _Reader, data: dict[str, bytes], n_terms: int) -> WordColumns | None:
    """The fast path's word columns: as many distinct terms as the manifest says, an idf for each."""
    present = {"fast/words.json" in data, "fast/idf.npy" in data, n_terms > 0}
    if present == {False}:
        return None
    if present != {True}:
        raise r.fail("word columns need the manifest's count, fast/words.json and fast/idf.npy")
    terms = r.json(data["fast/words.json"], "fast/words.json")
    if (
        not isinstance(terms, list)
        or len(terms) != n_terms
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TERM for t in terms)
        or len(set(terms)) != len(terms)
    ):
        why = f"fast/words.json must list {n_terms} distinct terms of 1-{MAX_TERM} characters"
        raise r.fail(why, "fast/words.json")
    idf = r.array(data["fast/idf.npy"], "fast/idf.npy", (n_terms,))
    if not np.all(np.isfinite(idf)) or np.any(idf < 1):  # scikit-learn's smoothed idf is at least 1
        raise r.fail("fast/idf.npy must hold finite values of at least 1", "fast/idf.npy")
    return WordColumns(terms, idf.astype(np.float32))


# What our export of a BERT-style sentence encoder contains (opset 17, default domain only).
ENCODER_OPS = {
    "Add", "And", "Cast", "Concat", "Constant", "ConstantOfShape", "Div", "Equal", "Erf", "Expand", "Flatten",
    "Gather", "GreaterOrEqual", "IsNaN", "LayerNormalization", "MatMul", "Mul", "Range", "Reshape", "Shape",
    "Slice", "Softmax", "Sqrt", "Sub", "Pow", "ReduceMean", "Neg", "Transpose", "Unsqueeze", "Where",
}  # fmt: skip
ENCODER_INPUTS = [("input_ids", 7), ("attention_mask", 7), ("token_type_ids", 7)]  # int64


def check_encoder_graph(graph: bytes, base: str) -> None:
    """Does an ONNX graph have the shape of an encoder exported from ``base``? ``ValueError`` if not.

    Checked without PyTorch: inputs and output as ``export_model`` writes them, only the operators
    that export uses (no custom domains or functions), float32 weights (or float16, as
    ``half_graph`` stores them), and no more parameters than the base model's own weights hold (read
    from the header of its packaged ``model.safetensors``).
    """
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError as e:  # pragma: no cover - onnx is a dependency
        raise ValueError(f"cannot check the encoder without the onnx package ({e})") from None
    try:
        m = onnx.load_model_from_string(graph)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ValueError(f"is not a valid ONNX model ({type(e).__name__})") from None
    g = m.graph
    inputs = [(i.name, i.type.tensor_type.elem_type) for i in g.input]
    if inputs != ENCODER_INPUTS or [o.name for o in g.output] != ["last_hidden_state"]:
        raise ValueError(f"has inputs {inputs} and outputs {[o.name for o in g.output]}, not an encoder's")
    if g.output[0].type.tensor_type.elem_type != 1:
        raise ValueError("its output is not float32")
    if m.functions or any(op.domain not in ("", "ai.onnx") for op in m.opset_import):
        raise ValueError("uses custom operator domains or functions")
    ops = {n.op_type for n in g.node}
    if any(n.domain not in ("", "ai.onnx") for n in g.node) or not ops <= ENCODER_OPS:
        raise ValueError(f"uses operators an exported encoder does not: {sorted(ops - ENCODER_OPS)[:5]}")
    if any(i.data_location == onnx.TensorProto.EXTERNAL or i.external_data for i in g.initializer):
        raise ValueError("refers to external data")
    weights = 0
    for i in g.initializer:  # float16: stored by half_graph (format 2), restored to float32 at use
        if i.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            raise ValueError(f"weight {i.name[:60]!r} is not float32 or float16")
        weights += math.prod(i.dims)
    limit = _base_parameters(base)
    if weights > limit:
        raise ValueError(f"holds {weights} weights, more than the base model's {limit}")


# Bump when check_encoder_graph's rules change: graphs passed by an older check are checked again.
CHECK_REVISION = 2  # 2: float16 weights allowed


def check_encoder_graph_once(graph: bytes | Callable[[], bytes], base: str, digest: str) -> None:
    """``check_encoder_graph``, remembered per graph on this machine.

    ``digest`` is the graph's sha256, verified against these bytes by the caller, or by ``graph`` when
    that is a function giving them (a loaded file's, read beside the load; called only where the graph
    was not checked here before). A graph that passed leaves an empty marker in the cache folder named
    by that digest, the base model, its weight count and the rules; the next load of the same graph
    skips the parse (importing ``onnx`` and parsing tens of MB took a third of a distilled model's cold
    start). The marker is trusted as the int8 copies beside it are: whoever can write the cache folder
    can replace those models outright.
    """
    once(
        lambda: check_encoder_graph(graph() if callable(graph) else graph, base),
        CHECK_REVISION, digest, base, _base_parameters(base), sorted(ENCODER_OPS), ENCODER_INPUTS,
    )  # fmt: skip


def once(check: Callable[[], None], *rules: Any) -> None:
    """Run ``check`` unless a check under exactly these ``rules`` (the checked bytes' digest among
    them) passed on this machine before; remember it when it passes (it raises when it does not)."""
    marker = _check_marker(*rules)
    if marker.exists():
        return
    check()
    _remember(marker)


def _check_marker(*rules: Any) -> Path:
    """The cache file whose presence says a check under exactly these ``rules`` (the checked bytes'
    digest among them) passed on this machine."""
    from ._cache import cache_dir

    return cache_dir() / "checked" / hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:32]


def _remember(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError as e:  # a read-only cache: the check runs again at the next load, nothing else changes
        log.debug("could not remember a passed check in %s (%s)", marker.parent, e)


def _base_parameters(base: str) -> int:
    from ._safetensors import read_header
    from .embedders.local import resolve_model_path

    _, header = read_header(Path(resolve_model_path(base)) / "model.safetensors")
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _store(r: _Reader, raw: bytes) -> ExampleStore:
    """The examples, whose lines ``read`` counted."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise r.fail("is not UTF-8", "examples.jsonl") from None
    try:
        store = ExampleStore.from_jsonl(text, origin=f"{r.where}:examples.jsonl")
    except InvalidInputError as e:
        raise ModelFileError(str(e), path=r.where, member="examples.jsonl") from None
    if len(store) > MAX_LINES:
        raise r.fail(f"holds more than {MAX_LINES} examples", "examples.jsonl")
    return store


def _check_version(r: _Reader, version: str) -> None:
    """Warn when the file comes from a newer minor version than this one: it may use what we ignore."""

    def minor(v: str) -> tuple[int, int] | None:
        parts = v.split(".")
        try:
            return int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            return None

    theirs, ours = minor(version), minor(__version__)
    if theirs is not None and ours is not None and theirs > ours:
        log.warning(
            "%s was written by promptclf %s, newer than this %s: settings it added are ignored; upgrade promptclf",
            r.where,
            version,
            __version__,
        )
