"""suggest() and the review session (the terminal itself: tests/test_review_tty.py)."""

import json
import re

import numpy as np
import pytest

from promptclf import InvalidInputError, PromptClassifier
from promptclf.embedders.base import Embedder, embedders
from promptclf.review.session import Journal, ReviewSession, journal_path
from promptclf.review.suggest import choose, uncertainty
from promptclf.review.tui import parse
from tests.test_cli import run


class PointEmbedder(Embedder):
    """Known geometry: "p X Y ..." embeds as (X, Y, 1), so the class boundary and clusters are where we put them."""

    kind = "point-test"

    def embed_batch(self, texts):
        out = []
        for t in texts:
            x, y = (float(v) for v in re.findall(r"-?\d+\.?\d*", t)[:2])
            out.append([x, y, 1.0])
        return np.asarray(out, dtype=np.float32)


@pytest.fixture
def geometry():
    embedders().register(PointEmbedder)
    rng = np.random.default_rng(0)
    clf = PromptClassifier(embedder="point-test:xy", progress=False)
    for name, sign in (("left", -1), ("right", 1)):
        xs = [f"p {sign * rng.uniform(1, 2):.3f} {rng.uniform(-1, 1):.3f} {i}" for i in range(12)]
        clf.add_data_to_class(name, xs)
    clf.train()
    # two groups of near-duplicates on the boundary, far apart; and texts the model is sure of
    upper = [f"p {rng.uniform(-0.02, 0.02):.4f} {3 + rng.uniform(-0.05, 0.05):.4f} u{i}" for i in range(10)]
    lower = [f"p {rng.uniform(-0.3, 0.3):.4f} {-3 + rng.uniform(-0.05, 0.05):.4f} l{i}" for i in range(10)]
    sure = [f"p {s * 2.5:.1f} {rng.uniform(-1, 1):.3f} s{i}" for i, s in enumerate([-1, 1] * 15)]
    return clf, upper, lower, sure


def test_uncertainty_is_margin_or_distance_to_threshold():
    P = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    assert np.allclose(uncertainty(P), [1.0, 0.2, 0.4])
    Q = np.array([[0.31, 0.9], [0.0, 1.0]])  # multi-label: class 0 sits on its threshold 0.3
    assert np.allclose(uncertainty(Q, np.array([0.3, 0.5]), multi_label=True), [0.98, 0.4])


def test_choose_takes_one_per_cluster_not_the_top_near_duplicates():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal([5, 0], 0.01, (20, 2)), rng.normal([-5, 0], 0.01, (20, 2))])
    u = np.concatenate([np.full(20, 0.9) + rng.uniform(0, 0.01, 20), np.full(20, 0.8)])
    picks = choose(X, u, 2)
    assert sorted(picks // 20) == [0, 1]  # the 2 most uncertain would both be from the first group
    assert u[picks[0]] >= u[picks[1]]
    assert list(choose(X[:3], u[:3], 5)) == list(np.argsort(-u[:3]))


def test_choose_shares_suggestions_between_predicted_classes():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 4))
    u = np.concatenate([np.full(55, 0.9) - rng.uniform(0, 0.05, 55), rng.uniform(0.1, 0.2, 5)])
    strata = np.array([0] * 55 + [1] * 5)  # class 1 is rarely predicted, and surely
    assert (strata[choose(X, u, 4)] == 1).sum() == 0
    picks = choose(X, u, 4, strata=strata)
    assert (strata[picks] == 1).sum() == 2 and len(set(picks)) == 4
    assert list(u[picks]) == sorted(u[picks], reverse=True)
    few = choose(X, u, 8, strata=np.array([0] * 58 + [1] * 2))  # a class with fewer rows than its share
    assert len(few) == 8 and {58, 59} <= set(few)


