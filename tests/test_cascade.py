"""The static fast path: threshold choice, the cascade, and (integration) the real distilled model."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptclf import ModelFileError, PromptClassifier
from promptclf.cascade import (
    BLEND_WEIGHTS,
    MAX_LOSS,
    MIN_REAL_TEXTS,
    VOTE_MAX_LOSS,
    FastPath,
    cascade_proba,
    choose_blend,
    choose_threshold,
    fit_fast_path,
    static_C,
)
from promptclf.head import LinearHead
from tests.conftest import FakeEmbedder, read_csv, run_without_torch


def test_choose_threshold_keeps_disagreement_within_the_bound():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 2000)
    agree = rng.uniform(0, 1, 2000) < conf  # surer rows agree more often, as with a real head
    threshold, share, dis = choose_threshold(conf, agree, max_loss=0.01)
    answered = conf >= threshold
    assert (~agree[answered]).sum() / len(conf) <= 0.01
    assert share == pytest.approx(answered.mean()) and dis == pytest.approx((~agree[answered]).sum() / 2000)
    assert 0.0 < share < 0.5  # it answers some, not all: disagreement grows as confidence falls
    # one more row (the most confident one not answered) would break the bound
    nxt = conf[~answered].max()
    assert (~agree[conf >= nxt]).sum() / len(conf) > 0.01


def test_choose_threshold_ties_and_edges():
    # ten tied rows, two disagreeing: answering the block costs 2/10 > 1%, so none is answered
    threshold, share, _ = choose_threshold(np.full(10, 0.9), np.array([True] * 8 + [False] * 2), max_loss=0.01)
    assert share == 0.0 and threshold > 0.9
    # all agree: everything is answered
    threshold, share, dis = choose_threshold(np.linspace(0.6, 1, 50), np.ones(50, bool))
    assert share == 1.0 and dis == 0.0 and threshold == pytest.approx(0.6)
    assert choose_threshold(np.zeros(0), np.zeros(0, bool))[1] == 0.0
    # float32 confidences (the head's own) tied across the bound: the block is left out whole (this
    # once looped forever, stepping a float64 threshold that compared as the same float32 value)
    conf = np.array([0.99, 0.95, 0.95, 0.95, 0.9], dtype=np.float32)
    threshold, share, dis = choose_threshold(conf, np.array([True, True, False, False, True]), max_loss=0.2)
    assert share == 0.2 and dis == 0.0 and (conf >= threshold).sum() == 1


def _toy(n: int = 120):
    rng = np.random.default_rng(1)
    words = {"pos": ["great", "superb", "lovely", "moving"], "neg": ["awful", "dull", "boring", "clumsy"]}
    texts, y = [], []
    for i in range(n):
        c = "pos" if i % 2 else "neg"
        texts.append(" ".join(rng.choice(words[c], 3)) + f" film {i}")
        y.append(c)
    return texts, np.array(y)


def _sure(y: np.ndarray) -> np.ndarray:
    """A main model certain of the answers ``y``: its probabilities, columns in sorted class order."""
    return np.eye(2)[np.searchsorted(["neg", "pos"], y)]


def _toy_classifier(n: int, **settings) -> PromptClassifier:
    """A classifier on the fake embedder holding ``_toy(n)`` as the user's examples."""
    clf = PromptClassifier(embedder=FakeEmbedder(), progress=False, **settings)
    texts, y = _toy(n)
    for t, c in zip(texts, y):
        clf.add_data_to_class(str(c), t)
    return clf


def test_fit_fast_path_and_cascade_route_only_unsure_texts_to_the_main_model():
    texts, y = _toy()
    emb = FakeEmbedder()
    fast = fit_fast_path(emb, texts, y, None, _sure(y), real=np.ones(len(y), bool), C=1.0, cache=None)
    assert fast.embedder == emb.to_spec() and list(fast.head.classes_) == ["neg", "pos"]
    assert fast.estimate["disagreement"] <= MAX_LOSS and fast.estimate["share"] > 0.5
    seen: list[str] = []

    def main(ts: list[str]) -> np.ndarray:
        seen.extend(ts)
        return np.tile([0.3, 0.7], (len(ts), 1))

    queries = ["great superb lovely film", "film", "awful dull boring film"]
    P, sure = cascade_proba(fast, emb, queries, main)
    assert seen == [q for q, s in zip(queries, sure) if not s]  # only the unsure ones, in order
    assert "film" in seen  # no sentiment word: unsure
    assert np.allclose(P[~sure], [0.3, 0.7]) and np.allclose(P.sum(1), 1)
    assert P[0].argmax() == 1 and P[2].argmax() == 0


