"""The real packaged all-MiniLM-L6-v2, offline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptclf import PromptClassifier
from tests.conftest import read_csv

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def sst2_sample(per_class=16):
    rows = read_csv("sst2", "train")
    out = {}
    for r in rows:
        out.setdefault(r["label"], [])
        if len(out[r["label"]]) < per_class:
            out[r["label"]].append(r["text"])
    return out


def test_train_save_load_in_fresh_process_identical(tmp_path):
    clf = PromptClassifier(progress=False)
    for label, texts in sst2_sample().items():
        clf.add_data_to_class(label, texts)
    clf.train()
    test = [r["text"] for r in read_csv("sst2", "test")[:40]]
    path = tmp_path / "sst2.clf"
    clf.save(path)
    code = (
        "import json, sys, promptclf\n"
        f"clf = promptclf.load({str(path)!r}, embedder='sentence-transformers:all-MiniLM-L6-v2')\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps({'pred': clf.predict(texts), 'proba': clf.predict_proba(texts).tolist()}))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PROMPTCLF_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(test),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["pred"] == clf.predict(test)
    assert np.allclose(got["proba"], clf.predict_proba(test), atol=1e-6)
    acc = np.mean([p == r["label"] for p, r in zip(got["pred"], read_csv("sst2", "test")[:40])])
    assert acc > 0.6  # 16 real examples a class: clearly better than chance

    # ONNX Runtime fp32 gives the same vectors, so the same answers
    exact = PromptClassifier.load(path, embedder="onnx:all-MiniLM-L6-v2")
    assert exact.predict(test) == clf.predict(test)
    assert np.allclose(exact.predict_proba(test), clf.predict_proba(test), atol=1e-4)
    # the default serving path (int8) stays close: the same answer on nearly every text
    served = PromptClassifier.load(path)
    assert served._embedder.kind == "onnx-int8"
    assert np.mean([a == b for a, b in zip(served.predict(test), clf.predict(test))]) >= 0.9
    assert np.abs(served.predict_proba(test) - clf.predict_proba(test)).max() < 0.25


def test_embeddings_are_normalised_and_cached():
    clf = PromptClassifier(progress=False)
    emb = clf._embedder
    X = emb.embed(["a fine film", "a poor film"], cache=clf._cache)
    assert X.shape == (2, 384) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert len(clf._cache) == 2


def test_first_training_prints_nothing(tmp_path):
    """No library progress bars or warnings on first use: only ours, and progress=False turns those off."""
    code = (
        "from promptclf import PromptClassifier\n"
        "clf = PromptClassifier(progress=False)\n"
        "clf.add_data_to_class('a', ['a cat', 'a dog']).add_data_to_class('b', ['a car', 'a bus'])\n"
        "print(clf.train().predict(['a kitten']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['a']" and out.stderr == ""
