"""The label-free check of the generated examples (promptclf.crosscheck): the learnability score, and
``train`` setting aside generated examples that contradict the descriptions (known geometry: the fake
bag-of-words embedder, pos/neg words, a pool of real-looking reviews)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import promptclf.crosscheck as cc
from promptclf import PromptClassifier
from promptclf.classifier import prompt_sha
from tests.conftest import WORDS, FakeEmbedder

FILLER = ["the", "film", "was", "plot", "actor", "scene", "story", "screen", "cast", "music", "ending", "script"]
DESCS = {
    "pos": "wonderful superb delightful moving brilliant charming",
    "neg": "dreadful boring tedious awful clumsy dull",
}


def reviews(seed: int = 0) -> tuple[list[str], list[str]]:
    """Real-looking texts: two sentiment words of their class among neutral ones."""
    rng = np.random.default_rng(seed)
    texts, truth = [], []
    for cls in ("pos", "neg"):
        for _ in range(120):
            w = rng.choice(WORDS[cls], 2)
            texts.append(f"{w[0]} {' '.join(rng.choice(FILLER, 3))} {w[1]} review{len(texts)}")
            truth.append(cls)
    return texts, truth


def generated_file(path, flip: float, seed: int = 0, n: int = 30):
    """Generated examples in the LLM's own style; with ``flip`` = 1 every one has the other class's words."""
    rng = np.random.default_rng(seed)
    records = []
    for cls in ("pos", "neg"):
        other = "neg" if cls == "pos" else "pos"
        texts = []
        for i in range(n):
            src = other if rng.random() < flip else cls
            w = rng.choice(WORDS[src], 2)
            texts.append(f"wow what a show {w[0]} {w[1]} totally {i}!")
        meta = {"prompt_sha": prompt_sha(DESCS[cls])}
        records.append({"class_name": cls, "examples": texts, "source": "generated", "meta": meta})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def model(path) -> PromptClassifier:
    return PromptClassifier(embedder=FakeEmbedder(), progress=False, finetune=False).load_examples(path)


def test_learnability_rewards_labels_that_follow_the_words():
    texts, truth = reviews()
    classes = np.array(["neg", "pos"])
    right = cc.learnability(texts, np.array(truth), classes)
    shuffled = cc.learnability(texts, np.random.default_rng(0).permutation(truth), classes)
    assert right > 0.9 and shuffled < 0.7
    one_class = cc.learnability(texts, np.array(["pos"] * len(texts)), classes)
    assert one_class == 0.0  # a labelling that loses a class scores nothing
    report = cc.compare(texts, np.random.default_rng(0).permutation(truth), np.array(truth), classes)
    assert report["keep_generated"] is False and report["judged_texts"] == len(texts)
    assert cc.compare(texts, np.array(truth), np.array(truth), classes)["keep_generated"] is True  # a tie keeps


def test_generated_examples_that_fit_the_descriptions_are_kept(tmp_path):
    pool, _ = reviews()
    clf = model(generated_file(tmp_path / "g.jsonl", flip=0.0)).prompt_train(DESCS, generate=False, unlabeled=pool)
    verdict = clf.summary()["generated_examples"]
    assert verdict["keep_generated"] is True
    assert verdict["learnability_with_generated"] >= verdict["learnability_without_generated"]
    assert "generated" in clf.training_data()[2]


def test_generated_examples_that_contradict_the_descriptions_are_set_aside(tmp_path, monkeypatch):
    pool, truth = reviews()
    bad = generated_file(tmp_path / "g.jsonl", flip=1.0, n=60)
    clf = model(bad).prompt_train(DESCS, generate=False, unlabeled=pool)
    verdict = clf.summary()["generated_examples"]
    assert verdict["keep_generated"] is False
    assert verdict["learnability_without_generated"] > verdict["learnability_with_generated"] + cc.MARGIN
    sources = clf.training_data()[2]
    assert "generated" not in sources and "pseudo" in sources
    assert len(clf._store.examples(("generated",))) == 120  # set aside, not lost
    checked = np.mean(np.array(clf.predict(pool)) == truth)
    monkeypatch.setattr(cc, "ENABLED", False)
    unchecked = model(bad).prompt_train(DESCS, generate=False, unlabeled=pool)
    assert checked > np.mean(np.array(unchecked.predict(pool)) == truth) + 0.03  # 0.95 against 0.88
    monkeypatch.setattr(cc, "ENABLED", True)

    # the verdict travels in the file and holds for a retrain without unlabeled texts
    clf.save(tmp_path / "m.clf")
    loaded = PromptClassifier.load(tmp_path / "m.clf", embedder=FakeEmbedder())
    assert loaded.summary()["generated_examples"]["keep_generated"] is False
    loaded.add_data_to_class("pos", "a superb brilliant evening")
    loaded.train()
    assert "generated" not in loaded.training_data()[2]

    # a later run on unlabeled texts judges again: with the generated examples fixed, they are used
    again = model(generated_file(tmp_path / "h.jsonl", flip=0.0))
    again.prompt_train(DESCS, generate=False, unlabeled=pool)
    assert again.summary()["generated_examples"]["keep_generated"] is True


def test_the_relabelling_round_follows_the_first_verdict(tmp_path, monkeypatch):
    """After fine-tuning, the pool is pseudo-labelled again with the tuned encoder; that round must not
    judge anew (the tuned encoder learnt without the generated examples) but keep the verdict."""
    pool, _ = reviews()
    clf = model(generated_file(tmp_path / "g.jsonl", flip=1.0, n=60)).prompt_train(
        DESCS, generate=False, unlabeled=pool
    )
    verdict = clf.self_training_report_["generated_examples"]
    assert verdict["keep_generated"] is False
    monkeypatch.setattr(cc, "MARGIN", 1.0)  # a fresh check would now keep them; the relabelling must not ask
    clf._pseudo_label(pool, clf._emb, check=False)
    assert clf.self_training_report_["generated_examples"] == verdict
    assert "generated" not in clf.training_data()[2]


@pytest.mark.parametrize("how", ["prompt only", "check off"])
def test_no_check_is_said_plainly(tmp_path, monkeypatch, how):
    path = generated_file(tmp_path / "g.jsonl", flip=1.0)
    if how == "prompt only":
        clf = model(path).prompt_train(DESCS, generate=False)
        assert clf.summary()["generated_examples"].startswith("used, unchecked")
    else:
        monkeypatch.setattr(cc, "ENABLED", False)
        clf = model(path).prompt_train(DESCS, generate=False, unlabeled=reviews()[0])
        assert clf.summary()["generated_examples"] == "used (the check is off)"
    assert "generated" in clf.training_data()[2]