def test_suggest_picks_uncertain_diverse_texts(geometry):
    clf, upper, lower, sure = geometry
    pool = sure + upper + lower
    got = clf.suggest(pool, n=2, explore=0)
    assert {s.text in upper for s in got} == {True, False}  # one from each boundary group
    assert {s.pick for s in got} == {"uncertain"}
    assert all(s.text in upper + lower for s in got)
    assert got[0].uncertainty >= got[1].uncertainty
    for s in got:
        assert s.guess in ("left", "right") and set(s.proba) == {"left", "right"}
        assert s.confidence == pytest.approx(max(s.proba.values()), abs=1e-3)
    # texts you labelled are not suggested again
    clf.add_data_to_class("left", [s.text for s in got])
    again = clf.suggest(pool, n=2, explore=0)
    assert not {s.text for s in again} & {s.text for s in got}
    assert clf.suggest(["p 0 0 x", "p 0 0 x"], n=5)[0].text == "p 0 0 x"  # duplicates once
    assert len(clf.suggest(["p 0 0 x", "p 0 0 x"], n=5)) == 1


def test_suggest_explores_with_random_picks(geometry):
    clf, upper, lower, sure = geometry
    got = clf.suggest(sure + upper + lower, n=4, explore=0.5)
    assert [s.pick for s in got] == ["uncertain", "random"] * 2  # alternating
    assert all(s.text in upper + lower for s in got if s.pick == "uncertain")  # the two boundary groups
    assert len({s.text for s in got}) == 4
    assert [s.pick for s in clf.suggest(sure, n=4, explore=1)] == ["random"] * 4
    with pytest.raises(InvalidInputError, match="explore"):
        clf.suggest(sure, explore=1.5)


def test_suggest_bad_input(geometry):
    clf = geometry[0]
    with pytest.raises(InvalidInputError, match="n"):
        clf.suggest(["p 0 0"], n=0)
    with pytest.raises(InvalidInputError):
        clf.suggest([None])
    assert clf.suggest([]) == []


def test_parse_replies():
    assert parse("", 3, False) == ("accept", [])
    assert parse(" 2 ", 3, False) == ("pick", [1])
    assert parse("1 3", 3, True) == ("pick", [0, 2])
    assert parse("1 3", 3, False) == ("bad", [])
    assert parse("4", 3, False) == ("bad", [])
    assert parse("x", 3, False) == ("bad", [])
    assert [parse(c, 3, False)[0] for c in "suqS"] == ["skip", "undo", "quit", "skip"]


def test_session_answers_undo_journal_and_finish(geometry, tmp_path):
    clf, upper, lower, sure = geometry
    path = tmp_path / "m.clf"
    clf.save(path)
    journal = journal_path(path)
    s = ReviewSession(clf, sure + upper + lower, journal=journal, batch=4, retrain_every=100)
    first = s.current()
    s.answer()  # accept the guess
    second = s.current()
    s.answer("left")
    s.skip()
    assert [a.classes for a in s.actions] == [[first.guess], ["left"], None]
    undone = s.undo()
    assert undone.classes is None and s.current().text == undone.text  # shown again
    with pytest.raises(InvalidInputError, match="expected one of"):
        s.answer("nope")
    assert s.current().text == undone.text  # a bad answer keeps the text on screen
    # the journal holds exactly what stands, and a new session over it resumes there
    assert [a.text for a in Journal(journal).replay()] == [first.text, second.text]
    s2 = ReviewSession(PromptClassifier.load(path), sure + upper + lower, journal=journal)
    assert s2.resume() == 2 and s2.seen == {first.text, second.text}
    assert s2.current().text not in {first.text, second.text}
    s2.undo()  # an answer from the journal can be undone too: its text is asked again
    assert s2.current().text == second.text
    s2.answer("right")
    model = s2.finish(path)
    assert not journal.exists()
    saved = PromptClassifier.load(path)
    reviewed = {(e.text, e.class_name) for e in saved._store if e.meta.get("via") == "review"}
    assert reviewed == {(first.text, first.guess), (second.text, "right")}
    assert model.training_summary_["n_examples"] == saved.training_summary_["n_examples"]
    assert PromptClassifier.load(path).get_data(include_generated=False)["right"].count(second.text) == 1
    assert not any(e.text == second.text for e in clf._store)  # the base model is left as it was