def test_choose_blend_gives_the_static_head_a_vote_only_where_it_helps_out_of_fold():
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 3, n)
    onehot = np.eye(3)[y]
    sure_right = 0.9 * onehot + 0.1 / 3  # confident and right
    uniform = np.full((n, 3), 1 / 3)
    wrong = 0.9 * np.eye(3)[(y + 1) % 3] + 0.1 / 3  # confident and wrong
    rows = np.ones(n, bool)
    # a static head that says nothing, or is confidently wrong, gets no vote
    assert choose_blend(sure_right, uniform, y, rows)[0] == 0.0
    assert choose_blend(0.6 * onehot + 0.4 / 3, wrong, y, rows)[0] == 0.0
    # a main head unsure where the static head is right: the static head votes, the measure says why
    w, measured = choose_blend(uniform, sure_right, y, rows)
    assert w == BLEND_WEIGHTS[-1] and measured["blend_rows"] == n
    assert measured["logloss_blend"] < measured["logloss_main"]
    # each right on half the rows: a mix beats either alone
    half = np.arange(n) % 2 == 0
    main = np.where(half[:, None], sure_right, wrong)
    static = np.where(half[:, None], wrong, sure_right)
    assert choose_blend(main, static, y, rows)[0] == 0.5
    # only the rows asked about count, and too few of them choose nothing
    assert choose_blend(uniform, sure_right, y, np.arange(n) < MIN_REAL_TEXTS - 1) == (0.0, {})


def test_the_rest_gets_the_blend_of_both_heads_and_the_sure_texts_the_static_head_alone():
    texts, y = _toy()
    emb = FakeEmbedder()
    fast = fit_fast_path(emb, texts, y, None, _sure(y), real=np.ones(len(y), bool), C=1.0, cache=None)
    assert fast.blend == 0.0  # no labelled rows given: no vote
    queries = ["great superb lovely film", "film", "awful dull boring film", "dull moving film"]
    static = fast.proba(emb, queries)
    main = lambda ts: np.tile([0.1, 0.9], (len(ts), 1))  # noqa: E731
    fast.blend = 0.25
    P, sure = cascade_proba(fast, emb, queries, main)
    assert sure.any() and not sure.all()
    assert np.allclose(P[sure], static[sure])
    assert np.allclose(P[~sure], 0.75 * np.array([0.1, 0.9]) + 0.25 * static[~sure])
    assert np.allclose(P.sum(1), 1)


def test_your_labels_choose_the_static_heads_vote_and_pseudo_labels_never_do(monkeypatch):
    """With a weak main embedder (4 hashed dimensions) and a strong static one, a person's labels give
    the static head a vote on the rest. Pseudo-labels alone (unlabeled mode) never do: they are the
    main model's own answers."""
    emb = FakeEmbedder(dim=4)
    _as_packaged(monkeypatch, emb)
    clf = PromptClassifier(embedder=emb, finetune=False, progress=False, fast=True)
    texts, y = _toy(400)
    for t, c in zip(texts, y):
        clf.add_data_to_class(str(c), t)
    clf.train()
    est = clf.fast_.estimate
    assert clf.fast_.blend > 0 and est["blend_rows"] >= MIN_REAL_TEXTS
    assert est["logloss_blend"] < est["logloss_main"]
    assert est["max_loss"] == VOTE_MAX_LOSS  # fast=True with a vote: the looser bound
    assert clf.summary()["fast_path"]["blend"] == clf.fast_.blend
    test, truth = _toy(600)
    test, truth = test[400:], truth[400:]
    blended = (np.asarray(clf.predict(test)) == truth).mean()
    chosen, clf.fast_.blend = clf.fast_.blend, 0.0
    alone = (np.asarray(clf.predict(test)) == truth).mean()
    clf.fast_.blend = chosen
    assert blended >= alone
    # calibrate sets thresholds on what predict serves (the vote included), not on the main head alone
    clf.calibrate(test[:100], list(truth[:100]))
    assert np.allclose(clf._oof_proba_, clf.predict_proba(test[:100]))
    assert not np.allclose(clf._oof_proba_, clf.head_.predict_proba(clf._embed(test[:100])))
    # unlabeled mode: the same texts as a pool, the prompt's examples the only labels
    from tests.test_generation import PROMPTS, topic_llm

    emb = FakeEmbedder()
    _as_packaged(monkeypatch, emb)
    pooled = PromptClassifier(llm=topic_llm(), embedder=emb, examples_per_class=60, fast=True, finetune=False,
                              progress=False)  # fmt: skip
    pooled.prompt_train(PROMPTS)
    pooled.train(unlabeled=_sarcastic_pool(300)[0])
    assert pooled.fast_.estimate["real_texts"] >= MIN_REAL_TEXTS
    assert pooled.fast_.blend == 0.0 and "blend_rows" not in pooled.fast_.estimate
    assert pooled.fast_.estimate["max_loss"] == MAX_LOSS  # no vote: fast=True's own bound


