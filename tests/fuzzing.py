"""Mutations of a small ``.clf``, one function per kind, shared by the suite (a few hundred, fixed
seed) and ``bench/fuzz.py`` (thousands). Each mutation returns the bytes of a new file; ``check``
loads it and uses what a user would (predict, info, curves, retrain) and says how it ended.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HOSTILE_VALUES: list[Any] = [
    None, True, -1, 0, 1e308, 10**30, "", "x", "../../etc/passwd", "\ud800".encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"), [], {}, [[[[[]]]]], {"kind": "openai", "model": "x"}, "NaN", 2**63, -1e-300,
    ["a", "a"], ["a"], [1, 2, 3], "a" * 5000,
]  # fmt: skip


def _unzip(raw: bytes) -> tuple[dict[str, bytes], dict[str, Any]]:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        data = {n: z.read(n) for n in z.namelist()}
    return data, json.loads(data.pop("manifest.json"))


def _zip(data: dict[str, bytes], manifest: Any, *, fix_checksums: bool = True) -> bytes:
    if fix_checksums and isinstance(manifest, dict) and isinstance(manifest.get("members"), dict):
        for n, d in data.items():
            manifest["members"][n] = {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest))
        for n, d in data.items():
            z.writestr(n, d)
    return buf.getvalue()


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:5]):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


# ------------------------------------------------------------------ the kinds of mutation
def flip_bytes(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(len(raw))]


def manifest_value(raw: bytes, rng: random.Random) -> bytes:
    data, m = _unzip(raw)
    path = rng.choice(_paths(m))
    _set(m, path, rng.choice(HOSTILE_VALUES))
    return _zip(data, m, fix_checksums=path[0] != "members")


def manifest_text(raw: bytes, rng: random.Random) -> bytes:
    data, m = _unzip(raw)
    text = json.dumps(m)
    choice = rng.randrange(5)
    if choice == 0:  # deep nesting
        text = text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    elif choice == 1:  # a 5,000-digit integer
        text = text[:-1] + ', "x": 1' + "0" * 5000 + "}"
    elif choice == 2:  # out-of-range float
        text = text.replace('"dimension": ', '"dimension": 1e400, "d": ', 1)
    elif choice == 3:  # NaN
        text = text.replace('"thresholds": [', '"thresholds": [NaN, ', 1)
    else:  # not JSON at all
        text = text[: rng.randrange(len(text))]
    return _zip(data, text)


def member_junk(raw: bytes, rng: random.Random, prefix: str = "") -> bytes:
    """Replace a member (one named ``prefix``...) with hostile content and a matching checksum."""
    data, m = _unzip(raw)
    name = rng.choice(sorted(n for n in data if n.startswith(prefix)))
    k = len(m.get("classes", [])) or 2
    options: list[bytes] = [
        b"",
        b"\n" * rng.randint(1, 3_000_000),
        bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
        b"[" * 50_000 + b"]" * 50_000,
        json.dumps({"class_name": "pos", "examples": ["x"] * 3}).encode() * 3,
        _npy(np.full((1, 64), np.nan, np.float32)),
        _npy(np.zeros((k, 3), np.float32)),
        _npy(np.zeros(3, np.int64)),
        _npy(np.array(["a", "b"])),
        b"\x93NUMPY\x01\x00" + (70).to_bytes(2, "little")
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,), }" + b" " * 8 + b"\n",
        b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little") + b"{'descr': ((((    \n",
        json.dumps(["t"] * 5).encode(),
        json.dumps({"pos": 5}).encode(),
        json.dumps({"": "x"}).encode(),
        b'{"class_name": "\\ud800", "examples": ["x"]}\n',
    ]  # fmt: skip
    data[name] = rng.choice(options)
    return _zip(data, m)


def member_set(raw: bytes, rng: random.Random) -> bytes:
    data, m = _unzip(raw)
    choice = rng.randrange(3)
    if choice == 0 and data:
        data.pop(rng.choice(sorted(data)))
    elif choice == 1:
        data[rng.choice(["../../x", "extra.bin", "head/other.npy"])] = b"boom"
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the duplicate is the point
            z.writestr("manifest.json", json.dumps(m))
            for n, d in data.items():
                z.writestr(n, d)
            z.writestr(next(iter(data)), b"again")
        return buf.getvalue()
    return _zip(data, m)


def zip_header(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    i = b.rfind(b"PK\x01\x02")
    if i < 0:
        return raw
    field = rng.choice([(6, 2), (8, 2), (10, 2), (20, 4), (24, 4)])  # version, flags, method, sizes
    b[i + field[0] : i + field[0] + field[1]] = bytes(rng.randrange(256) for _ in range(field[1]))
    return bytes(b)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip_bytes": flip_bytes,
    "truncate": truncate,
    "manifest_value": manifest_value,
    "manifest_text": manifest_text,
    "member_junk": member_junk,
    "member_set": member_set,
    "zip_header": zip_header,
}


def focused(prefix: str) -> dict[str, Callable[[bytes, random.Random], bytes]]:
    """Mutations of the members named ``prefix``... and of the manifest's part about them (``"fast/"``:
    its ``"fast"`` key and those members' entries), checksums made to match: hostile content where
    the loader reads it, not damage the checksums catch first."""
    key = prefix.rstrip("/")

    def value(raw: bytes, rng: random.Random) -> bytes:
        data, m = _unzip(raw)
        ours = lambda p: p[0] == key or (p[0] == "members" and len(p) > 1 and str(p[1]).startswith(prefix))  # noqa: E731
        path = rng.choice([p for p in _paths(m) if ours(p)])
        _set(m, path, rng.choice(HOSTILE_VALUES))
        return _zip(data, m, fix_checksums=path[0] != "members")

    def drop(raw: bytes, rng: random.Random) -> bytes:
        data, m = _unzip(raw)
        data.pop(rng.choice(sorted(n for n in data if n.startswith(prefix))))
        return _zip(data, m)

    return {
        f"{key}: member_junk": lambda raw, rng: member_junk(raw, rng, prefix),
        f"{key}: manifest_value": value,
        f"{key}: member removed": drop,
    }


def check(path: Path, embedder: Any) -> str:
    """Load and use a mutated file. ``"loaded"`` or ``"refused"`` are fine; anything else is a bug."""
    from promptclf import ModelFileError, PromptClassifier, PromptClfError

    try:
        clf = PromptClassifier.load(path, embedder=embedder)
    except ModelFileError:
        return "refused"
    except Exception as e:
        return f"BUG at load: {type(e).__name__}: {e}"[:300]
    clf.progress = False
    try:
        clf.predict(["a wonderful film", "a dull one"])
        clf.predict(["x"], abstain=True)
        json.dumps(clf.summary())
        clf.precision_recall_curves()
        clf.train()
    except ModelFileError:  # the examples or cached vectors, parsed when training first uses them
        return "refused"
    except PromptClfError:
        return "loaded"
    except Exception as e:
        return f"BUG after load: {type(e).__name__}: {e}"[:300]
    return "loaded"


def run(
    model: Path,
    n: int,
    seed: int,
    out_dir: Path,
    embedder: Any,
    max_s: float = 5.0,
    mutations: dict[str, Callable[[bytes, random.Random], bytes]] | None = None,
) -> dict[str, Any]:
    """``n`` mutations of ``model``, round-robin over the kinds (``MUTATIONS`` unless given); counts per
    kind and outcome."""
    mutations = MUTATIONS if mutations is None else mutations
    rng = random.Random(seed)
    raw = model.read_bytes()
    counts: dict[str, Counter] = {k: Counter() for k in mutations}
    bugs: list[str] = []
    slow: list[str] = []
    kinds = list(mutations)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        mutated = mutations[kind](raw, rng)
        p = out_dir / f"m{i}.clf"
        p.write_bytes(mutated)
        t0 = time.perf_counter()
        outcome = check(p, embedder)
        took = time.perf_counter() - t0
        counts[kind]["bug" if outcome.startswith("BUG") else outcome] += 1
        if outcome.startswith("BUG"):
            bugs.append(f"{kind} #{i}: {outcome}")
        if took > max_s:
            slow.append(f"{kind} #{i}: {took:.1f} s")
        p.unlink()
    return {"counts": {k: dict(v) for k, v in counts.items()}, "bugs": bugs, "slow": slow}