def test_the_review_loop_never_distils_and_keeps_the_distill_setting(geometry):
    clf, upper, lower, _ = geometry
    clf.set_params(distill=True)  # distilling this embedder would be an error: the loop must not try
    s = ReviewSession(clf, upper + lower, batch=4, retrain_every=100)
    s.answer("left")
    model = s.finish()
    assert model is not clf and model.distill is True and model.__dict__.get("_tuned") is None


def test_session_retrains_in_background_and_requeues(geometry):
    clf, upper, lower, sure = geometry
    s = ReviewSession(clf, sure + upper + lower, batch=6, retrain_every=2)
    for _ in range(2):
        s.answer("left" if s.current().text in upper else "right")
    assert s._thread is not None
    s.wait()
    assert s.retrains == 1 and s.model is not clf and s.error is None
    assert s.model.training_summary_["n_examples"] == clf.training_summary_["n_examples"] + 2
    assert len(s.queue) <= 1  # the rest is re-ranked by the new model on the next current()
    assert s.current() is not None


def test_session_shows_the_llm_answer(geometry):
    from promptclf.escalation.links import LLMLink
    from tests.test_escalation import ScriptedLabeler

    clf, upper, lower, _sure = geometry
    llm = ScriptedLabeler(lambda t: ("right" if " u" in t else "left", 0.9))
    s = ReviewSession(clf, upper + lower, llm_link=LLMLink(llm, {"left": "x < 0", "right": "x > 0"}))
    cur = s.current()
    assert s.llm_answer(cur, wait=True) == ("right" if cur.text in upper else "left")
    assert llm.seen == [cur.text]
    s.llm_answer(cur, wait=True)  # asked once per text
    assert llm.seen == [cur.text]
    failing = ReviewSession(clf, upper, llm_link=LLMLink(ScriptedLabeler(lambda t: RuntimeError("down"))))
    assert failing.llm_answer(failing.current(), wait=True) is None  # the review goes on without it


def test_session_multi_label(tmp_path, fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder, progress=False, multi_label=True)
    for c, w in (("sport", "ball"), ("money", "price"), ("food", "pizza")):
        clf.add_data_to_class(c, [f"{w} text {i} {w}{i}" for i in range(8)])
    clf.add_data_to_class("sport", "ball and price")
    clf.add_data_to_class("money", "ball and price")
    clf.train()
    s = ReviewSession(clf, [f"ball price pizza {i}" for i in range(6)], batch=3)
    assert isinstance(s.current().guess, list)
    s.answer(["sport", "food"])
    with pytest.raises(InvalidInputError, match="one or more"):
        s.answer([])
    model = s.finish()
    [text] = [a.text for a in s.answers]
    assert sorted(c for c, ts in model.get_data().items() if text in ts) == ["food", "sport"]


def test_background_retraining_failure_keeps_the_old_model(geometry, monkeypatch):
    clf, upper, lower, _sure = geometry
    s = ReviewSession(clf, upper + lower, retrain_every=1)
    monkeypatch.setattr(PromptClassifier, "train", lambda self, **kw: (_ for _ in ()).throw(RuntimeError("boom")))
    s.answer("left")
    s.wait()
    assert s.model is clf and isinstance(s.error, RuntimeError)


def test_an_unwritable_journal_is_named_before_any_answer(tmp_path):
    with pytest.raises(InvalidInputError, match="review journal"):
        Journal(tmp_path / "missing-folder" / "j.jsonl")


