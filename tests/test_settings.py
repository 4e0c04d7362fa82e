"""scikit-learn's parameter contract and settings that survive save and load."""

import numpy as np
import pytest

from promptclf import ConfigurationError, PromptClassifier
from promptclf.settings import SAVED

NON_DEFAULT = {
    "examples_per_class": 7,
    "target_precision": 0.8,
    "random_state": 3,
    "strategy": "summaries",
    "templates": {"system": "You write data. JSON only."},
    "filter_generated": False,
    "llm_label_budget": 5,
    "prior_weight": 4.0,
    "C": 0.5,
}


def test_get_params_lists_every_constructor_setting():
    clf = PromptClassifier(examples_per_class=7)
    params = clf.get_params()
    assert set(params) == {"llm", "embedder", "saved_examples_path", "progress", *SAVED}
    assert params["examples_per_class"] == 7 and params["C"] is None


def test_set_params_and_sklearn_clone(fake_embedder):
    from sklearn.base import clone

    clf = PromptClassifier(embedder=fake_embedder).set_params(prior_weight=2.0, C="cv")
    assert clf.prior_weight == 2.0 and clf.C == "cv"
    copy = clone(clf)  # deep-copies what is not an estimator, as scikit-learn does
    a, b = copy.get_params(), clf.get_params()
    assert copy is not clf and a.pop("embedder").id == b.pop("embedder").id and a == b
    with pytest.raises(ConfigurationError, match="no setting 'colour'") as e:
        clf.set_params(colour="red")
    assert e.value.setting == "colour"


def test_set_params_drops_a_resolved_backend(fake_embedder):
    from tests.conftest import FakeEmbedder

    clf = PromptClassifier(embedder=fake_embedder)
    assert clf._embedder is fake_embedder
    other = FakeEmbedder(dim=16)
    clf.set_params(embedder=other)
    assert clf._embedder is other


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("target_precision", 2.0, "target_precision must be a number over 0.0 and at most 1.0, got 2.0"),
        ("target_precision", "x", "target_precision must be"),
        ("examples_per_class", 0, 'examples_per_class must be "auto" or an integer from 1 to 10000, got 0'),
        ("examples_per_class", 2.5, 'examples_per_class must be "auto" or an integer'),
        ("examples_per_class", "lots", 'examples_per_class must be "auto" or an integer from 1 to 10000'),
        ("prior_weight", -1.0, "prior_weight must be a number from 0.0 to 10000.0, got -1.0"),
        ("prior_weight", float("nan"), "prior_weight must be"),
        ("random_state", -1, "random_state must be an integer from 0 to 4294967295, got -1"),
        ("random_state", None, "random_state must be an integer"),
        ("C", -3, "C must be None, 'cv' or a positive number"),
        ("filter_generated", "yes", "filter_generated must be True or False"),
        ("strategy", "magic", "strategy must be one of"),
        ("llm_label_budget", -2, 'llm_label_budget must be "auto" or an integer from 0'),
        ("llm_label_budget", "some", 'llm_label_budget must be "auto" or an integer'),
    ],
)
def test_settings_are_checked_when_training_starts(trained, setting, value, message):
    trained.set_params(**{setting: value})  # setting stores only (scikit-learn's convention)
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        trained.train()
    assert e.value.setting == setting


def test_save_refuses_a_bad_setting_set_after_training(trained, tmp_path):
    trained.set_params(target_precision="x")
    with pytest.raises(ConfigurationError, match="target_precision"):
        trained.save(tmp_path / "m.clf")
    assert not (tmp_path / "m.clf").exists()


def test_every_setting_round_trips_through_the_file(fake_embedder, toy_data, tmp_path):
    clf = PromptClassifier(embedder=fake_embedder, progress=False, **NON_DEFAULT)
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, xs)
    clf.train().save(tmp_path / "m.clf")
    back = PromptClassifier.load(tmp_path / "m.clf")
    machine_local = {"llm", "embedder", "saved_examples_path", "progress"}
    want = {k: v for k, v in clf.get_params().items() if k not in machine_local}
    assert {k: v for k, v in back.get_params().items() if k not in machine_local} == want
    # and so retraining the loaded model trains the same model
    again = back.train()
    assert np.allclose(again.head_.coef_, clf.head_.coef_, atol=1e-5)
    assert again.head_.C_ == 0.5 and again.training_summary_["prior_weight"] == 0.0  # no descriptions


def test_calibrate_validates_before_changing_anything(trained):
    before = trained.thresholds_.copy()
    for bad in ("x", 1.5, 0, float("nan")):
        with pytest.raises(Exception, match="target_precision must be") as e:
            trained.calibrate(["a wonderful film"], ["pos"], target_precision=bad)
        assert e.type.__name__ == "InvalidInputError"
    with pytest.raises(Exception, match="needs labelled texts, got none"):
        trained.calibrate([], [])
    assert np.array_equal(trained.thresholds_, before) and trained.target_precision == 0.9


def test_finetune_is_true_false_or_auto(fake_embedder):
    assert PromptClassifier().finetune == "auto"
    clf = PromptClassifier(embedder=fake_embedder, finetune="yes", progress=False)
    clf.add_data_to_class("a", ["x one", "x two"]).add_data_to_class("b", ["y one", "y two"])
    with pytest.raises(ConfigurationError, match="finetune") as e:
        clf.train()
    assert e.value.setting == "finetune"


def test_auto_finetune_skips_an_embedder_it_cannot_tune(fake_embedder, monkeypatch):
    """With the default finetune="auto", a pool of unlabeled texts and an embedder that is not a local
    sentence-transformers model train as before (single- or multi-label), without an error."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_POOL", 4)
    pool = ["x three", "x four", "y three", "y four", "x five", "y five"]
    for multi in (False, True):
        clf = PromptClassifier(embedder=fake_embedder, multi_label=multi, progress=False)
        clf.add_data_to_class("a", ["x one", "x two", "x six"]).add_data_to_class("b", ["y one", "y two", "y six"])
        clf.train(unlabeled=pool)
        assert "encoder_" not in clf.__dict__ and clf.embedder_spec_["kind"] != "finetuned"