def test_with_a_vote_the_threshold_is_bounded_against_the_served_mix(monkeypatch):
    """A main head that leans the wrong way, unsure, on a quarter of the rows disagrees there with a
    static head that is sure and right: bounded against the main head, the static head answers little.
    Where it votes, the model would otherwise serve the mix, which follows the sure static head: bounded
    against the mix, it answers more, and still changes at most the bound's share of the mix's answers."""
    import promptclf.cascade as cascade

    monkeypatch.setattr(cascade, "OWN_C", False)  # the C every fit here uses: 1.0
    texts, y = _toy(400)
    emb = FakeEmbedder()
    main = _sure(y)
    lean = np.arange(len(y)) % 4 == 0
    main[lean] = 0.45 * main[lean] + 0.55 * (1 - main[lean])  # 0.55 on the wrong class
    fit = lambda: fit_fast_path(  # noqa: E731
        emb, texts, y, None, main, real=np.ones(len(y), bool), C=1.0, cache=None, main_oof=main,
        labelled=np.ones(len(y), bool),
    )  # fmt: skip
    monkeypatch.setattr(cascade, "BOUND_ON_SERVED", False)
    before = fit()
    monkeypatch.setattr(cascade, "BOUND_ON_SERVED", True)
    now = fit()
    assert now.blend == before.blend > 0
    assert now.estimate["share_vs_main"] == before.estimate["share"] < 0.5 < now.estimate["share"]
    assert now.threshold < before.threshold
    # what the bound promises, checked against the mix on the same rows (the static head out of fold)
    X = cascade.features(emb, texts, now.words, None)
    S = cascade.out_of_fold_proba(X, y, 1.0, None, random_state=0)
    mix = (1 - now.blend) * main + now.blend * S
    answered = S.max(1) >= now.threshold
    assert (answered & (S.argmax(1) != mix.argmax(1))).mean() <= MAX_LOSS
    assert now.estimate["disagreement"] <= MAX_LOSS
    # the default's tighter bound chooses the same weight (on the rows it leaves) and answers no more
    tight = fit_fast_path(
        emb, texts, y, None, main, real=np.ones(len(y), bool), C=1.0, cache=None, main_oof=main,
        labelled=np.ones(len(y), bool), max_loss=cascade.AUTO_MAX_LOSS,
    )  # fmt: skip
    assert tight.blend == now.blend and tight.threshold >= now.threshold
    # no vote (no labelled rows): the main head's answers are what is served, nothing changes
    plain = fit_fast_path(emb, texts, y, None, main, real=np.ones(len(y), bool), C=1.0, cache=None)
    assert plain.blend == 0 and "share_vs_main" not in plain.estimate
    assert plain.threshold == before.threshold


def test_fast_true_loosens_its_bound_only_where_the_static_head_votes(monkeypatch):
    """A main head sure of the wrong class on 2.5% of the rows, where the static head is sure and right,
    and out of fold leaning the wrong way on 1 row in 15 (so the static head gets a small vote, 0.25): the
    mix follows the main head on those 2.5%, disagreements at any threshold that answers them. The 2%
    bound leaves some of them to the transformer; the 3% one (``vote_max_loss``, fast=True with a vote)
    answers them, with the same weight. Without a vote the looser bound is not taken."""
    import promptclf.cascade as cascade

    monkeypatch.setattr(cascade, "OWN_C", False)
    texts, y = _toy(400)
    emb = FakeEmbedder()
    main = _sure(y) * 0.9 + 0.05
    wrong = np.arange(len(y)) % 40 == 7  # 10 rows of 400
    main[wrong] = 1 - _sure(y)[wrong]
    oof = _sure(y) * 0.998 + 0.001
    lean = np.arange(len(y)) % 15 == 3
    oof[lean] = 0.45 * _sure(y)[lean] + 0.55 * (1 - _sure(y)[lean])
    fit = lambda **kw: fit_fast_path(  # noqa: E731
        emb, texts, y, None, main, real=np.ones(len(y), bool), C=1.0, cache=None, **kw
    )
    voted = {"main_oof": oof, "labelled": np.ones(len(y), bool)}
    now, loose = fit(**voted), fit(**voted, vote_max_loss=VOTE_MAX_LOSS)
    assert loose.blend == now.blend > 0
    assert now.estimate["max_loss"] == MAX_LOSS and loose.estimate["max_loss"] == VOTE_MAX_LOSS
    assert now.estimate["share"] < loose.estimate["share"] and loose.threshold < now.threshold
    assert now.estimate["disagreement"] <= MAX_LOSS < loose.estimate["disagreement"] <= VOTE_MAX_LOSS
    assert loose.estimate["share_vs_main"] == now.estimate["share_vs_main"]
    plain, unvoted = fit(), fit(vote_max_loss=VOTE_MAX_LOSS)
    assert plain.blend == unvoted.blend == 0
    assert unvoted.threshold == plain.threshold and unvoted.estimate["max_loss"] == MAX_LOSS


