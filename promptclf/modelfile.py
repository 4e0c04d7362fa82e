"""The ``.clf`` model file: a zip of JSON, JSONL and ``.npy`` members. No pickle anywhere.

Load reads only members it knows by name, bounds every size before reading, checks a sha256 per
member, and turns every failure into a ``ModelFileError`` that says what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError
from .store import atomic_write

MAGIC = "promptclf-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MiB = 1 << 20
# Every member the format knows, with the most bytes it may hold uncompressed.
MEMBER_LIMITS = {
    MANIFEST: 4 * MiB,
    "prompts.json": 16 * MiB,
    "examples.jsonl": 512 * MiB,
    "head/coef.npy": 256 * MiB,
    "head/intercept.npy": 1 * MiB,
    "calibration/proba.npy": 512 * MiB,
    "calibration/labels.npy": 64 * MiB,
    "cache/texts.json": 512 * MiB,
    "cache/embeddings.npy": 1024 * MiB,
}
ARRAY_MEMBERS = {m for m in MEMBER_LIMITS if m.endswith(".npy")}
REQUIRED = {MANIFEST, "prompts.json", "examples.jsonl", "head/coef.npy", "head/intercept.npy"}


@dataclass
class ModelFile:
    """The parsed contents of a ``.clf``: the classifier decides what they mean."""

    manifest: dict[str, Any]
    prompts: dict[str, str]
    examples_jsonl: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    cache_texts: list[str] | None = None


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def write(path: str | os.PathLike[str], mf: ModelFile) -> None:
    """Serialise and write atomically: a failed save leaves any existing file untouched."""
    members: dict[str, bytes] = {
        "prompts.json": json.dumps(mf.prompts, ensure_ascii=False, indent=1).encode(),
        "examples.jsonl": mf.examples_jsonl.encode(),
    }
    for name, arr in mf.arrays.items():
        if name not in ARRAY_MEMBERS:
            raise ValueError(f"unknown array member {name}")
        if arr.dtype == object:
            raise ValueError(f"array {name} has dtype object, which cannot be stored without pickle")
        members[name] = _npy_bytes(arr)
    if mf.cache_texts is not None:
        members["cache/texts.json"] = json.dumps(mf.cache_texts, ensure_ascii=False).encode()
    manifest = dict(mf.manifest)
    manifest["format"] = MAGIC
    manifest["format_version"] = FORMAT_VERSION
    manifest["members"] = {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in members.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
        for name, data in members.items():
            zf.writestr(name, data)
    try:
        atomic_write(Path(path), buf.getvalue())
    except OSError as e:
        raise ModelFileError(f"cannot write model file {path}: {e}") from e


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    limit = MEMBER_LIMITS[info.filename]
    if info.file_size > limit:
        raise ModelFileError(f"{where}: member {info.filename} declares {info.file_size} bytes, over the {limit} limit")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as e:
        raise ModelFileError(f"{where}: member {info.filename} is corrupt ({e})") from None
    if len(data) > limit:
        raise ModelFileError(f"{where}: member {info.filename} is larger than the {limit}-byte limit")
    return data


def read(path: str | os.PathLike[str]) -> ModelFile:
    where = str(path)
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file not found: {where}")
    if p.is_dir():
        raise ModelFileError(f"{where} is a folder, not a model file")
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{where} is not a promptclf model file (not a zip archive, or truncated)") from None
    except OSError as e:
        raise ModelFileError(f"cannot read {where}: {e}") from None
    with zf:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            if info.filename not in MEMBER_LIMITS:
                raise ModelFileError(f"{where}: unexpected member {info.filename!r}; refusing to load")
            if info.filename in infos:
                raise ModelFileError(f"{where}: member {info.filename!r} appears twice")
            infos[info.filename] = info
        if MANIFEST not in infos:
            raise ModelFileError(f"{where} is not a promptclf model file (no {MANIFEST})")
        manifest = _parse_json(_read_member(zf, infos[MANIFEST], where), MANIFEST, where)
        if not isinstance(manifest, dict) or manifest.get("format") != MAGIC:
            raise ModelFileError(f"{where} is not a promptclf model file (bad manifest)")
        version = manifest.get("format_version")
        if not isinstance(version, int):
            raise ModelFileError(f"{where}: manifest has no valid format_version")
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{where} uses model format {version}, newer than this promptclf reads "
                f"({FORMAT_VERSION}): upgrade promptclf"
            )
        declared = manifest.get("members")
        if not isinstance(declared, dict):
            raise ModelFileError(f"{where}: manifest lists no members")
        for name in REQUIRED - {MANIFEST}:
            if name not in infos:
                raise ModelFileError(f"{where}: member {name} is missing")
        data: dict[str, bytes] = {}
        for name, info in infos.items():
            if name == MANIFEST:
                continue
            raw = _read_member(zf, info, where)
            want = declared.get(name, {}).get("sha256") if isinstance(declared.get(name), dict) else None
            if want is None:
                raise ModelFileError(f"{where}: member {name} is not listed in the manifest")
            if hashlib.sha256(raw).hexdigest() != want:
                raise ModelFileError(f"{where}: checksum mismatch in {name}; the file is damaged or was modified")
            data[name] = raw
        for name in declared:
            if name not in data:
                raise ModelFileError(f"{where}: member {name} is missing")

    arrays = {}
    for name in ARRAY_MEMBERS & data.keys():
        try:
            arr = np.load(io.BytesIO(data[name]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ModelFileError(f"{where}: member {name} is not a valid array ({e})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise ModelFileError(f"{where}: member {name} has unexpected type {getattr(arr, 'dtype', type(arr))}")
        arrays[name] = arr
    prompts = _parse_json(data["prompts.json"], "prompts.json", where)
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise ModelFileError(f"{where}: prompts.json is not a mapping of class name to description")
    cache_texts = None
    if "cache/texts.json" in data:
        cache_texts = _parse_json(data["cache/texts.json"], "cache/texts.json", where)
        if not isinstance(cache_texts, list) or not all(isinstance(t, str) for t in cache_texts):
            raise ModelFileError(f"{where}: cache/texts.json is not a list of strings")
    try:
        examples = data["examples.jsonl"].decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{where}: examples.jsonl is not UTF-8") from None
    return ModelFile(
        manifest=manifest, prompts=prompts, examples_jsonl=examples, arrays=arrays, cache_texts=cache_texts
    )


def _parse_json(raw: bytes, name: str, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{where}: {name} is not valid JSON ({e})") from None
