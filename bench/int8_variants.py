"""Which int8 recipe keeps MiniLM's accuracy: ONNX Runtime dynamic/static variants (and OpenVINO if
importable), each against the fp32 export, in one run.

    .venv/bin/python bench/int8_variants.py [--no-write] [--only NAME ...] [--section int8-variants-avx2]
    PYTHONPATH=/path/to/openvino-and-nncf .venv/bin/python bench/int8_variants.py   # adds OpenVINO rows
    PYTHONPATH=/path/to/onnx-ir .venv/bin/python bench/int8_variants.py   # adds the MatMulNBits rows

Accuracy: a logistic-regression head fit on fp32 vectors of 3,000 train-split texts per dev set and
served on each variant's vectors (what a loaded ``.clf`` does), macro-F1 on the fixed test sample;
"refit" fits the head on the variant's own vectors instead. Speed: texts/s embedding the same 2,000
sst2 texts (batch 64, length-sorted), best of 3, as a ratio to the fp32 export in the same run.
Static variants are calibrated on 400 train-split texts (sst2 and trec6, none from the test rows).
Weight-only variants (``MatMulNBits``: weights in blocks of 8 or 4 bits, each block its own scale,
activations float or, with accuracy level 4, quantised to int8 per block) need ``onnx_ir``, which
onnxruntime's quantiser imports but does not depend on; not a dependency of ours either.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, publish, read_rows, section_args, section_heading, table, test_sample
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from promptclf.embedders import onnx_backend as ob

DATASETS = ("sst2", "ag_news", "trec6")
TOK, PAD = ob._tokenizer("all-MiniLM-L6-v2")


def feeds(texts: list[str], bs: int = 64):
    """Length-sorted, per-batch padded inputs, exactly as ``OnnxEmbedder`` makes them."""
    return ob.padded_batches(TOK, PAD, texts, bs)


def embed(run: Callable[[dict[str, np.ndarray]], np.ndarray], texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), np.float32)
    for idx, f in feeds(texts):
        m = f["attention_mask"][..., None].astype(np.float32)
        p = (run(f) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        out[idx] = p / np.linalg.norm(p, axis=1, keepdims=True)
    return out


def ort_variants(fp32: Path, out: Path, calib: list[str], keep: Callable[[str], bool]) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.transformers import optimizer

    opt = out / "fused.onnx"
    optimizer.optimize_model(
        str(fp32), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
    ).save_model_to_file(str(opt))
    v: dict[str, Path] = {"fp32 export (reference)": fp32, "fp32, fused graph": opt}
    s8, u8 = QuantType.QInt8, QuantType.QUInt8
    pc = {"weight_type": s8, "per_channel": True}
    dynamic = {
        "dynamic s8, per tensor (before)": (fp32, {"weight_type": s8}),
        "dynamic u8 (U8U8), per tensor": (fp32, {"weight_type": u8}),
        "dynamic s8, per channel": (fp32, pc),
        "dynamic s8, per channel, reduce_range (default)": (fp32, {**pc, "reduce_range": True}),
        "dynamic u8, per channel": (fp32, {"weight_type": u8, "per_channel": True}),
        "fused + dynamic s8, per tensor": (opt, {"weight_type": s8}),
        "fused + dynamic s8, per channel, reduce_range": (opt, {**pc, "reduce_range": True}),
        "fused + dynamic s8, per channel, MatMul only": (opt, {**pc, "op_types_to_quantize": ["MatMul"]}),
    }
    for i, (name, (src, kw)) in enumerate(dynamic.items()):
        if not keep(name):
            continue
        v[name] = out / f"d{i}.onnx"
        quantize_dynamic(str(src), str(v[name]), extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **kw)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = (f for _, f in feeds(calib, bs=16))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    static = {
        "static QDQ, per channel, reduce_range": QuantFormat.QDQ,
        "static QOperator, per channel, reduce_range": QuantFormat.QOperator,
    }
    for i, (name, fmt) in enumerate(static.items()):
        if not keep(name):
            continue
        v[name] = out / f"s{i}.onnx"
        quantize_static(str(fp32), str(v[name]), Reader(), quant_format=fmt, per_channel=True, reduce_range=True,
                        activation_type=u8, weight_type=s8, op_types_to_quantize=["MatMul"])  # fmt: skip
    return {k: p for k, p in v.items() if keep(k)}


NBITS = {  # name: (bits, block size, accuracy level; 4 = int8 activations, 0 = float)
    "weight-only 8-bit, block 32, int8 activations (MatMulNBits)": (8, 32, 4),
    "weight-only 8-bit, block 128, int8 activations (MatMulNBits)": (8, 128, 4),
    "weight-only 8-bit, block 32, float activations (MatMulNBits)": (8, 32, 0),
    "weight-only 4-bit, block 32, int8 activations (MatMulNBits)": (4, 32, 4),
}


def nbits_variants(fp32: Path, out: Path, keep: Callable[[str], bool]) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)  # a line per node otherwise
    v = {}
    for i, (name, (bits, block, level)) in enumerate(NBITS.items()):
        if not keep(name):
            continue
        q = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=bits, block_size=block, is_symmetric=True,
                                 accuracy_level=level or None)  # fmt: skip
        q.process()
        v[name] = out / f"n{i}.onnx"
        q.model.save_model_to_file(str(v[name]))
    return v


def openvino_variants(fp32: Path, calib: list[str]) -> dict[str, Any]:
    import nncf
    import openvino as ov

    from promptclf._cpu import available_cpus

    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": available_cpus()})

    def compiled(model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        c = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        return lambda f: c(f)[0]

    data = nncf.Dataset([f for _, f in feeds(calib, bs=16)])
    return {
        "OpenVINO fp32": compiled(core.read_model(str(fp32))),
        "OpenVINO + NNCF static int8": compiled(
            nncf.quantize(core.read_model(str(fp32)), data, model_type=nncf.ModelType.TRANSFORMER, subset_size=400)
        ),
        "OpenVINO + NNCF int8 weights": compiled(nncf.compress_weights(core.read_model(str(fp32)))),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--only", nargs="+", help="these variants (by name; the fp32 reference always runs)")
    section_args(ap, "int8-variants")
    args = ap.parse_args()
    import onnxruntime

    def keep(name: str) -> bool:
        return not args.only or name in args.only or name == "fp32 export (reference)"

    fp32 = ob.onnx_file("all-MiniLM-L6-v2", False)
    calib = [r["text"] for ds in ("sst2", "trec6") for r in read_rows(ds, "train")[-200:]]
    out = Path(tempfile.mkdtemp())
    runners: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
    variants = ort_variants(fp32, out, calib, keep)
    have_ir = importlib.util.find_spec("onnx_ir") is not None
    if have_ir:
        variants.update(nbits_variants(fp32, out, keep))
    for name, path in variants.items():
        sess = ob.session(str(path))
        runners[name] = lambda f, sess=sess: sess.run(None, f)[0]
    have_ov = importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None
    if have_ov:
        runners.update({k: r for k, r in openvino_variants(fp32, calib).items() if keep(k)})

    data = {}
    for ds in DATASETS:
        train = read_rows(ds, "train")
        idx = np.random.default_rng(0).permutation(len(train))[:3000]
        data[ds] = ([train[i]["text"] for i in idx], [train[i]["label"] for i in idx], *test_sample(ds))
    speed_texts = [r["text"] for r in read_rows("sst2", "train")[:2000]]
    heads: dict[str, LogisticRegression] = {}
    rows, ref = [], None
    for name, run in runners.items():
        embed(run, speed_texts[:64])
        best = min(_timed(lambda run=run: embed(run, speed_texts)) for _ in range(3))
        tps = len(speed_texts) / best
        ref = ref or tps
        row: list[object] = [name, f"{tps:.0f}", f"{tps / ref:.2f}x"]
        for ds, (xt, yt, xe, ye) in data.items():
            Xt, Xe = embed(run, xt), embed(run, xe)
            if ds not in heads:  # the first runner is the fp32 reference: the served head is fit on it
                heads[ds] = LogisticRegression(class_weight="balanced", max_iter=2000).fit(Xt, yt)
            served = f1_score(ye, heads[ds].predict(Xe), average="macro")
            refit = f1_score(ye, LogisticRegression(class_weight="balanced", max_iter=2000).fit(Xt, yt).predict(Xe),
                             average="macro")  # fmt: skip
            row.append(f"{served:.3f} / {refit:.3f}")
        rows.append(row)
        print(row, flush=True)
    base = [float(str(c).split(" / ")[0]) for c in rows[0][3:]]
    for r in rows:
        r.append(" / ".join(f"{100 * (float(str(c).split(' / ')[0]) - b):+.1f}" for c, b in zip(r[3:6], base)))
    note = "" if have_ov else " OpenVINO was not importable in this run (it is not a dependency)."
    note += "" if have_ir else " `onnx_ir` was not importable (no MatMulNBits rows)."
    only = f" --only {' '.join(repr(o) for o in args.only)}" if args.only else ""
    title, cmd = section_heading("int8 variants", "bench/int8_variants.py" + only, args.section, "int8-variants")
    body = f"""## {title}

{dt.date.today().isoformat()}, {machine()}, onnxruntime {onnxruntime.__version__}. Regenerate with
`.venv/bin/python {cmd}` (OpenVINO rows need `openvino` and `nncf` importable, MatMulNBits rows `onnx_ir`).{note}
A head fit on fp32 vectors, served on each variant's (first number) or refit on them (second):
macro-F1 on the fixed test samples. Speed: 2,000 sst2 texts, batch 64, ratio to the fp32 export.

{table(["variant", "texts/s", "vs fp32", *[f"{d} served / refit" for d in DATASETS], "served − fp32 (pts)"], rows)}
"""
    publish(args.section, body, write=not args.no_write)


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
