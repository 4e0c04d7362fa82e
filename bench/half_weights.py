"""What storing an encoder's weights in float16 changes (issue 16): its vectors and labels, one run.

    .venv/bin/python bench/half_weights.py model.clf dataset

``model.clf``: a model with a fine-tuned or distilled encoder saved with float32 weights (before
``half_graph``). Its weights are rounded to float16 precision, as ``round_to_half`` does when an
encoder is made; both graphs embed the dataset's fixed test sample and the model's own head labels
the vectors. Prints the cosine of each text's two vectors, the labels that change, and macro-F1.
"""

from __future__ import annotations

import sys

import numpy as np
from common import scores, test_sample

import promptclf
from promptclf.embedders.onnx_backend import FinetunedOnnxEmbedder


def main() -> None:
    import onnx
    from onnx import numpy_helper

    path, ds = sys.argv[1], sys.argv[2]
    clf = promptclf.load(path, embedder="onnx:all-MiniLM-L6-v2")  # fp32: the exact vectors
    if getattr(clf, "_tuned", None) is None:
        raise SystemExit(f"{path} has no fine-tuned or distilled encoder")
    m = onnx.load_model_from_string(clf._tuned._graph)
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            half = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(half, name=t.name))
    rounded = FinetunedOnnxEmbedder(clf._tuned.base, m.SerializeToString(), "rounded")
    texts, labels = test_sample(ds)
    a, b = clf._tuned.embed(texts), rounded.embed(texts)
    cos = (a * b).sum(1)
    pa, pb = (clf.head_.classes_[clf.head_.predict_proba(x).argmax(1)] for x in (a, b))
    f1 = [scores(labels, list(p))["macro_f1"] for p in (pa, pb)]
    print(f"{ds}: cosine min {cos.min():.7f} mean {cos.mean():.7f}; labels changed {int((pa != pb).sum())} of "
          f"{len(texts)}; macro-F1 {f1[0]:.4f} -> {f1[1]:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
