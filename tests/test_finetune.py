"""Fine-tuning the encoder: pair making (fast, no model) and a real fine-tune of the packaged MiniLM."""

from collections import Counter

import numpy as np
import pytest

from promptclf.finetune import TRUST, make_pairs


def test_pairs_are_labelled_right_and_weighted_by_trust():
    texts = [f"{c} text {i}" for c in ("a", "b", "c") for i in range(5)]
    labels = [t[0] for t in texts]
    sources = ["user"] * 5 + ["pseudo"] * 10
    x, y, score = make_pairs(texts, labels, sources, seed=1)
    for s1, s2, sc in zip(x, y, score):
        assert sc == (1.0 if s1[0] == s2[0] else 0.0) and s1 != s2
    assert Counter(score) == {1.0: 25, 0.0: 25}  # one positive and one negative per draw
    anchors = Counter(s1 for s1, sc in zip(x, score) if sc == 0.0)
    assert anchors["a text 0"] == TRUST["user"] and anchors["b text 0"] == TRUST["pseudo"]


def test_a_single_example_class_gets_only_negative_pairs():
    x, _, score = make_pairs(["lonely", "b1", "b2"], ["a", "b", "b"], ["user"] * 3)
    assert all(sc == 0.0 for s1, sc in zip(x, score) if s1 == "lonely")


def test_a_small_set_draws_again_until_min_pairs_keeping_the_trust_ratio():
    texts = [f"{c} text {i}" for c in ("a", "b") for i in range(5)]
    labels = [t[0] for t in texts]
    sources = ["user"] * 5 + ["generated"] * 5
    x, _, score = make_pairs(texts, labels, sources, seed=1, min_pairs=400)
    assert 400 <= len(score) < 400 + 2 * 20  # whole passes: 20 draws (40 pairs) each
    anchors = Counter(s1 for s1, sc in zip(x, score) if sc == 0.0)
    assert anchors["a text 0"] == 3 * anchors["b text 0"]  # user 3x generated, every pass


def test_the_minimum_grows_with_the_pairs_of_classes(monkeypatch):
    from promptclf.finetune import min_pairs_for

    monkeypatch.setattr("promptclf.finetune.MIN_PAIRS_PER_CLASS_PAIR", 200)
    assert [min_pairs_for(k) for k in (2, 4, 6)] == [200, 1200, 3000]
    monkeypatch.setattr("promptclf.finetune.MIN_PAIRS", 500)
    assert [min_pairs_for(k) for k in (2, 6)] == [500, 3000]


def test_texts_with_several_labels_are_never_negatives_of_a_class_they_share():
    """Multi-label rows: "both" is in a and b; a negative pair joins texts with disjoint label sets only."""
    texts = ["both", "both", "a1", "a2", "b1", "b2", "c1", "c2"]
    labels = ["a", "b", "a", "a", "b", "b", "c", "c"]
    sets = {"both": {"a", "b"}, "a1": {"a"}, "a2": {"a"}, "b1": {"b"}, "b2": {"b"}, "c1": {"c"}, "c2": {"c"}}
    x, y, score = make_pairs(texts, labels, ["user"] * 8, seed=3, min_pairs=2000)
    negatives = [(s1, s2) for s1, s2, sc in zip(x, y, score) if sc == 0.0]
    assert negatives and all(not sets[s1] & sets[s2] for s1, s2 in negatives)
    assert {s2 for s1, s2 in negatives if s1 == "both"} == {"c1", "c2"}
    assert {s1 for s1, s2 in negatives if s2 == "both"} == {"c1", "c2"}  # and "both" is a negative of c only