def test_the_static_head_chooses_its_own_C_on_the_labelled_rows(monkeypatch):
    """The main head's C suits the transformer's vectors, not the static head's columns: from it, a step
    at a time along the grid while the static head's out-of-fold log-loss on the labelled rows falls.
    Separable rows take it up from a small C, noisy labels down from a large one; too few labelled rows,
    or the switch off, keep the main head's C and its out-of-fold probabilities."""
    import promptclf.cascade as cascade
    from promptclf.head import C_GRID

    rng = np.random.default_rng(0)
    y = np.array(["neg", "pos"] * 150)
    X = rng.normal(size=(300, 8)) + 2.0 * (y == "pos")[:, None]  # separable enough
    idx = np.searchsorted(["neg", "pos"], y)
    everyone = np.ones(300, bool)

    def loss(P):
        return -np.log(P[np.arange(300), idx]).mean()

    C, oof, measured = static_C(X, y, None, 0.3, everyone)
    assert C > 0.3 and C in C_GRID and measured["C"] == C
    assert np.allclose(oof, cascade.out_of_fold_proba(X, y, C, None))
    assert loss(oof) < loss(cascade.out_of_fold_proba(X, y, 0.3, None))
    assert measured["logloss_static"] < measured["logloss_static_at_main_C"]
    # it stopped where the next step up no longer helped
    up = [c for c in C_GRID if c > C]
    assert not up or loss(cascade.out_of_fold_proba(X, y, up[0], None)) >= loss(oof)
    # noisy labels and many columns: a large C overfits, the walk goes down
    noisy = rng.normal(size=(300, 60))
    noisy[:, 0] += 0.6 * (y == "pos")
    C_down, _, _ = static_C(noisy, y, None, 100.0, everyone)
    assert C_down < 100.0
    # too few labelled rows: the main head's C, nothing measured
    few = np.arange(300) < MIN_REAL_TEXTS - 1
    C_few, oof_few, measured_few = static_C(X, y, None, 0.3, few)
    assert C_few == 0.3 and measured_few == {} and np.allclose(oof_few, cascade.out_of_fold_proba(X, y, 0.3, None))
    monkeypatch.setattr(cascade, "OWN_C", False)
    assert static_C(X, y, None, 0.3, everyone)[0] == 0.3
    # fit_fast_path fits the head at that C and says so in the estimate
    monkeypatch.setattr(cascade, "OWN_C", True)
    texts, labels = _toy(200)
    fast = fit_fast_path(FakeEmbedder(), texts, labels, None, _sure(labels), real=np.ones(200, bool), C=0.3,
                         cache=None, labelled=np.ones(200, bool))  # fmt: skip
    assert fast.estimate["C"] == fast.head.C_ != 0.3


def test_a_static_model_of_another_dimension_is_refused_not_misread():
    """A fast path fit on static vectors of another size (another static model, or an edited file) raises
    a ConfigurationError naming the setting, with or without word columns, instead of numpy's error or
    columns that do not line up."""
    from promptclf import ConfigurationError
    from promptclf.words import WordColumns

    texts, y = _toy()
    emb = FakeEmbedder()
    fast = fit_fast_path(emb, texts, y, None, _sure(y), real=np.ones(len(y), bool), C=1.0, cache=None)
    for words in (None, WordColumns.fit(texts)):
        n = 0 if words is None else words.n_terms
        head = LinearHead(fast.head.classes_, np.zeros((1, emb.dim + 3 + n), np.float32), np.zeros(1, np.float32), 1.0)
        wrong = FastPath(fast.embedder, head, 0.9, {}, words)
        with pytest.raises(ConfigurationError, match=f"fit on {emb.dim + 3}-dimensional") as e:
            cascade_proba(wrong, emb, ["great film"], lambda ts: np.tile([0.5, 0.5], (len(ts), 1)))
        assert e.value.setting == "fast"


def _sarcastic_pool(n: int = 150) -> tuple[list[str], np.ndarray]:
    """Real texts where the static head goes wrong with confidence: glowing words the main model reads
    as criticism in half of them (it sees what bag-of-words vectors cannot)."""
    texts = [f"great superb lovely moving film, {'they said' if i % 2 else 'i loved it'} {i}" for i in range(n)]
    return texts, np.array(["neg" if i % 2 else "pos" for i in range(n)])


def test_the_threshold_is_set_on_real_texts_not_on_generated_ones():
    """Generated rows on which both heads agree would let the static head answer everything; the
    real texts of the pool, where it disagrees with the main model, hold it to the bound there."""
    texts, y = _toy(200)  # stand-ins for generated examples: the two heads agree on every one
    emb = FakeEmbedder()
    pool, pool_pred = _sarcastic_pool()
    generated = np.zeros(len(y), bool)

    def disagreement_on_pool(fast: FastPath) -> float:
        P = fast.proba(emb, pool)
        answered = P.max(1) >= fast.threshold
        return float((answered & (fast.head.classes_[P.argmax(1)] != pool_pred)).sum() / len(pool))

    as_before = fit_fast_path(emb, texts, y, None, _sure(y), real=np.ones(len(y), bool), C=1.0, cache=None)
    assert as_before.estimate["share"] > 0.9 and disagreement_on_pool(as_before) > 0.3  # what it promised, broken

    fast = fit_fast_path(
        emb, texts, y, None, _sure(y), real=generated, pool=pool, pool_proba=_sure(pool_pred), C=1.0, cache=None
    )
    assert fast.estimate["real_texts"] == len(pool) and fast.estimate["rows"] == len(texts)
    assert disagreement_on_pool(fast) <= MAX_LOSS
    assert fast.estimate["disagreement"] == pytest.approx(disagreement_on_pool(fast))
    # real training rows (a person's examples) count as well, out of fold
    some_real = np.arange(len(y)) < 60
    mixed = fit_fast_path(
        emb, texts, y, None, _sure(y), real=some_real, pool=pool, pool_proba=_sure(pool_pred), C=1.0, cache=None
    )
    assert mixed.estimate["real_texts"] == 60 + len(pool)

    # no real texts at all (a model from the prompt alone): it answers nothing
    none = fit_fast_path(emb, texts, y, None, _sure(y), real=generated, C=1.0, cache=None)
    assert none.threshold > 1 and none.estimate["share"] == 0.0 and none.estimate["real_texts"] == 0
    _, sure = cascade_proba(none, emb, texts[:5], lambda ts: np.tile([0.5, 0.5], (len(ts), 1)))
    assert not sure.any()
    few = fit_fast_path(emb, texts, y, None, _sure(y), real=generated, pool=pool[:99], pool_proba=_sure(pool_pred[:99]),
                        C=1.0, cache=None)  # fmt: skip
    assert few.threshold > 1 and few.estimate["real_texts"] == 99


