"""Cold start of a small model: a fresh process loads a ``.clf`` and predicts one text.

    .venv/bin/python bench/cold_start.py [--no-write]

The models: 50 sst2 train examples per class, every setting the default: 100 real texts are what the
fast path (``fast="auto"``) needs to be fitted, so the same file serves every row; the whole sst2
train split (6,920 texts: the speed table's model), whose examples and cached vectors are most of the file;
and the same with ``fast=True, distill=True`` (its encoder a distilled copy that travels in the file).
Median of 9 fresh interpreters per row and model, taking turns; where the time goes is profiled in-process once.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import tempfile
from pathlib import Path

from common import fresh_seconds, interleaved, machine, per_class_sample, publish, read_rows, table

from promptclf import PromptClassifier

THROUGH_MODEL2VEC = """
from model2vec import StaticModel
from promptclf.embedders import static

class ThroughModel2vec:
    def __init__(self, folder, tokenizer):
        self.model = StaticModel.from_pretrained(str(folder))

    def encode(self, texts, batch_size):
        return self.model.encode(texts, batch_size=batch_size, max_length=None, use_multiprocessing=False)

static.Distilled = ThroughModel2vec
"""

ROWS = {
    "load only": "c = promptclf.load(P)",
    "load + predict, ONNX int8 (fast path off)": "c = promptclf.load(P); c.fast = False; c.predict(['a fine film'])",
    "load + predict, ONNX fp32": (
        "c = promptclf.load(P, embedder='onnx:all-MiniLM-L6-v2'); c.fast = False; c.predict(['a fine film'])"
    ),
    'load + predict, the default (fast path, `fast="auto"`, and ONNX int8)': (
        "c = promptclf.load(P); c.predict(['a fine film'])"
    ),
    "load + predict, ONNX int8, session from the unoptimised graph (as before 1a87e32)": (
        "from promptclf.embedders import onnx_backend; onnx_backend.OPTIMIZED_COPY = False; "
        "c = promptclf.load(P); c.fast = False; c.predict(['a fine film'])"
    ),
    # before this row was added, every load validated the manifest (importing pydantic-core); now a
    # manifest that passed leaves a marker named by its bytes and the schema's fingerprint: a new
    # fingerprint per process makes every load validate again
    "load + predict, ONNX int8, manifest validated at every load (as before 2026-12-04, stop 40)": (
        "import time; from promptclf import modelfile; modelfile.SCHEMA_FINGERPRINT = str(time.time_ns()); "
        "modelfile._remember = lambda marker: None; "
        "c = promptclf.load(P); c.fast = False; c.predict(['a fine film'])"
    ),
    # before it, the fast path's static model was model2vec's StaticModel, from model2vec's loader
    "load + predict, fast path, through model2vec's StaticModel (as before 2026-12-04, stop 40)": (
        THROUGH_MODEL2VEC + "c = promptclf.load(P); c.predict(['a fine film'])"
    ),
    # before bc44d37 the ONNX path parsed tokenizer.json for itself and the chunking window again
    "load + predict, ONNX int8, tokenizer.json parsed a second time (as before bc44d37)": (
        "from tokenizers import Tokenizer; from promptclf.embedders.local import resolve_model_path; "
        "Tokenizer.from_file(resolve_model_path('all-MiniLM-L6-v2') + '/tokenizer.json'); "
        "c = promptclf.load(P); c.fast = False; c.predict(['a fine film'])"
    ),
    # before baeece5 load parsed the examples and the cached vectors (now parsed when training needs them)
    "load + predict, the default, training members parsed at load (as before baeece5)": (
        "c = promptclf.load(P); c._store; c._cache; c.predict(['a fine film'])"
    ),
    # before this row was added, load read and hashed the examples and cached vectors itself (now a second
    # thread does, meanwhile): no training member left for the thread, every member read and hashed at once
    "load + predict, the default, training members read and hashed at load (as before 2026-12-07, stop 58)": (
        "from promptclf import modelfile; modelfile.TRAINING_MEMBERS = (); "
        "c = promptclf.load(P); c.predict(['a fine film'])"
    ),
    # before this row was added, a loaded file's tuned or distilled encoder was read, hashed and run at every
    # load, and load waited for the whole file's hash (now: read and hashed beside the load, run at the first
    # load of that graph on this machine only, the file's hash waited for when asked for)
    "load + predict, the default, encoder read, hashed and run at load (as before 2026-12-07, stop 59)": (
        "from promptclf import modelfile; modelfile.ENCODER_BESIDE = False; once = modelfile.once; "
        "modelfile.once = lambda check, *rules: check() if rules[0] == 'encoder runs' else once(check, *rules); "
        "c = promptclf.load(P); c.model_sha256_; c.predict(['a fine film'])"
    ),
    # before baeece5 the fast path read its 31 MB static table into memory (now memory-mapped)
    "load + predict, the default, static table read, not mapped (as before baeece5)": (
        "from safetensors.numpy import load_file; from promptclf.embedders import static; "
        "static.mapped_embeddings = lambda path: load_file(path)['embeddings']; "
        "c = promptclf.load(P); c.predict(['a fine film'])"
    ),
}
DEFAULT = 'load + predict, the default (fast path, `fast="auto"`, and ONNX int8)'


def on_model(code: str, path: Path) -> str:
    """``code`` for a fresh interpreter, with promptclf imported and the model's path in ``P``."""
    return f"import promptclf\nP = {str(path)!r}\n{code}"