@pytest.mark.integration
def test_finetune_pulls_classes_apart_and_the_budget_stops_it(capfd, monkeypatch):
    from promptclf.embedders import get_embedder
    from promptclf.embedders.local import resolve_model_path
    from promptclf.finetune import finetune, finetuned_embedder

    pos = ["what a wonderful film", "I loved every minute", "brilliant acting", "a joy to watch", "superb story"]
    neg = ["what a dreadful film", "I hated every minute", "wooden acting", "a chore to watch", "a dull story"]
    texts, labels = pos + neg, ["pos"] * 5 + ["neg"] * 5

    def separation(X):
        S = X @ X.T
        same = np.equal.outer(np.array(labels), np.array(labels))
        return S[same & ~np.eye(len(S), dtype=bool)].mean() - S[~same].mean()

    monkeypatch.setattr("promptclf.finetune.MIN_PAIRS_PER_CLASS_PAIR", 0)  # one pass: 60 pairs, quick
    before = separation(get_embedder(None).embed(texts))
    model, rep = finetune(resolve_model_path("all-MiniLM-L6-v2"), texts, labels, ["user"] * 10, epochs=3)
    after = separation(finetuned_embedder(model, "t").embed(texts))
    assert after > before + 0.02, (before, after)  # measured: -0.003 -> 0.038 (seeded)
    assert rep.steps > 0 and not rep.stopped_by_budget and rep.pairs == 60
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)  # no library noise without progress
    _, stopped = finetune(
        resolve_model_path("all-MiniLM-L6-v2"), texts, labels, ["user"] * 10, budget_s=0, progress=True
    )
    assert stopped.stopped_by_budget and stopped.steps == 1
    out, err = capfd.readouterr()  # with it, our one bar and nothing the trainer prints
    assert out == "" and "fine-tuning the encoder" in err, (out, err)
    assert "train_runtime" not in err and "widget" not in err and "it/s" not in err


def test_triplet_rows_repeat_each_example_by_its_trust():
    from promptclf.finetune import triplet_rows

    rows, ids = triplet_rows(["x", "y", "z"], ["b", "a", "b"], ["user", "generated", "pseudo"])
    assert rows == ["x"] * TRUST["user"] + ["y"] * TRUST["generated"] + ["z"] * TRUST["pseudo"]
    assert ids == [1] * TRUST["user"] + [0] * TRUST["generated"] + [1] * TRUST["pseudo"]  # sorted class ids


def test_an_unknown_loss_is_a_configuration_error():
    from promptclf import ConfigurationError
    from promptclf.finetune import finetune

    with pytest.raises(ConfigurationError, match="unknown fine-tuning loss 'hinge'") as e:
        finetune("unused", ["a", "b"], ["x", "y"], ["user"] * 2, loss="hinge")
    assert e.value.setting == "finetune"


@pytest.mark.integration
def test_triplet_loss_pulls_classes_apart_and_multi_label_sets_use_pairs():
    from promptclf.embedders import get_embedder
    from promptclf.embedders.local import resolve_model_path
    from promptclf.finetune import finetune, finetuned_embedder

    texts = ["what a wonderful film", "I loved every minute", "brilliant acting", "a joy to watch"]
    texts += ["what a dreadful film", "I hated every minute", "wooden acting", "a chore to watch"]
    labels = ["pos"] * 4 + ["neg"] * 4
    lab = np.array(labels)

    def separation(X):
        S, same = X @ X.T, np.equal.outer(lab, lab)
        return S[same & ~np.eye(len(S), dtype=bool)].mean() - S[~same].mean()

    path = resolve_model_path("all-MiniLM-L6-v2")
    before = separation(get_embedder(None).embed(texts))
    model, rep = finetune(path, texts, labels, ["user"] * 8, loss="triplet", epochs=4)
    assert separation(finetuned_embedder(model, "t").embed(texts)) > before + 0.02
    assert rep.settings["loss"] == "BatchAllTripletLoss" and rep.pairs == 8 * TRUST["user"] and rep.steps > 0
    # a text in pos and neg would be its own negative in a triplet: such a set trains on pairs
    both = ([*texts, "both", "both"], [*labels, "pos", "neg"], ["user"] * 10)
    _, rep = finetune(path, *both, loss="triplet", budget_s=0)
    assert rep.settings["loss"] == "CosineSimilarityLoss"
    # ... as does a class with a single row: batches grouped by label need two of each
    _, rep = finetune(path, [*texts, "lonely"], [*labels, "odd"], ["user"] * 8 + ["pseudo"], loss="triplet", budget_s=0)
    assert rep.settings["loss"] == "CosineSimilarityLoss"
