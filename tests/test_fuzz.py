"""A few hundred mutated model files (fixed seed), each refused with a ModelFileError or loaded and
usable: no other exception, bounded time and memory. bench/fuzz.py runs thousands."""

import resource

from tests.fuzzing import MUTATIONS, run


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
