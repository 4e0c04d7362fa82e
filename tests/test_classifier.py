import numpy as np
import pytest

from promptclf import ConfigurationError, InvalidInputError, NotFittedError, PromptClassifier, PromptClfError


def test_predict_shapes_and_types(trained):
    assert list(trained.classes_) == ["neg", "pos"]
    assert trained.predict("a wonderful superb delightful movie") == "pos"
    assert trained.predict(["a dreadful boring tedious movie", "a charming joyful film"]) == ["neg", "pos"]
    assert trained.predict([]) == []
    proba = trained.predict_proba(["a dull painful film", "brilliant"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1)
    assert proba[0, list(trained.classes_).index("neg")] > 0.5


def test_classify_is_lamini_shaped(trained):
    [res] = trained.classify(["a masterful moving film"])
    assert [d["class_name"] for d in res] == ["pos", "neg"]
    assert res[0]["prob"] >= res[1]["prob"]
    assert trained.classify(["x"], top_n=1)[0][0].keys() == {"class_name", "prob"}
    assert len(trained.classify(["a masterful moving film"], threshold=0.5)[0]) == 1


def test_numpy_head_matches_sklearn(trained, fake_embedder):
    from sklearn.linear_model import LogisticRegression

    texts, y, _ = trained._training_set()
    X = fake_embedder.embed(texts)
    ref = LogisticRegression(C=trained.head_.C_, class_weight="balanced", max_iter=2000).fit(X, y)
    assert np.allclose(trained.head_.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_multiclass_head_matches_sklearn(fake_embedder):
    from sklearn.linear_model import LogisticRegression

    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    for c in ["alpha", "beta", "gamma"]:
        clf.add_data_to_class(c, [f"{c} text {i} {c}{i % 3}" for i in range(8)])
    clf.train()
    texts, y, _ = clf._training_set()
    X = fake_embedder.embed(texts)
    ref = LogisticRegression(C=clf.head_.C_, class_weight="balanced", max_iter=2000).fit(X, y)
    assert np.allclose(clf.head_.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    assert clf.predict_proba(["gamma text"]).shape == (1, 3)


def test_thresholds_reach_target_on_out_of_fold_data(trained):
    curves = trained.precision_recall_curves()
    assert set(curves) == {"neg", "pos"}
    assert trained.thresholds_.shape == (2,)
    for j, c in enumerate(trained.classes_):
        cur = curves[c]
        i = np.searchsorted(cur["thresholds"], trained.thresholds_[j])
        assert cur["precision"][i] >= trained.target_precision


def test_abstain_returns_none_under_threshold(trained):
    trained.thresholds_ = np.array([0.99, 0.99])
    assert trained.predict(["zzz unknown words"], abstain=True) == [None]
    trained.thresholds_ = np.array([0.0, 0.0])
    assert trained.predict(["zzz unknown words"], abstain=True)[0] in {"neg", "pos"}


def test_calibrate_from_labelled_data(trained):
    texts = ["a wonderful film", "a dreadful film", "superb", "boring", "charming story", "tedious story"]
    labels = ["pos", "neg", "pos", "neg", "pos", "neg"]
    trained.calibrate(texts, labels, target_precision=0.8)
    assert trained.target_precision == 0.9  # the constructor's setting is not rewritten
    cal = trained.calibration_
    assert {k: cal[k] for k in ("source", "target_precision", "n", "labels", "calibrated")} == {
        "source": "labelled",
        "target_precision": 0.8,
        "n": 6,
        "labels": "real",
        "calibrated": True,
    }
    assert cal["precision"] == trained.precision_at_threshold_
    assert cal["real_labels"] == {"neg": 3, "pos": 3}
    est = cal["estimate"]  # cross-validated: 3 folds of 2, thresholds chosen on the other 4 rows
    assert est["n"] == 6 and est["method"].startswith("3-fold")
    assert 0 <= est["precision_interval"][0] <= est["precision_interval"][1] <= 1
    assert set(trained.precision_recall_curves()) == {"neg", "pos"}
    with pytest.raises(InvalidInputError, match="not classes"):
        trained.calibrate(["x"], ["other"])
    with pytest.raises(InvalidInputError, match="1 texts but 2 labels"):
        trained.calibrate(["x"], ["pos", "neg"])


def test_retraining_embeds_only_new_texts(trained, fake_embedder):
    before = len(fake_embedder.embedded)
    trained.add_data_to_class("pos", "an entirely new delightful example")
    trained.train()
    assert fake_embedder.embedded[before:] == ["an entirely new delightful example"]


def test_unknown_class_becomes_new_class(trained):
    trained.add_data_to_class("meh", ["so so", "it was fine i guess", "average"])
    trained.train()
    assert list(trained.classes_) == ["meh", "neg", "pos"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.add_data_to_class("", "x"), "class name must not be empty"),
        (lambda c: c.add_data_to_class(3, "x"), "class name must be a string"),
        (lambda c: c.add_data_to_class("a", ["ok", 5]), r"examples\[1\] must be a string"),
        (lambda c: c.add_data_to_class("a", [" "]), r"examples\[0\] is empty"),
        (lambda c: c.add_data_to_class("a", None), "got None"),
    ],
)
def test_bad_examples_are_named(fake_embedder, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(PromptClassifier(embedder=fake_embedder))


def test_bad_texts_at_predict(trained):
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a string, got NoneType"):
        trained.predict(["fine", None])
    with pytest.raises(InvalidInputError, match="got None"):
        trained.predict(None)


def test_predict_before_training(fake_embedder):
    with pytest.raises(NotFittedError, match="not trained yet"):
        PromptClassifier(embedder=fake_embedder).predict(["x"])


def test_fewer_than_two_classes(fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder).add_data_to_class("only", ["a b", "c d"])
    with pytest.raises(InvalidInputError, match="at least two classes"):
        clf.train()


def test_errors_share_one_base():
    for cls in (ConfigurationError, InvalidInputError, NotFittedError):
        assert issubclass(cls, PromptClfError)


def test_unknown_embedder_spec():
    with pytest.raises(ConfigurationError, match="unknown embedder kind 'nope'"):
        PromptClassifier(embedder="nope:model")._embedder  # noqa: B018


def test_init_stores_settings_only(tmp_path):
    path = tmp_path / "never-created.jsonl"
    clf = PromptClassifier(saved_examples_path=path, examples_per_class=7)
    assert clf.examples_per_class == 7 and not path.exists()
    assert "_store" not in clf.__dict__ and "_embedder" not in clf.__dict__


def test_plot_precision_recall(trained, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "pr.png"
    trained.plot_precision_recall(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.predict(["fine", "\ud800"]), r"texts\[1\] is not valid Unicode \(a lone surrogate"),
        (lambda c: c.predict("\udfff oops"), "texts is not valid Unicode"),
        (lambda c: c.predict(np.array("a film")), "got a 0-d array"),
        (lambda c: c.predict(np.array([["a"], ["b"]])), "got a 2-d array"),
        (lambda c: c.predict(b"bytes"), "got bytes"),
        (lambda c: c.classify(["a film"], top_n="x"), "top_n must be a positive integer or None, got 'x'"),
        (lambda c: c.classify(["a film"], top_n=0), "top_n must be a positive integer"),
        (lambda c: c.classify(["a film"], threshold=2), "threshold must be a number from 0 to 1"),
        (lambda c: c.add_data_to_class("pos\ud800", "x"), "class name is not valid Unicode"),
    ],
)
def test_hostile_api_input_is_a_clear_error(trained, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(trained)


def test_numpy_arrays_of_strings_are_texts(trained):
    assert trained.predict(np.array(["a wonderful superb film", "a dreadful boring film"])) == ["pos", "neg"]
