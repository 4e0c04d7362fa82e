"""A classifier whose encoder is fine-tuned: trains in seconds on a tiny set, travels in the .clf as an
ONNX graph, predicts identically in a fresh process where torch cannot be imported, and a tampered
encoder is a ModelFileError."""

import hashlib
import json
import os
import sys
import zipfile

import numpy as np
import pytest

from promptclf import ModelFileError, PromptClassifier
from tests.conftest import run_without_torch

pytestmark = pytest.mark.integration
POS = ["what a wonderful film", "I loved every minute", "brilliant acting", "a joy to watch", "superb story"]
NEG = ["what a dreadful film", "I hated every minute", "wooden acting", "a chore to watch", "a dull story"]
TEXTS = ["an enchanting, moving picture", "tedious and badly acted", "I would watch it again"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    clf = PromptClassifier(finetune=True, finetune_budget_s=60, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    clf.prompt_train({"pos": "A review that praises the film.", "neg": "A review that pans the film."}, generate=False)
    path = tmp_path_factory.mktemp("ft") / "m.clf"
    clf.save(path)
    return clf, path


def test_training_tunes_the_encoder_and_serves_its_vectors(tuned):
    clf, _ = tuned
    rep = clf.encoder_["report"]
    assert rep["steps"] > 0 and rep["seconds"] < 60
    assert rep["pairs"] >= 200  # one pass over these 12 rows is about 70 pairs: drawn again up to the minimum
    assert clf.embedder_spec_ == {"kind": "finetuned", "model": clf.encoder_["name"]}
    assert clf.summary()["encoder"]["base"] == {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}
    assert clf.predict(["a wonderful film, I loved it"]) == ["pos"]


def test_fresh_process_without_torch_predicts_identically(tuned):
    clf, path = tuned
    lines = run_without_torch(
        "import json\n"
        "import promptclf\n"
        f"m = promptclf.load({str(path)!r}, embedder='onnx:all-MiniLM-L6-v2')\n"
        f"print(json.dumps(m.predict_proba({TEXTS!r}).tolist()))\n"
        f"q = promptclf.load({str(path)!r})\n"  # the default: the tuned graph quantised to int8 here
        f"print(json.dumps(q.predict_proba({TEXTS!r}).tolist()))\n"
        "print(json.dumps({'torch': sys.modules.get('torch') is not None, 'int8': q._tuned.quantized}))\n"
    )
    assert np.allclose(json.loads(lines[0]), clf.predict_proba(TEXTS), atol=1e-3)  # fp32: the same vectors
    int8 = np.array(json.loads(lines[1]))
    assert (int8.argmax(1) == clf.predict_proba(TEXTS).argmax(1)).all()
    assert np.abs(int8 - clf.predict_proba(TEXTS)).max() < 0.2
    assert json.loads(lines[2]) == {"torch": False, "int8": True}


def test_loaded_tuned_model_predicts_int8_trains_fp32_and_tunes_from_the_base(tuned):
    """The file's base encoder is the embedder (a new fine-tuning starts there); the tuned graph
    predicts int8 and embeds training texts with its exact fp32 vectors."""
    clf, path = tuned
    served = PromptClassifier.load(path)
    assert served._embedder.space() == {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}
    assert served._tuned.quantized and not served._tuned.trainer().quantized
    exact = served._tuned.trainer().embed(TEXTS)
    assert np.allclose(exact, clf._emb.embed(TEXTS), atol=1e-4)
    served.add_data_to_class("pos", "a delightful, warm film").set_params(finetune=False).train()
    assert served.embedder_spec_ == clf.embedder_spec_  # still the tuned space, refit on exact vectors


def test_save_makes_the_int8_graph_a_load_on_this_machine_serves(tuned, tmp_path, monkeypatch):
    """Quantising a tuned graph takes 5-6 s: save does it, so a later load here does not."""
    import promptclf.embedders.onnx_backend as ob

    clf, _ = tuned
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))
    clf.save(tmp_path / "m.clf")
    made = sorted(p.name for p in (tmp_path / "cache" / "finetuned").glob("*/*.onnx"))
    assert len(made) == 2 and all(n.startswith(f"model-{ob.INT8_RECIPE}") for n in made)  # and its optimised copy
    monkeypatch.setattr(ob, "quantize", lambda *a: pytest.fail("quantised again at load"))
    served = PromptClassifier.load(tmp_path / "m.clf")
    assert served._tuned.quantized and served.predict(["a wonderful film, I loved it"]) == ["pos"]


