import numpy as np

from promptclf import PromptClassifier
from promptclf.head import DEFAULT_C, choose_C, fit_head, out_of_fold_proba, prior_coef, with_prior


def blobs(k=3, n=20, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    X = np.vstack([c + 0.8 * rng.normal(size=(n, d)) for c in centers])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.repeat([f"c{i}" for i in range(k)], n)
    return X, y, centers / np.linalg.norm(centers, axis=1, keepdims=True)


def test_prior_is_exactly_added_to_the_scores():
    for k in (2, 3):
        X, y, D = blobs(k)
        head = fit_head(X, y, C=1.0)
        prior = prior_coef(head.classes_, {f"c{i}": D[i] for i in range(k)}, 10.0)
        both = with_prior(head, prior)
        z = head.decision_function(X) + X @ prior.T
        assert np.allclose(both.decision_function(X), z, atol=1e-4)
        if k == 2:
            assert np.allclose(z[:, 0], head.decision_function(X)[:, 0] + 10 * X @ (D[1] - D[0]), atol=1e-4)


def test_no_prior_unless_every_class_has_a_description():
    classes = np.array(["a", "b", "c"])
    assert prior_coef(classes, {"a": np.ones(4), "b": np.ones(4)}, 10.0) is None
    assert prior_coef(classes, {c: np.ones(4) for c in classes}, 0.0) is None


def test_out_of_fold_probabilities_include_the_prior():
    X, y, D = blobs(3)
    classes = np.unique(y)
    flipped = {"c0": D[1], "c1": D[2], "c2": D[0]}  # a prior that points every class at another's centre
    oof = out_of_fold_proba(X, y, 1.0, prior=prior_coef(classes, flipped, 1000.0))
    assert oof.shape == (len(y), 3) and np.allclose(oof.sum(1), 1)
    expected = (X @ np.stack([flipped[c] for c in classes]).T).argmax(1)
    assert (oof.argmax(1) == expected).mean() > 0.95  # the prior dominates every fold's scores


def test_C_is_cross_validated_only_with_enough_user_examples():
    X, y, _ = blobs(2, n=30)
    assert choose_C(X, y, np.zeros(len(y), bool)) == DEFAULT_C
    few = np.zeros(len(y), bool)
    few[:5] = few[30:35] = True
    assert choose_C(X, y, few) == DEFAULT_C
    assert choose_C(X, y, np.ones(len(y), bool)) in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def test_classifier_uses_the_description_prior(fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    clf.prompts_ = {"pos": "praise joy delight", "neg": "boredom tedium dislike"}
    clf.add_data_to_class("pos", ["a film", "a movie"])
    clf.add_data_to_class("neg", ["the film", "the movie"])
    clf.train()
    assert clf.training_summary_["prior_weight"] == 10.0
    assert clf.predict(["joy and delight"]) == ["pos"]
    off = PromptClassifier(embedder=fake_embedder, prior_weight=0, progress=False)
    off.prompts_ = clf.prompts_
    off._store = clf._store
    assert off.train().training_summary_["prior_weight"] == 0.0