def test_the_static_head_learns_the_main_models_answers_on_the_pool(monkeypatch):
    """The pool is real text of the kind the static head will be asked about: fit on it with the main
    model's answers, it learns what the main model reads there ("they said" turns praise into
    criticism, which the generated rows never show) and answers such texts within the bound, where
    fit on the training rows alone it must leave them to the transformer."""
    import promptclf.cascade as cascade

    texts, y = _toy(200)
    emb = FakeEmbedder()
    pool, pool_pred = _sarcastic_pool(300)
    later, later_pred = (part[1000:] for part in _sarcastic_pool(1400))  # texts of the kind, after training

    def fit() -> FastPath:
        generated = np.zeros(len(y), bool)
        return fit_fast_path(
            emb, texts, y, None, _sure(y), real=generated, pool=pool, pool_proba=_sure(pool_pred), C=1.0, cache=None
        )

    def served(fast: FastPath) -> tuple[float, float]:
        """Share of the later texts the static head answers, and share where it answers otherwise than the model."""
        P = fast.proba(emb, later)
        answered = P.max(1) >= fast.threshold
        return float(answered.mean()), float((answered & (fast.head.classes_[P.argmax(1)] != later_pred)).mean())

    learnt = fit()
    assert learnt.estimate["rows"] == len(texts) and learnt.estimate["real_texts"] == len(pool)
    share, wrong = served(learnt)
    assert share > 0.9 and wrong <= MAX_LOSS
    monkeypatch.setattr(cascade, "POOL_ANSWERS", False)  # as before: the pool only bounds it
    share_before, _ = served(fit())
    assert share_before < 0.6