def test_journal_ignores_a_torn_last_line(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append({"op": "answer", "text": "a", "classes": ["x"]})
    j.append({"op": "skip", "text": "b"})
    with open(j.path, "a") as f:
        f.write('{"op": "answer", "te')  # killed mid-write
    assert [(a.text, a.classes) for a in j.replay()] == [("a", ["x"]), ("b", None)]


def test_export_then_add_from_csv_round_trip(geometry, tmp_path, monkeypatch, capsys):
    clf, upper, lower, sure = geometry
    model = tmp_path / "m.clf"
    clf.save(model)
    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(sure + upper + lower) + "\n")
    out = tmp_path / "s.csv"
    code, _, err = run(monkeypatch, capsys, "review", model, pool, "--export", out, "-n", "3")
    assert code == 0 and "wrote 3 suggestion(s)" in err
    import csv

    rows = list(csv.DictReader(out.open()))
    assert next(r.keys() for r in rows) == {"text", "guess", "confidence", "pick", "label"}
    assert [r["pick"] for r in rows] == ["uncertain", "random", "uncertain"]
    assert all(r["label"] == "" for r in rows)
    rows[0]["label"], rows[1]["label"] = "left", "right"  # the third stays empty: skipped
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    code, _, err = run(monkeypatch, capsys, "add", model, "--from", out)
    assert code == 0 and "added 2 labelled row(s)" in err and "1 without a label" in err
    back = PromptClassifier.load(model)
    data = back.get_data(include_generated=False)
    assert rows[0]["text"] in data["left"] and rows[1]["text"] in data["right"]
    picks = {e.text: e.meta.get("pick") for e in back._store if e.meta.get("via") == "review"}
    assert picks == {rows[0]["text"]: "uncertain", rows[1]["text"]: "random"}
    assert rows[2]["text"] not in data["left"] + data["right"]
    # a label that is not a class is refused, and the file is left as it was
    before = model.read_bytes()
    out.write_text("text,label\nsomething,lefty\n")
    code, _, err = run(monkeypatch, capsys, "add", model, "--from", out)
    assert code == 1 and "lefty" in err and model.read_bytes() == before
    code, _, err = run(monkeypatch, capsys, "add", model)
    assert code == 1 and "--from" in err


def test_review_refuses_without_a_terminal(geometry, tmp_path, monkeypatch, capsys):
    clf = geometry[0]
    model = tmp_path / "m.clf"
    clf.save(model)
    pool = tmp_path / "pool.txt"
    pool.write_text("p 0 0 a\n")
    code, _, err = run(monkeypatch, capsys, "review", model, pool, stdin="\n")
    assert code == 1 and "needs a terminal" in err and "--export" in err


def test_journal_written_before_the_answer_counts(geometry, tmp_path):
    """An answer is on disk the moment it is given (so Ctrl-C or a crash right after loses nothing)."""
    clf, upper, lower, _ = geometry
    j = tmp_path / "j.jsonl"
    s = ReviewSession(clf, upper + lower, journal=j, retrain_every=100)
    s.answer("right")
    assert json.loads(j.read_text().splitlines()[-1])["classes"] == ["right"]


