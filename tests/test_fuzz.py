"""A few hundred mutated model files (fixed seed), each refused with a ModelFileError or loaded and
usable: no other exception, bounded time and memory. bench/fuzz.py runs thousands."""

import resource

from promptclf.embedders import get_embedder
from tests.fuzzing import MUTATIONS, focused, run
from tests.test_words import saved_with_words


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
    static = get_embedder({"kind": "model2vec", "model": "all-MiniLM-L6-v2"})  # real, made once per machine
    model, _ = saved_with_words(tmp_path, dim=static.embed(["a"]).shape[1])
    mutations = focused("fast/")
    res = run(model, n=90, seed=0, out_dir=tmp_path, embedder=fake_embedder, max_s=5.0, mutations=mutations)
    assert res["bugs"] == [] and res["slow"] == []
    for kind in mutations:
        assert res["counts"][kind].get("refused", 0) > 0, (kind, res["counts"][kind])