def profile(path: Path) -> list[list[object]]:
    """Cumulative seconds of the main steps of load + one int8 prediction, in this process."""
    import promptclf
    from promptclf.embedders import chunking

    chunking._WINDOWS.clear()  # training in this process parsed the tokenizer: parse it again, as a fresh one does
    pr = cProfile.Profile()
    pr.enable()
    c = promptclf.load(path)
    c.fast = False
    c.predict(["a fine film"])
    pr.disable()
    stats = pstats.Stats(pr).stats  # type: ignore[attr-defined]
    steps = {
        "read and check the file": "read",
        "the manifest's schema (pydantic-core; not built: these manifest bytes passed before)": "_schema",
        "ONNX Runtime session": "session",
        "tokenizer (parsed once: the model's and the chunking window's)": "from_file",
    }
    out = []
    for label, fn in steps.items():
        cum = sum(v[3] for k, v in stats.items() if k[2] == fn or k[2].endswith(f" {fn}>"))  # built-ins: "<method ...>"
        out.append([label, f"{1000 * cum:.0f} ms"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    paths = []
    for name, per_class, settings in (("small", 50, {}), ("whole", 10**9, {}),
                                      ("distilled", 10**9, {"fast": True, "distill": True})):  # fmt: skip
        paths.append(folder / f"{name}.clf")
        clf = PromptClassifier(progress=False, **settings)
        for label, xs in per_class_sample(read_rows("sst2", "train"), per_class).items():
            clf.add_data_to_class(label, xs)
        clf.train().save(paths[-1])
        if clf.fast_ is None:
            raise SystemExit(f"the default left the fast path out of the {name} model: the rows would not differ")
    path = paths[0]
    for p in paths:  # make the cached files first (int8 copies, checks passed), as a second load finds them
        for row in (DEFAULT, "load + predict, ONNX fp32"):
            fresh_seconds(on_model(ROWS[row], p))
    codes = {**ROWS, "`python -c 'import promptclf'`": "pass"}
    medians = interleaved({(name, p): on_model(code, p) for name, code in codes.items() for p in paths})
    rows = [[name, *(f"{medians[name, p]:.2f} s" for p in paths)] for name in codes]
    sizes = [f"{p.stat().st_size / 2**20:.1f} MB" for p in paths]
    body = f"""## Cold start of a small model

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/cold_start.py`.
A fresh interpreter loads a `.clf` (every setting the default: the fast path is fitted) and predicts
one text; median of 9, the rows and models taking turns. The models: 50 sst2 train texts per class
({sizes[0]}), the whole sst2 train split ({sizes[1]}: the speed table's model; its examples and
cached vectors are most of the file), and the same with `fast=True, distill=True` ({sizes[2]}: its
distilled encoder travels in the file).

{table(["what", "100 texts", "6,920 texts", "6,920 texts, fast=True, distill=True"], rows)}

Where load + one int8 prediction spends its time (cumulative, profiled in one process after imports):

{table(["step", "time"], profile(path))}
"""
    publish("cold-start", body, write=not args.no_write)


if __name__ == "__main__":
    main()