def test_thresholds_from_real_labels_are_calibrated_and_survive_save(fake_embedder, toy_data, tmp_path):
    from promptclf.calibration import MIN_REAL_PER_CLASS

    # synthetic only: uncalibrated, no estimate; abstaining warns once
    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, xs[:6], meta=None)
    clf._store.remove(lambda e: True)
    from promptclf.store import Example

    clf._store.extend(Example(t, c, "generated", {}) for c, xs in toy_data.items() for t in xs)
    clf.train()
    cal = clf.calibration_
    assert cal["calibrated"] is False and cal["labels"] == "synthetic" and cal["estimate"] is None
    assert clf.summary()["thresholds_calibrated"] is False
    from promptclf import UncalibratedThresholdsWarning

    with pytest.warns(UncalibratedThresholdsWarning, match="uncalibrated"):
        clf.predict(["a superb film"], abstain=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(["a superb film"], abstain=True)  # once per model
        clf.predict(["a superb film"])  # and never without abstain
    # reviewed texts picked for their uncertainty are no fair sample: they do not calibrate
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, [x + " hard" for x in xs[:MIN_REAL_PER_CLASS]], meta={"pick": "uncertain"})
    clf.train()
    assert clf.calibration_["calibrated"] is False
    # a few of your own (or randomly picked) labels per class do: thresholds chosen on those rows alone
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, [x + " real" for x in xs[:MIN_REAL_PER_CLASS]], meta={"pick": "random"})
    clf.train()
    cal = clf.calibration_
    assert cal["calibrated"] is True and cal["labels"] == "real"
    assert cal["real_labels"] == {"neg": MIN_REAL_PER_CLASS, "pos": MIN_REAL_PER_CLASS}
    assert cal["n"] == 2 * MIN_REAL_PER_CLASS and len(clf._oof_proba_) == cal["n"]
    est = cal["estimate"]
    assert est["n"] == cal["n"] and 0 <= est["coverage"] <= 1 and set(est["per_class"]) == {"neg", "pos"}
    path = tmp_path / "m.clf"
    clf.save(path)
    back = PromptClassifier.load(path)
    assert back.calibration_ == cal and back.summary()["thresholds_calibrated"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back.predict(["a superb film"], abstain=True)  # calibrated: no warning


def test_eval_report_writes_figures_and_pages(trained, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.clf"
    trained.save(model)
    data = tmp_path / "d.csv"
    data.write_text(
        "text,label\na wonderful film,pos\na boring film,neg\nsuperb,pos\ndull and tedious,neg\n"
        "charming and joyful,pos\npainful,neg\nother,unknown\n"
    )
    code, out, _err = run(monkeypatch, capsys, "eval", model, data, "--report", tmp_path / "rep")
    assert code == 0 and "precision here" in out and "coverage here" in out
    assert "model's estimate  precision" in out and "5-fold cross-validation" in out  # 12 real labels per class
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert files == {"index.html", "index.md", "confusion.png", "precision_recall.png", "reliability.png"}
    for png in ("confusion.png", "precision_recall.png", "reliability.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "rep" / "index.md").read_text()
    assert "on 6 labelled texts" in page and "| pos |" in page and "thresholds calibrated | yes" in page
    assert "<img src='reliability.png'" in (tmp_path / "rep" / "index.html").read_text()


def test_calibration_on_real_labels_keeps_pseudo_labels_out_of_the_folds(fake_embedder, toy_data):
    """Pseudo-labels learnt from your examples would carry their labels into every fold (a leak that made
    thresholds promise 0.97 where real text got 0.78): your rows' calibration probabilities come from
    folds without them."""
    from promptclf.head import out_of_fold_proba

    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, xs[:6])
    pool = [x.replace("movie", "film") + " again" for xs in toy_data.values() for x in xs[6:]]
    clf.train(unlabeled=pool)
    texts, y, src = clf._training_set()
    assert (src == "pseudo").any() and clf.calibration_["calibrated"]
    rest = src != "pseudo"
    X = fake_embedder.embed([t for t, r in zip(texts, rest) if r])
    want = out_of_fold_proba(X, y[rest], clf.head_.C_, prior=clf._prior(np.unique(y)), random_state=clf.random_state)[
        src[rest] == "user"
    ]
    assert np.allclose(clf._oof_proba_, want, atol=1e-6)


def test_classes_with_enough_real_labels_are_calibrated_alone(fake_embedder, toy_data):
    """A rare class may never get 5 real labels: the others are calibrated on theirs, it keeps its
    synthetic threshold, and the warning names it."""
    from promptclf import UncalibratedThresholdsWarning
    from promptclf.store import Example

    rare = [f"an odd quirky {w} thing {i}" for i, w in enumerate(["strange", "weird", "bizarre"] * 4)]
    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    clf._store.extend(Example(t, c, "generated", {}) for c, xs in {**toy_data, "odd": rare}.items() for t in xs)
    clf.train()
    synthetic = clf.thresholds_.copy()
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, [x + " real" for x in xs[:6]])
    clf.add_data_to_class("odd", rare[0] + " real")
    clf.train()
    cal = clf.calibration_
    assert cal["calibrated"] is False and cal["calibrated_classes"] == ["neg", "pos"]
    assert cal["real_labels"] == {"neg": 6, "odd": 1, "pos": 6}
    assert cal["estimate"]["n"] == 13
    odd = list(clf.classes_).index("odd")
    assert clf.thresholds_[odd] == pytest.approx(synthetic[odd], abs=0.05)  # still chosen on synthetic rows
    with pytest.warns(UncalibratedThresholdsWarning, match=r"of class\(es\) \['odd'\]"):
        clf.predict(["a superb film"], abstain=True)