def test_a_cache_that_cannot_be_written_never_fails_the_save(tuned, tmp_path, monkeypatch):
    clf, _ = tuned
    usual = os.environ["PROMPTCLF_CACHE"]
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))
    clf.save(tmp_path / "m.clf")
    monkeypatch.setenv("PROMPTCLF_CACHE", usual)
    assert PromptClassifier.load(tmp_path / "m.clf").predict(["a wonderful film, I loved it"]) == ["pos"]


def test_a_passed_graph_check_is_remembered_for_that_graph_only(tuned, tmp_path, monkeypatch):
    """The second load of the same graph skips its parse (a third of a distilled model's cold
    start); another graph, another base model or newer rules are checked again."""
    import promptclf.modelfile as mf

    _, path = tuned
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))
    parsed = []
    check = mf.check_encoder_graph
    monkeypatch.setattr(mf, "check_encoder_graph", lambda g, b: parsed.append(b) or check(g, b))
    with zipfile.ZipFile(path) as z:
        graph = z.read("encoder/model.onnx")
    digest = hashlib.sha256(graph).hexdigest()
    PromptClassifier.load(path)
    PromptClassifier.load(path)
    assert (
        parsed == ["all-MiniLM-L6-v2"] and len(list((tmp_path / "cache" / "checked").iterdir())) == 3
    )  # the graph's check, its run, and the manifest's
    monkeypatch.setattr(mf, "CHECK_REVISION", mf.CHECK_REVISION + 1)
    mf.check_encoder_graph_once(graph, "all-MiniLM-L6-v2", digest)
    assert len(parsed) == 2
    with pytest.raises(ValueError, match="not a valid ONNX model"):  # a digest that is not of these bytes
        mf.check_encoder_graph_once(graph[:1000], "all-MiniLM-L6-v2", hashlib.sha256(graph[:1000]).hexdigest())
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "blocked"))  # nowhere to remember: checked every time
    mf.check_encoder_graph_once(graph, "all-MiniLM-L6-v2", digest)
    mf.check_encoder_graph_once(graph, "all-MiniLM-L6-v2", digest)
    assert len(parsed) == 5