def _as_packaged(monkeypatch, emb: FakeEmbedder) -> None:
    """The fake embedder standing in for the packaged MiniLM, and for its static distillation."""
    import promptclf.classifier as K

    real = K.get_embedder
    static = lambda spec: FakeEmbedder() if isinstance(spec, dict) and spec.get("kind") == "model2vec" else real(spec)  # noqa: E731
    monkeypatch.setattr(emb, "space", lambda: {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"})
    monkeypatch.setattr(K, "get_embedder", static)


def test_a_fast_path_from_the_prompt_alone_answers_nothing_until_real_texts_come(monkeypatch, caplog):
    from tests.test_generation import PROMPTS, topic_llm

    emb = FakeEmbedder()
    _as_packaged(monkeypatch, emb)
    clf = PromptClassifier(
        llm=topic_llm(), embedder=emb, examples_per_class=60, fast=True, finetune=False, progress=False
    )
    with caplog.at_level("WARNING", logger="promptclf"):
        clf.prompt_train(PROMPTS)
    assert clf.fast_.threshold > 1 and clf.fast_.estimate["real_texts"] == 0
    assert "0 real texts" in caplog.text and "100 needed" in caplog.text
    assert clf.summary()["fast_path"]["share"] == 0.0
    # the same model trained on unlabeled texts: its threshold is set on them
    pool, _ = _sarcastic_pool()
    caplog.clear()
    with caplog.at_level("WARNING", logger="promptclf"):
        clf.train(unlabeled=pool)
    assert "real texts" not in caplog.text
    assert clf.fast_.estimate["real_texts"] == len(pool) and clf.fast_.threshold <= 1


def test_the_default_adds_the_fast_path_only_where_real_texts_bound_it(monkeypatch, caplog):
    """fast="auto": a model from the prompt alone gets none (no warning, no static model made); trained
    on unlabeled texts it gets one, held to the default's tighter bound; elsewhere it is left out."""
    from promptclf import ConfigurationError
    from promptclf.cascade import AUTO_MAX_LOSS
    from tests.test_generation import PROMPTS, topic_llm

    emb = FakeEmbedder()
    _as_packaged(monkeypatch, emb)
    asked: list[dict] = []
    import promptclf.classifier as K

    patched = K.get_embedder
    monkeypatch.setattr(K, "get_embedder", lambda spec: (asked.append(spec), patched(spec))[1])
    clf = PromptClassifier(llm=topic_llm(), embedder=emb, examples_per_class=60, finetune=False, progress=False)
    assert clf.fast == "auto"
    with caplog.at_level("WARNING", logger="promptclf"):
        clf.prompt_train(PROMPTS)
    assert clf.fast_ is None and clf.summary()["fast_path"] is None and caplog.text == ""
    assert not [a for a in asked if isinstance(a, dict) and a.get("kind") == "model2vec"]
    pool, pool_pred = _sarcastic_pool()
    clf.train(unlabeled=pool)
    assert clf.fast_ is not None and clf.fast_.estimate["max_loss"] == AUTO_MAX_LOSS
    assert clf.fast_.estimate["real_texts"] == len(pool)
    # fewer real texts than the bound needs: left out again, silently
    clf.train(unlabeled=pool[:40])
    assert clf.fast_ is None and "fast" not in caplog.text
    # an embedder it cannot run with, and multi-label: left out, where fast=True would fail
    other = _toy_classifier(120).train()
    assert other.fast == "auto" and other.fast_ is None
    # a sentence-transformers model of your own (not the packaged MiniLM the static model comes from)
    own = _toy_classifier(120)
    monkeypatch.setattr(own._embedder, "space", lambda: {"kind": "sentence-transformers", "model": "/my/model"})
    assert own.train().fast_ is None
    with pytest.raises(ConfigurationError, match="fast=True distils static embeddings"):
        own.set_params(fast=True).train()
    multi = PromptClassifier(embedder=emb, multi_label=True, finetune=False, progress=False)
    for t, c in zip(pool, pool_pred):
        multi.add_data_to_class(str(c), t)
    assert multi.train().fast_ is None


def test_pseudo_labels_bound_the_fast_path_only_beside_their_pool(monkeypatch, caplog):
    """Pseudo-labels are the pool's most confident half: the two heads agree on them far more often than
    on the rest. A train() without the pool (after a correction, say) leaves them out of the bound:
    "auto" then has nothing to bound the static head on and leaves it out; fast=True answers nothing."""
    from promptclf.cascade import MIN_REAL_TEXTS
    from tests.test_generation import PROMPTS, topic_llm

    emb = FakeEmbedder()
    _as_packaged(monkeypatch, emb)
    clf = PromptClassifier(llm=topic_llm(), embedder=emb, examples_per_class=60, finetune=False, progress=False)
    clf.prompt_train(PROMPTS)
    pool, _ = _sarcastic_pool(400)
    clf.train(unlabeled=pool)
    assert len(clf._store.examples(("pseudo",))) >= MIN_REAL_TEXTS  # enough to bound it on, were they a guide
    assert clf.fast_ is not None and clf.fast_.estimate["real_texts"] == len(pool)
    with caplog.at_level("WARNING", logger="promptclf"):
        clf.train()  # the same pseudo-labels, without their pool
    assert clf.fast_ is None and clf.summary()["fast_path"] is None
    assert "fast path is left out: 0 real texts" in caplog.text and "train(unlabeled=...)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="promptclf"):
        clf.train()  # it had none to lose: nothing said
        assert caplog.text == ""
        clf.set_params(fast=True).train()
    assert clf.fast_.estimate["real_texts"] == 0 and clf.fast_.threshold > 1 and "0 real texts" in caplog.text
    clf.train(unlabeled=pool)  # with it again: bounded on the whole pool
    assert clf.fast_.estimate["real_texts"] == len(pool) and clf.fast_.threshold <= 1


def test_fast_path_needs_the_packaged_transformer_and_is_single_label_only():
    from promptclf import ConfigurationError

    clf = _toy_classifier(40, fast=True)
    with pytest.raises(ConfigurationError, match="fast=True distils static embeddings") as e:
        clf.train()
    assert e.value.setting == "fast"
    with pytest.raises(ConfigurationError, match="fast is not available with multi_label") as e:
        PromptClassifier(embedder=FakeEmbedder(), fast=True, multi_label=True).train()
    with pytest.raises(ConfigurationError, match="fast must be"):
        PromptClassifier(embedder=FakeEmbedder(), fast="yes").train()


def test_model_file_keeps_the_fast_path_and_checks_it(tmp_path, monkeypatch):
    """Round trip of the fast path's members, and a file whose fast path is inconsistent is refused."""
    import json
    import zipfile

    from promptclf import modelfile

    clf = _toy_classifier(120).train()
    head = LinearHead(clf.classes_, np.ones((1, 8), np.float32), np.zeros(1, np.float32), 1.0)
    clf.fast = True  # set after training: save keeps the fast path only when the setting is on
    clf.fast_ = FastPath({"kind": "model2vec", "model": "all-MiniLM-L6-v2"}, head, 0.93, {"share": 0.5}, blend=0.25)
    path = tmp_path / "m.clf"
    clf.save(path)
    state = modelfile.read(path)
    assert state.fast is not None and state.fast.threshold == 0.93 and state.fast.head.coef_.shape == (1, 8)
    assert state.fast.embedder == {"kind": "model2vec", "model": "all-MiniLM-L6-v2"} and state.fast.blend == 0.25

    def rewrite(edit) -> ModelFileError:
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        edit(members)
        bad = tmp_path / "bad.clf"
        with zipfile.ZipFile(bad, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, b)
        with pytest.raises(ModelFileError) as e:
            modelfile.read(bad)
        return e.value

    def drop_coef(m):
        manifest = json.loads(m["manifest.json"])
        del manifest["members"]["fast/coef.npy"]
        m["manifest.json"] = json.dumps(manifest).encode()
        del m["fast/coef.npy"]

    assert "fast path needs" in str(rewrite(drop_coef))

    def other_kind(m):
        manifest = json.loads(m["manifest.json"])
        manifest["fast"]["embedder"]["kind"] = "sentence-transformers"
        m["manifest.json"] = json.dumps(manifest).encode()

    assert "must be static" in str(rewrite(other_kind))

    def blend(value):
        def edit(m):
            manifest = json.loads(m["manifest.json"])
            if value is None:
                del manifest["fast"]["blend"]
            else:
                manifest["fast"]["blend"] = value
            m["manifest.json"] = json.dumps(manifest).encode()

        return edit

    assert "blend" in str(rewrite(blend(1.5))) and "blend" in str(rewrite(blend("half")))
    # a file from before the blend: the transformer alone on the rest, as then
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    blend(None)(members)
    old = tmp_path / "old.clf"
    with zipfile.ZipFile(old, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    assert modelfile.read(old).fast.blend == 0.0


@pytest.mark.integration
def test_fast_path_with_the_distilled_model_end_to_end(tmp_path, monkeypatch, capsys):
    """Real MiniLM, real static distillation (ONNX Runtime + model2vec), saved and served."""
    pytest.importorskip("model2vec")
    from promptclf.embedders import get_embedder

    rows = read_csv("ag_news", "train")[:400]
    clf = PromptClassifier(fast=True, finetune=False, progress=False)
    for r in rows:
        clf.add_data_to_class(r["label"], r["text"])
    clf.train()
    fast = clf.fast_
    assert fast is not None and fast.embedder["kind"] == "model2vec"
    assert fast.words is not None and fast.words.n_terms > 0  # the word columns beside the static vectors
    assert fast.head.n_features_in_ == 256 + fast.words.n_terms and 0 < fast.estimate["share"] <= 1
    static = get_embedder(fast.embedder)
    vecs = static.embed(["The striker scored twice.", "Shares fell after the forecast."])
    assert vecs.shape == (2, 256) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    test = [r["text"] for r in read_csv("ag_news", "test")[:200]]
    truth = [r["label"] for r in read_csv("ag_news", "test")[:200]]
    P, sure = cascade_proba(fast, static, test, lambda ts: clf.head_.predict_proba(clf._embed(ts)))
    assert 0 < sure.mean() < 1  # some answered by the static head, some by MiniLM
    pred = clf.predict(test)
    assert pred == [str(clf.classes_[j]) for j in P.argmax(1)]
    full = [str(clf.classes_[j]) for j in clf.head_.predict_proba(clf._embed(test)).argmax(1)]
    acc = lambda p: np.mean([a == b for a, b in zip(p, truth)])  # noqa: E731
    assert acc(pred) >= acc(full) - 0.05  # 200 texts: loose, the benchmark measures the real loss
    path = tmp_path / "fast.clf"
    clf.save(path)
    served = PromptClassifier.load(path)
    assert served.summary()["fast_path"]["threshold"] == round(fast.threshold, 4)
    assert served.summary()["fast_path"]["word_columns"] == fast.words.n_terms
    assert served.predict(test) == PromptClassifier.load(path).predict(test)
    agree = np.mean([a == b for a, b in zip(served.predict(test), pred)])
    assert agree > 0.95  # int8 MiniLM for the unsure rows, not fp32: nearly the same answers
    # served in a fresh process where neither PyTorch nor scikit-learn can be imported: the same answers
    code = (
        "sys.modules['sklearn'] = None\nimport json\nfrom promptclf import PromptClassifier\n"
        f"m = PromptClassifier.load({str(path)!r})\nprint(json.dumps(m.predict(json.loads(sys.stdin.read()))))\n"
    )
    assert json.loads(run_without_torch(code, stdin=json.dumps(test))[-1]) == served.predict(test)
    # turned off on the loaded model: every text through MiniLM, as a model without a fast path
    off = PromptClassifier.load(path).set_params(fast=False)
    assert off.predict(test) == PromptClassifier.load(path, embedder="onnx-int8:all-MiniLM-L6-v2").set_params(
        fast=False
    ).predict(test)
    from tests.test_cli import run

    lines = "\n".join(t.replace("\n", " ") for t in test[:50]) + "\n"
    code, out, _ = run(monkeypatch, capsys, "predict", path, "-", "--no-fast", stdin=lines)
    assert code == 0 and [json.loads(x)["label"] for x in out.splitlines()] == off.predict(test[:50])
    code, out, _ = run(monkeypatch, capsys, "predict", path, "-", stdin=lines)
    assert code == 0 and [json.loads(x)["label"] for x in out.splitlines()] == served.predict(test[:50])


@pytest.mark.integration
def test_the_distilled_static_model_serves_model2vecs_vectors_without_model2vec():
    """The fast path's model is read and pooled straight from the folder distil wrote (importing
    model2vec and building its StaticModel was 0.43 s of a 0.71 s cold start): model2vec's vectors
    (to float32 rounding), over several batches, with unknown tokens and empty texts."""
    pytest.importorskip("model2vec")
    code = """
import sys
import numpy as np
from promptclf.embedders.static import StaticEmbedder, static_dir
import json
texts = json.load(sys.stdin) + ["", "\U0001f600", "Shares fell after the forecast, Z\u00fcrich's traders said. " * 40]
ours = StaticEmbedder(batch_size=1000).embed(texts)
assert not {"model2vec", "huggingface_hub"} & set(sys.modules), "model2vec was imported"
from model2vec import StaticModel
theirs = StaticModel.from_pretrained(str(static_dir("all-MiniLM-L6-v2")))
theirs = theirs.encode(texts, batch_size=1000, max_length=None, use_multiprocessing=False)
assert np.abs(ours - theirs).max() < 1e-6  # float32 rounding: numpy may sum a group in another order
print("same", len(texts))
"""
    texts = json.dumps([r["text"] for r in read_csv("sst2", "train")[:2500]])
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], input=texts, capture_output=True, text=True, timeout=600, cwd=root
    )
    assert out.returncode == 0 and out.stdout.split() == ["same", "2503"], out.stderr[-2000:]


def test_distil_writes_model2vecs_layout_without_model2vec(tmp_path, monkeypatch):
    """The fast path needs no model2vec, to train or to serve: distil writes the folder itself, in the
    layout model2vec's StaticModel reads (the files it writes itself, byte for byte: tokenizer, config,
    modules), and the vectors model2vec computes from it are ``Distilled``'s."""
    pytest.importorskip("model2vec")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from promptclf.embedders import static
    from promptclf.embedders.local import resolve_model_path

    tok_file = Path(resolve_model_path("all-MiniLM-L6-v2")) / "tokenizer.json"
    vocab = Tokenizer.from_file(str(tok_file)).get_vocab_size()
    rng = np.random.default_rng(0)

    def token_vectors(model, fp32, batch_size=512):  # the transformer's part, made up: this tests the rest
        tok = Tokenizer.from_file(str(tok_file))
        tok.no_truncation()
        tok.no_padding()
        return rng.normal(size=(vocab, 384)).astype(np.float32), tok

    monkeypatch.setattr(static, "token_vectors", token_vectors)
    # model2vec made unimportable while distil runs
    monkeypatch.setitem(sys.modules, "model2vec", None)
    ours = tmp_path / "ours"
    static.distill("all-MiniLM-L6-v2", tmp_path / "unused.onnx", ours)
    monkeypatch.delitem(sys.modules, "model2vec")
    from model2vec import StaticModel

    tok = token_vectors("all-MiniLM-L6-v2", None)[1]
    reduced = load_file(ours / "model.safetensors")["embeddings"]
    assert reduced.shape == (vocab, static.PCA_DIMS) and reduced.dtype == np.float32
    theirs = tmp_path / "theirs"
    config = json.loads((ours / "config.json").read_text())
    config = {k: config[k] for k in ("apply_pca", "sif_coefficient", "normalize", "distilled_from")}
    StaticModel(vectors=reduced, tokenizer=tok, config=config, normalize=True).save_pretrained(theirs)
    for name in ("tokenizer.json", "config.json", "modules.json"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    texts = ["Shares fell after the forecast.", "", "a fine film", "Zürich \U0001f600 unknown tokens"]
    m2v = StaticModel.from_pretrained(str(ours)).encode(texts, max_length=None, use_multiprocessing=False)
    window = Tokenizer.from_file(str(tok_file))
    window.no_truncation()
    window.no_padding()
    assert np.abs(static.Distilled(ours, window).encode(texts) - m2v).max() < 1e-6


def test_the_static_table_is_mapped_not_read_and_other_layouts_go_to_safetensors(tmp_path):
    """``distill``'s one-tensor float32 file is memory-mapped (a text touches a few of its rows);
    a file of another layout (more tensors, metadata, another dtype) is read by safetensors, and
    both ways give safetensors' values."""
    import mmap

    from safetensors.numpy import load_file, save_file

    from promptclf.embedders.static import mapped_embeddings

    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 8)).astype(np.float32)
    cases = {
        "plain": ({"embeddings": table}, None),
        "metadata": ({"embeddings": table}, {"by": "someone else"}),
        "two tensors": ({"embeddings": table, "mapping": np.arange(50, dtype=np.int64)}, None),
        "float16": ({"embeddings": table.astype(np.float16)}, None),
    }
    broken = tmp_path / "broken.safetensors"  # a header that is not JSON: safetensors' own error, not json's
    broken.write_bytes(struct.pack("<Q", 4) + b"\xff{[x" + bytes(16))
    with pytest.raises(Exception) as e:
        mapped_embeddings(broken)
    assert "safetensors" in type(e.value).__module__.lower() or "Safetensor" in type(e.value).__name__, e.value
    for name, (tensors, metadata) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, path, metadata=metadata)
        got, want = mapped_embeddings(path), load_file(path)["embeddings"]
        assert got.dtype == want.dtype and np.array_equal(got, want), name
        mapped = isinstance(got.base, np.memmap) or isinstance(getattr(got.base, "base", None), mmap.mmap)
        assert mapped == (name in {"plain", "metadata"}), name
        assert mapped != got.flags.writeable, name  # the mapping is read-only: no row can be changed in place
