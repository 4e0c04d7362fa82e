"""A few hundred mutated model files (fixed seed), each refused with a ModelFileError or loaded and
usable: no other exception, bounded time and memory. bench/fuzz.py runs thousands."""

import resource

import numpy as np

from promptclf.cascade import FastPath
from promptclf.embedders import get_embedder
from promptclf.head import LinearHead
from promptclf.words import WordColumns
from tests.fuzzing import MUTATIONS, focused, run
from tests.test_cascade import _toy, _toy_classifier


def test_mutated_model_files_are_refused_or_work(trained, fake_embedder, tmp_path):
    model = tmp_path / "m.clf"
    trained.save(model)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = run(model, n=350, seed=0, out_dir=tmp_path, embedder=fake_embedder, max_s=5.0)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert res["bugs"] == []
    assert res["slow"] == []
    assert grown_mib < 500
    for kind in MUTATIONS:  # every kind ran, and each was refused at least once (the file was damaged)
        assert res["counts"][kind].get("refused", 0) > 0, (kind, res["counts"][kind])


def test_mutated_fast_path_members_are_refused_or_work(tmp_path, fake_embedder):
    """The static fast path's members (its head, the word columns' terms and idf) and the manifest's
    part about them, mutated with matching checksums: each file refused with a ModelFileError or loaded
    and usable (the fast path predicting through the real static model)."""
    spec = {"kind": "model2vec", "model": "all-MiniLM-L6-v2"}
    d = get_embedder(spec).embed(["a"]).shape[1]  # the real static model, made once per machine
    clf = _toy_classifier(120).train()
    words = WordColumns.fit(_toy(120)[0])
    coef = np.random.default_rng(0).normal(size=(1, d + words.n_terms)).astype(np.float32)
    clf.fast = True
    clf.fast_ = FastPath(spec, LinearHead(clf.classes_, coef, np.zeros(1, np.float32), 1.0), 0.6, {"share": 0.5}, words)
    model = tmp_path / "fast.clf"
    clf.save(model)
    mutations = focused("fast/")
    res = run(model, n=90, seed=0, out_dir=tmp_path, embedder=fake_embedder, max_s=5.0, mutations=mutations)
    assert res["bugs"] == [] and res["slow"] == []
    for kind in mutations:
        assert res["counts"][kind].get("refused", 0) > 0, (kind, res["counts"][kind])