def test_the_encoder_member_holds_float16_weights_and_float_graph_restores_them(tuned):
    import onnx

    from promptclf.embedders.onnx_backend import float_graph

    _, path = tuned
    with zipfile.ZipFile(path) as z:
        size = z.getinfo("encoder/model.onnx").file_size
        graph = z.read("encoder/model.onnx")
        assert json.loads(z.read("manifest.json"))["format_version"] == 2
    assert 30 << 20 < size < 60 << 20  # ~45 MB for MiniLM (~90 MB in float32)
    kinds = {t.data_type for t in onnx.load_model_from_string(graph).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds
    restored = onnx.load_model_from_string(float_graph(graph))
    assert {t.data_type for t in restored.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    assert float_graph(float_graph(graph)) == float_graph(graph)  # a float32 graph is returned as it is


def test_half_graph_keeps_float32_where_float16_would_change_a_weight(tuned):
    import onnx
    from onnx import numpy_helper

    from promptclf.embedders.onnx_backend import float_graph, half_graph

    _, path = tuned
    with zipfile.ZipFile(path) as z:
        m = onnx.load_model_from_string(float_graph(z.read("encoder/model.onnx")))
    w = next(t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2)
    a = numpy_helper.to_array(w).copy()
    a.flat[0] = 0.1  # not a float16 number
    w.CopyFrom(numpy_helper.from_array(a, name=w.name))
    back = onnx.load_model_from_string(float_graph(half_graph(m.SerializeToString())))
    kept = next(t for t in onnx.load_model_from_string(half_graph(m.SerializeToString())).graph.initializer
                if t.name == w.name)  # fmt: skip
    assert kept.data_type == onnx.TensorProto.FLOAT
    for t, u in zip(m.graph.initializer, back.graph.initializer):
        assert np.array_equal(numpy_helper.to_array(t), numpy_helper.to_array(u))  # nothing changed


def test_a_file_of_before_with_a_float32_encoder_loads_and_predicts_the_same(tuned, tmp_path):
    from promptclf.embedders.onnx_backend import float_graph

    _, path = tuned
    with zipfile.ZipFile(path) as z:
        old = forge(path, tmp_path / "old.clf", float_graph(z.read("encoder/model.onnx")), version=1)
    with zipfile.ZipFile(old) as z:
        assert z.getinfo("encoder/model.onnx").file_size > 80 << 20
    a = PromptClassifier.load(old, embedder="onnx:all-MiniLM-L6-v2").predict_proba(TEXTS)
    b = PromptClassifier.load(path, embedder="onnx:all-MiniLM-L6-v2").predict_proba(TEXTS)
    assert np.array_equal(a, b)


def forge(src, dst, graph, version=None):
    with zipfile.ZipFile(src) as z:
        data = {n: z.read(n) for n in z.namelist()}
    m = json.loads(data.pop("manifest.json"))
    m["format_version"] = version or m["format_version"]
    data["encoder/model.onnx"] = graph
    m["members"]["encoder/model.onnx"] = {"sha256": hashlib.sha256(graph).hexdigest(), "size": len(graph)}
    with zipfile.ZipFile(dst, "w") as z:
        z.writestr("manifest.json", json.dumps(m))
        for n, d in data.items():
            z.writestr(n, d)
    return dst


def test_tampered_truncated_and_misshapen_encoders_are_refused(tuned, tmp_path, monkeypatch):
    import onnx

    _, path = tuned
    with zipfile.ZipFile(path) as z:
        graph = z.read("encoder/model.onnx")
    raw = bytearray(path.read_bytes())  # tampered: checksum
    i = raw.find(b"encoder/model.onnx") + 200
    raw[i] ^= 0xFF
    tampered = tmp_path / "t.clf"
    tampered.write_bytes(bytes(raw))
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))  # a machine that has not seen this graph
    with pytest.raises(ModelFileError) as e:
        PromptClassifier.load(tampered)
    assert e.value.member == "encoder/model.onnx"
    # where the graph the manifest names was checked and run here before (its int8 copy made), serving
    # needs none of the damaged bytes: they are read beside the load, and whatever needs them fails
    served = PromptClassifier.load(path).predict_proba(TEXTS)
    loaded = PromptClassifier.load(tampered)
    assert np.array_equal(loaded.predict_proba(TEXTS), served)
    fp32 = lambda: PromptClassifier.load(tampered, embedder="onnx:all-MiniLM-L6-v2").predict(TEXTS)  # noqa: E731
    for use in (lambda: loaded.save(tmp_path / "u.clf"), fp32):
        with pytest.raises(ModelFileError, match=r"encoder/model\.onnx") as e:
            use()
        assert e.value.member == "encoder/model.onnx"
    assert not (tmp_path / "u.clf").exists()
    with pytest.raises(ModelFileError, match="not a valid ONNX model") as e:  # truncated, checksum made to match
        PromptClassifier.load(forge(path, tmp_path / "c.clf", graph[: len(graph) // 2]))
    assert e.value.member == "encoder/model.onnx"
    m = onnx.load_model_from_string(graph)  # a weight of the wrong shape: more weights than the base has
    big = next(t for t in m.graph.initializer if len(t.dims) == 2)
    extra = onnx.numpy_helper.from_array(np.zeros((30522, 384), np.float32), name="extra")
    m.graph.initializer.append(extra)
    with pytest.raises(ModelFileError, match="more than the base model's"):
        PromptClassifier.load(forge(path, tmp_path / "s.clf", m.SerializeToString()))
    m2 = onnx.load_model_from_string(graph)  # same count, wrong shape: fails when run, still a ModelFileError
    w = next(t for t in m2.graph.initializer if t.name == big.name)
    arr = onnx.numpy_helper.to_array(w)
    w.CopyFrom(onnx.numpy_helper.from_array(arr.reshape(arr.shape[::-1]).copy(), name=w.name))
    with pytest.raises(ModelFileError, match=r"encoder/model\.onnx"):
        PromptClassifier.load(forge(path, tmp_path / "w.clf", m2.SerializeToString()))
    m3 = onnx.load_model_from_string(graph)  # weights of NaN: int8 cannot quantise them, fp32 gives no vectors
    w = next(t for t in m3.graph.initializer if t.name == big.name)
    w.CopyFrom(onnx.numpy_helper.from_array(np.full_like(onnx.numpy_helper.to_array(w), np.nan), name=w.name))
    nan = forge(path, tmp_path / "n.clf", m3.SerializeToString())
    for served, says in ((None, "cannot run"), ("onnx:all-MiniLM-L6-v2", "NaN")):
        with pytest.raises(ModelFileError, match=rf"encoder/model\.onnx: .*{says}") as e:
            PromptClassifier.load(nan, embedder=served)
        assert e.value.member == "encoder/model.onnx"


def test_a_graph_that_ran_here_is_not_run_at_load_and_one_that_cannot_run_fails_at_first_use(
    tuned, tmp_path, monkeypatch
):
    """The first load of a graph runs it; later loads leave its session to the first text that needs
    it (a fast path may answer without it). A graph that then cannot run is still a ModelFileError."""
    import onnx

    import promptclf.modelfile as mf

    _, path = tuned
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))
    first = PromptClassifier.load(path)
    assert first._tuned._sessions  # run at load: its session made
    again = PromptClassifier.load(path)
    assert not again._tuned._sessions  # ran here before: nothing run yet
    assert np.array_equal(again.predict_proba(TEXTS), first.predict_proba(TEXTS))
    assert again._tuned._sessions
    wide = PromptClassifier.load(path, embedder="onnx:all-MiniLM-L6-v2")  # served fp32: not run that way yet
    assert wide._tuned._sessions
    with zipfile.ZipFile(path) as z:
        m = onnx.load_model_from_string(z.read("encoder/model.onnx"))
    w = next(t for t in m.graph.initializer if len(t.dims) == 2 and t.dims[0] != t.dims[1])
    arr = onnx.numpy_helper.to_array(w)
    w.CopyFrom(onnx.numpy_helper.from_array(arr.reshape(arr.shape[::-1]).copy(), name=w.name))
    bad = forge(path, tmp_path / "w.clf", m.SerializeToString())
    with pytest.raises(ModelFileError, match=r"encoder/model\.onnx: cannot run"):
        PromptClassifier.load(bad)
    monkeypatch.setattr(mf, "once", lambda check, *rules: None)  # as if a marker said it ran here
    lazy = PromptClassifier.load(bad)
    with pytest.raises(ModelFileError, match=r"encoder/model\.onnx: cannot run") as e:
        lazy.predict_proba(TEXTS)
    assert e.value.member == "encoder/model.onnx" and e.value.path == str(bad)


def test_encoder_member_far_over_its_bound(tuned, tmp_path):
    _, path = tuned
    bomb = b"\0" * (300 << 20)  # 300 MiB of zeros compress to ~300 KB
    with pytest.raises(ModelFileError, match="over the"):
        PromptClassifier.load(forge(path, tmp_path / "b.clf", bomb))


def test_the_budget_stops_training_and_the_model_is_usable():
    clf = PromptClassifier(finetune=True, finetune_budget_s=0, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG).train()
    assert clf.encoder_["report"]["stopped_by_budget"] and clf.encoder_["report"]["steps"] == 1
    assert clf.predict(["a wonderful film"]) in (["pos"], ["neg"])


def test_an_interrupted_finetune_leaves_the_previous_model(tuned, monkeypatch):
    clf, _ = tuned
    before = clf.predict_proba(TEXTS)

    def interrupt(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("promptclf.finetune.finetune", interrupt)
    with pytest.raises(KeyboardInterrupt):
        clf.train()
    assert np.allclose(clf.predict_proba(TEXTS), before)


def test_auto_tunes_with_a_pool_of_unlabeled_texts_and_keeps_the_encoder_otherwise(monkeypatch):
    """finetune="auto" (the default) tunes where the benchmark measured a gain, a pool of real texts
    (at least AUTO_FINETUNE_MIN_POOL of them, lowered here so the test stays short), and only there."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_POOL", 8)
    pool = [f"{w} film, {v}" for w in ("a lovely", "a boring", "an awful", "a great") for v in ("truly", "I think")]
    clf = PromptClassifier(finetune_budget_s=5, progress=False)
    assert clf.get_params()["finetune"] == "auto"
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG).train(unlabeled=pool[:7])
    assert "encoder_" not in clf.__dict__  # 7 texts: under the minimum, the base encoder stays
    clf.train(unlabeled=pool)
    name = clf.encoder_["name"]
    assert clf.encoder_["report"]["steps"] > 0 and clf.embedder_spec_["kind"] == "finetuned"
    clf.add_data_to_class("pos", "a moving, funny film").train()  # no pool: the tuned encoder is kept
    assert clf.encoder_["name"] == name and clf.embedder_spec_ == {"kind": "finetuned", "model": name}
    monkeypatch.setitem(sys.modules, "torch", None)  # where PyTorch is missing, auto does not tune
    assert clf._tunes(len(pool)) is False


def test_auto_tunes_in_prompt_train_when_every_class_has_enough_examples(monkeypatch):
    """From the prompt alone "auto" tunes once every class has AUTO_FINETUNE_MIN_PER_CLASS examples of
    its own (lowered here to keep the test short): a class short of it keeps the base encoder, and a
    later train() without a pool keeps whichever encoder the model has."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_PER_CLASS", 5)
    descs = {"pos": "A review that praises the film.", "neg": "A review that pans the film."}
    short = PromptClassifier(finetune_budget_s=5, progress=False)
    short.add_data_to_class("pos", POS).add_data_to_class("neg", NEG[:4]).prompt_train(descs, generate=False)
    assert "encoder_" not in short.__dict__ and short.embedder_spec_["kind"] != "finetuned"
    short.add_data_to_class("neg", NEG[4]).train()  # enough now, but train() alone does not tune
    assert "encoder_" not in short.__dict__
    short.prompt_train(descs, generate=False)
    name = short.encoder_["name"]
    assert short.encoder_["report"]["steps"] > 0 and short.embedder_spec_ == {"kind": "finetuned", "model": name}
    short.add_data_to_class("pos", "a moving, funny film").train()
    assert short.encoder_["name"] == name
    frozen = PromptClassifier(finetune=False, progress=False)  # an explicit False is never overridden
    frozen.add_data_to_class("pos", POS).add_data_to_class("neg", NEG).prompt_train(descs, generate=False)
    assert "encoder_" not in frozen.__dict__


def test_the_pool_is_first_labelled_beside_an_encoder_tuned_on_no_pool_text(tuned, monkeypatch):
    """With a pool to tune on, the pool's first labels come from the base encoder's vectors and those of
    the encoder tuned from the prompt (it has seen no pool text) side by side; from the base alone where
    the encoder was tuned on a pool: one that learned that pool's pseudo-labels would confirm its own
    errors. A file without the count is the latter."""
    _, path = tuned
    loaded = PromptClassifier.load(path)
    assert loaded.encoder_["report"]["pool_texts"] == 0
    first = loaded._first_labeller()  # the tuned encoder as loaded, beside the base
    assert first.parts == (loaded._embedder, loaded._tuned)
    pool = [f"{w} film, {v}" for w in ("a lovely", "a boring", "an awful", "a great") for v in ("truly", "I think")]
    clf = PromptClassifier(finetune=True, finetune_budget_s=5, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    clf.prompt_train({"pos": "A review that praises the film.", "neg": "A review that pans the film."}, generate=False)
    labellers = []
    plain = clf._pseudo_label

    def spy(unlabeled, emb, check=True):
        labellers.append((emb.id, check))
        return plain(unlabeled, emb, check=check)

    monkeypatch.setattr(clf, "_pseudo_label", spy)
    prompt_tuned = clf._tuned.id
    clf.train(unlabeled=pool)
    pool_tuned = clf._tuned.id
    # first the base and the prompt-tuned encoder label the pool; after tuning on it, the pool-tuned one
    both = f"joined:{clf._embedder.id}+{prompt_tuned}"
    assert labellers == [(both, True), (pool_tuned, False)]
    assert clf.encoder_["report"]["pool_texts"] > 0  # the pseudo-labels it was tuned on
    labellers.clear()
    clf.train(unlabeled=pool)  # tuned on a pool now: the base labels it first
    assert labellers[0] == (clf._embedder.id, True)
    monkeypatch.delitem(clf.encoder_["report"], "pool_texts")  # a file saved before the count
    assert clf._first_labeller() is clf._embedder
    monkeypatch.setattr("promptclf.classifier.FIRST_LABELS", "tuned")
    assert loaded._first_labeller() is loaded._tuned
    monkeypatch.setattr("promptclf.classifier.FIRST_LABELS", "base")
    assert loaded._first_labeller() is loaded._embedder


def test_one_prompt_train_with_a_pool_tunes_on_the_prompt_first(monkeypatch):
    """prompt_train(descriptions, unlabeled=pool) does what prompt_train then train(unlabeled=pool) do:
    it tunes on the prompt's examples first (as without a pool), so the base and that encoder label the
    pool first, then tunes on the pool and relabels it. The first tuning leaves out an earlier pool's
    pseudo-labels (the store has them from the first call; the pool is labelled anew)."""
    import promptclf.finetune as F

    pool = [f"{w} film, {v}" for w in ("a lovely", "a boring", "an awful", "a great") for v in ("truly", "I think")]
    descs = {"pos": "A review that praises the film.", "neg": "A review that pans the film."}
    clf = PromptClassifier(finetune=True, finetune_budget_s=1, progress=False)  # a step or two each
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    steps, tuned_on = [], []
    plain_label, plain_tune, plain_finetune = clf._pseudo_label, clf._finetune, F.finetune

    def label(unlabeled, emb, check=True):
        steps.append(("label", emb.id))
        return plain_label(unlabeled, emb, check=check)

    def tune(include=None):
        plain_tune(include)
        steps.append(("tune", clf._tuned.id, clf.encoder_["report"]["pool_texts"]))

    def finetune(model_path, texts, *args, **kw):
        tuned_on.append(set(texts))
        return plain_finetune(model_path, texts, *args, **kw)

    monkeypatch.setattr(clf, "_pseudo_label", label)
    monkeypatch.setattr(clf, "_finetune", tune)
    monkeypatch.setattr(F, "finetune", finetune)
    clf.prompt_train(descs, generate=False, unlabeled=pool)
    (_, prompt_tuned, seen), (_, both), (_, pool_tuned, learned), last = steps
    assert seen == 0 and learned > 0 and not tuned_on[0] & set(pool) and tuned_on[1] & set(pool)
    assert both == f"joined:{clf._embedder.id}+{prompt_tuned}" and last == ("label", pool_tuned)
    steps.clear()
    tuned_on.clear()
    assert clf._store.examples(("pseudo",))  # this pool's labels, from the first call
    clf.prompt_train(descs, generate=False, unlabeled=pool)
    (_, prompt_tuned, seen), (_, both), *_ = steps
    assert seen == 0 and both == f"joined:{clf._embedder.id}+{prompt_tuned}" and len(steps) == 4
    assert not tuned_on[0] & set(pool)  # the earlier labels of the pool are not what it tunes on first
    assert clf._tunes_on_the_prompt_first(True) and not clf._tunes_on_the_prompt_first(False)  # train(): no
    monkeypatch.setattr("promptclf.classifier.FIRST_LABELS", "base")  # the switch turns it off too
    assert not clf._tunes_on_the_prompt_first(True)


def test_auto_tunes_on_the_pool_only_where_it_moves_the_prompt_tuned_model(monkeypatch):
    """finetune="auto" with a pool and an encoder tuned on the prompt tunes again on the pool only where
    the pool's first labels agree with the examples' alone on less than POOL_TUNING_MAX_AGREEMENT of it
    (set here to force each side); otherwise the prompt-tuned encoder stays and the head learns the
    pool's labels. Nor where self-training's guard kept none of the pool's labels (forced by a negative
    GUARD_MARGIN): the only tuning is the prompt's. training_summary_ says which and why; finetune=True
    always tunes."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_POOL", 8)
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_PER_CLASS", 5)
    pool = [f"{w} film, {v}" for w in ("a lovely", "a boring", "an awful", "a great") for v in ("truly", "I think")]
    descs = {"pos": "A review that praises the film.", "neg": "A review that pans the film."}
    clf = PromptClassifier(finetune_budget_s=1, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)

    def trained(max_agreement: float) -> dict:
        monkeypatch.setattr("promptclf.classifier.POOL_TUNING_MAX_AGREEMENT", max_agreement)
        clf.prompt_train(descs, generate=False, unlabeled=pool)
        assert clf._store.examples(("pseudo",)) and clf.embedder_spec_["model"] == clf.encoder_["name"]
        return clf.training_summary_["pool_tuning"]

    kept = trained(0.0)  # any pool agrees enough: the prompt-tuned encoder stays
    assert kept["tuned"] is False and kept["chosen_by"] == "agreement" and 0 <= kept["agreement_with_anchors"] <= 1
    assert clf.encoder_["report"]["pool_texts"] == 0 and clf.summary()["pool_tuning"] == kept
    assert trained(1.01)["tuned"] is True and clf.encoder_["report"]["pool_texts"] > 0  # none does: tuned
    from promptclf import selftrain

    margin = selftrain.GUARD_MARGIN
    monkeypatch.setattr("promptclf.selftrain.GUARD_MARGIN", -2.0)  # the guard keeps none of the pool's labels
    tunings, tune = [], clf._finetune
    monkeypatch.setattr(clf, "_finetune", lambda *a, **k: tunings.append(a) or tune(*a, **k))
    clf.prompt_train(descs, generate=False, unlabeled=pool)  # the agreement would tune: nothing new to tune on
    rejected = clf.training_summary_["pool_tuning"]
    assert rejected["tuned"] is False and rejected["chosen_by"] == "guard" and len(tunings) == 1  # the prompt's
    assert clf.self_training_report_["guard"]["fallback"] and not clf._store.examples(("pseudo",))
    monkeypatch.setattr("promptclf.selftrain.GUARD_MARGIN", margin)  # the real guard again
    clf.set_params(finetune=True)
    assert trained(0.0)["chosen_by"] == "settings" and clf.encoder_["report"]["pool_texts"] > 0  # asked for: always
    assert clf.train().training_summary_["pool_tuning"] is None  # no pool, nothing to choose


def test_an_interruption_after_the_encoder_is_tuned_restores_the_model(tuned, monkeypatch):
    """train() tunes the encoder, then relabels the pool and refits the head on the new vectors: a
    Ctrl-C in between puts back the encoder, the head, the thresholds and the pool's pseudo-labels,
    so the model predicts as before (not a head reading vectors it was not fitted on)."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_POOL", 8)
    _, path = tuned
    clf = PromptClassifier.load(path).set_params(finetune_budget_s=5, progress=False)
    pool = [f"{w} film, {v}" for w in ("a lovely", "a boring", "an awful", "a great") for v in ("truly", "I think")]
    clf.train(unlabeled=pool)
    state = {k: clf.__dict__[k] for k in ("head_", "thresholds_", "encoder_", "_tuned", "self_training_report_")}
    pseudo = clf._store.examples(("pseudo",))
    before = clf.predict_proba(TEXTS)
    plain = clf._pseudo_label
    calls = []

    def interrupt_the_relabelling(unlabeled, emb, check=True):
        calls.append(emb.id)
        if len(calls) == 2:  # after the pool tuning adopted its encoder
            raise KeyboardInterrupt
        return plain(unlabeled, emb, check=check)

    monkeypatch.setattr(clf, "_pseudo_label", interrupt_the_relabelling)
    with pytest.raises(KeyboardInterrupt):
        clf.train(unlabeled=pool[::-1])
    assert len(calls) == 2  # the relabelling with the newly adopted encoder was interrupted
    assert all(clf.__dict__[k] is v for k, v in state.items())
    again = clf._store.examples(("pseudo",))  # the same Example objects: their confidences too
    assert len(again) == len(pseudo) and all(a is b for a, b in zip(again, pseudo))
    assert np.allclose(clf.predict_proba(TEXTS), before)


def test_multi_label_fine_tunes_saves_and_predicts_lists(tmp_path):
    """finetune=True with multi_label: a text in two classes is never a negative of either, the tuned
    file loads and predicts the same label lists."""
    clf = PromptClassifier(multi_label=True, finetune=True, finetune_budget_s=30, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    clf.add_data_to_class("plot", ["a twisty plot", "the story kept me guessing", "a clever storyline"])
    clf.add_data_to_class("plot", POS[4]).add_data_to_class("plot", NEG[4])  # two labels each
    clf.train()
    assert clf.encoder_["report"]["steps"] > 0 and clf.embedder_spec_["kind"] == "finetuned"
    pred = clf.predict(TEXTS)
    assert all(isinstance(p, list) for p in pred)
    clf.save(tmp_path / "m.clf")
    again = PromptClassifier.load(tmp_path / "m.clf", embedder="onnx:all-MiniLM-L6-v2")
    assert again.multi_label and again.predict(TEXTS) == pred
