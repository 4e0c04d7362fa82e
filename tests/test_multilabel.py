"""Multi-label: label sets and their negatives, per-class heads and thresholds, the file, CLI and server."""

import json

import httpx2 as httpx
import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.errors import ConfigurationError, ModelFileError
from promptclf.multilabel import LabelSets, clean, exclusive_classes, label_sets, ovr_prior, self_train_ovr

TOPICS = {
    "sports": ["goal", "match", "team", "score", "coach", "league"],
    "music": ["song", "guitar", "album", "concert", "band", "melody"],
    "food": ["pizza", "recipe", "dinner", "taste", "bread", "cheese"],
}


def texts_of(classes: tuple[str, ...], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = [w for c in classes for w in rng.choice(TOPICS[c], size=3, replace=False)]
        out.append(f"{' '.join(rng.permutation(words))} note {seed}-{i}")
    return out


@pytest.fixture
def ml_clf(fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder, multi_label=True, progress=False)
    for c in TOPICS:
        clf.add_data_to_class(c, texts_of((c,), 12, seed=len(c)))
    for i, pair in enumerate([("sports", "music"), ("music", "food")]):
        for t in texts_of(pair, 8, seed=100 + i):
            for c in pair:
                clf.add_data_to_class(c, t)
    return clf.train()


def test_predicts_label_sets_with_per_class_thresholds(ml_clf):
    both = "goal team guitar song match album"
    assert set(ml_clf.predict(both)) == {"sports", "music"}
    assert ml_clf.predict(["pizza bread cheese taste"]) == [["food"]]
    P = ml_clf.predict_proba([both, "pizza bread"])
    assert P.shape == (2, 3) and not np.allclose(P.sum(1), 1)  # independent per class
    assert len(ml_clf.thresholds_) == 3 and ml_clf.calibration_["source"] == "out-of-fold"
    labels = ml_clf.predict([both])[0]
    assert labels == sorted(labels, key=lambda c: -P[0, list(ml_clf.classes_).index(c)])  # most probable first
    got = ml_clf.classify(both)[0]
    assert {d["class_name"] for d in got} == set(labels)  # every class over its own threshold
    assert len(ml_clf.classify(both, threshold=0.0)[0]) == 3
    assert ml_clf.summary()["multi_label"] is True
    ml_clf.thresholds_ = np.ones(3)
    assert ml_clf.predict(["goal team", "pizza"]) == [[], []]  # no class over its threshold: an empty list


def test_min_labels_gives_every_text_its_top_class(ml_clf):
    ml_clf.thresholds_ = np.ones(3)
    assert ml_clf.predict(["goal team"]) == [[]]
    ml_clf.set_params(min_labels=1)
    assert ml_clf.predict(["goal team", "pizza bread"]) == [["sports"], ["food"]]
    assert [d["class_name"] for d in ml_clf.classify("goal team")[0]] == ["sports"]


def test_save_load_roundtrip_and_file_checks(ml_clf, tmp_path):
    path = tmp_path / "ml.clf"
    ml_clf.save(path)
    back = PromptClassifier.load(path)
    texts = ["goal team guitar song", "pizza cheese", "album melody bread"]
    assert back.multi_label and back.predict(texts) == ml_clf.predict(texts)
    assert np.allclose(back.predict_proba(texts), ml_clf.predict_proba(texts))
    assert np.allclose(back.thresholds_, ml_clf.thresholds_)
    assert set(back.precision_recall_curves()) == set(back.classes_)
    back.train()  # keeps learning after a load: same settings, same thresholds
    assert np.allclose(back.thresholds_, ml_clf.thresholds_)

    import zipfile

    def rewrite(member: str, edit) -> str:
        out = tmp_path / f"bad-{member.replace('/', '_')}.clf"
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info)
                if info.filename == member:
                    data = edit(data)
                zout.writestr(info, data)
        return str(out)

    def single_label_setting(raw: bytes) -> bytes:
        m = json.loads(raw)
        m["settings"]["multi_label"] = False
        return json.dumps(m).encode()

    with pytest.raises(ModelFileError, match="multi_label"):
        PromptClassifier.load(rewrite("manifest.json", single_label_setting))


def test_calibrate_with_label_sets(ml_clf):
    texts = texts_of(("sports", "music"), 10, 7) + texts_of(("food",), 10, 8)
    labels = [["sports", "music"]] * 10 + ["food"] * 10  # a list per text, or one class name
    ml_clf.calibrate(texts, labels, target_precision=0.8)
    assert ml_clf.calibration_["source"] == "labelled" and ml_clf.calibration_["n"] == 20
    with pytest.raises(Exception, match="not classes"):
        ml_clf.calibrate(texts[:1], [["sports", "chess"]])


def test_generated_examples_are_negatives_only_for_exclusive_classes():
    classes = np.array(["a", "b", "c"])
    exclusive = np.array([[False, False, True], [False, False, True], [True, True, False]])  # a and b may co-occur
    ls = label_sets(
        ["gen a", "gen c", "mine ab", "mine ab"],
        np.array(["a", "c", "a", "b"]),
        np.array(["generated", "generated", "user", "user"]),
        classes,
        exclusive,
    )
    assert ls.texts == ["gen a", "gen c", "mine ab"]
    assert ls.Y.tolist() == [[True, False, False], [False, False, True], [True, True, False]]
    # "gen a" says nothing about b; your own example's label set is complete
    assert ls.M.tolist() == [[True, False, True], [True, True, True], [True, True, True]]
    assert exclusive_classes(classes, None, "all").tolist() == (~np.eye(3, dtype=bool)).tolist()


def test_exclusive_classes_dissimilar_rule_keeps_nearest_descriptions_apart():
    classes = np.array(["anger", "annoyance", "joy", "sadness"])
    D = {"anger": np.array([1.0, 0.0, 0.0]), "annoyance": np.array([0.95, 0.31, 0.0]),
         "joy": np.array([0.0, 0.0, 1.0]), "sadness": np.array([0.0, 1.0, 0.0])}  # fmt: skip
    ex = exclusive_classes(classes, D, "dissimilar")
    assert not ex[0, 1] and not ex[1, 0]  # the two nearest may co-occur: no negatives between them
    assert ex[0, 2] and ex[2, 0] and not ex[0, 0]


def test_confident_learning_turns_contradicted_negatives_into_unknowns():
    ls = LabelSets(
        ["x", "y", "z"],
        np.array([[True, False], [False, True], [True, False]]),
        np.ones((3, 2), dtype=bool),
        np.array(["generated", "generated", "prompt"]),
        np.array(["a", "b"]),
    )
    # out-of-fold: x is clearly also b; z's label a is contradicted, but a description is never dropped
    P = np.array([[0.9, 0.95], [0.1, 0.9], [0.05, 0.1]])
    P = np.vstack([P, [[0.9, 0.1]] * 4 + [[0.1, 0.9]] * 4])
    big = LabelSets(
        ls.texts + [f"r{i}" for i in range(8)],
        np.vstack([ls.Y, [[True, False]] * 4 + [[False, True]] * 4]),
        np.ones((11, 2), dtype=bool),
        np.concatenate([ls.sources, ["user"] * 8]),
        ls.classes,
    )
    keep = clean(big, P)
    assert not big.M[0, 1] and big.M[0, 0]  # x: unknown for b now, still a positive of a
    assert keep[2]  # the description stays


def test_ovr_prior_is_centred_on_the_other_descriptions():
    D = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}
    prior = ovr_prior(np.array(["a", "b"]), D, 10.0)
    x = np.array([0.6, 0.8])
    assert np.allclose(prior @ x, [10 * (0.6 - 0.8), 10 * (0.8 - 0.6)])


def test_self_training_gives_pool_texts_whole_label_sets(fake_embedder):
    anchors = {c: texts_of((c,), 10, seed=i) for i, c in enumerate(TOPICS)}
    texts = [t for ts in anchors.values() for t in ts]
    y = np.array([c for c, ts in anchors.items() for _ in ts])
    classes = np.array(sorted(TOPICS))
    ls = label_sets(texts, y, np.array(["user"] * len(texts)), classes, exclusive_classes(classes, None))
    pool = texts_of(("sports", "music"), 20, 50) + texts_of(("food",), 20, 51)
    X = fake_embedder.embed(ls.texts)
    res = self_train_ovr(X, ls, fake_embedder.embed(pool), C=1.0)
    sets = dict(zip(res.index.tolist(), res.label_sets))
    assert res.report["pseudo_labels"] == len(res.index) > 0
    assert any(set(s) == {"sports", "music"} for i, s in sets.items() if i < 20)
    assert all(s == ["food"] for i, s in sets.items() if i >= 20)


def test_train_with_unlabeled_stores_pseudo_label_sets(fake_embedder):
    clf = PromptClassifier(embedder=fake_embedder, multi_label=True, progress=False)
    for c in TOPICS:
        clf.add_data_to_class(c, texts_of((c,), 10, seed=len(c)))
    pool = texts_of(("sports", "music"), 15, 60) + texts_of(("food",), 15, 61)
    clf.train(unlabeled=pool)
    pseudo = clf.get_data(include_pseudo=True, include_generated=False)
    assert clf.self_training_report_["multi_label"] and clf.self_training_report_["pseudo_labels"] > 0
    both = set(pseudo["sports"]) & set(pseudo["music"])
    assert both and both <= set(pool[:15])


@pytest.mark.parametrize("setting", [{"llm_label_budget": 5}])
def test_unsupported_combinations_say_so(fake_embedder, setting):
    clf = PromptClassifier(embedder=fake_embedder, multi_label=True, progress=False, **setting)
    clf.add_data_to_class("a", ["x y"]).add_data_to_class("b", ["z w"])
    with pytest.raises(ConfigurationError) as e:
        clf.train()
    assert e.value.setting == next(iter(setting))


def test_chain_refuses_multi_label(ml_clf):
    from promptclf import Chain

    with pytest.raises(ConfigurationError, match="multi-label"):
        Chain(ml_clf, ["fake:x"]).predict(["goal team"])


def test_cli_train_predict_eval_multi_label(tmp_path, monkeypatch, capsys):
    from tests.test_cli import run

    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({c: f"texts about {c}: {' '.join(ws)}" for c, ws in TOPICS.items()}))
    out = tmp_path / "m.clf"
    code, _, err = run(
        monkeypatch, capsys, "train", prompts, "-o", out, "--llm", "fake-echo:x", "--embedder", "fake:bow64",
        "--examples-per-class", "6", "--multi-label", "--no-quick-first",
    )  # fmt: skip
    assert code == 0, err
    assert PromptClassifier.load(out).multi_label
    inp = tmp_path / "in.txt"
    inp.write_text("goal team match guitar song album\npizza bread cheese\n")
    code, stdout, err = run(monkeypatch, capsys, "predict", out, inp)
    rows = [json.loads(x) for x in stdout.splitlines()]
    assert code == 0 and all(isinstance(r["label"], list) for r in rows), err
    data = tmp_path / "gold.csv"
    data.write_text("text,labels\ngoal team match guitar song album,sports|music\npizza bread cheese,food\n")
    code, stdout, err = run(monkeypatch, capsys, "eval", out, data)
    assert code == 0 and "micro-F1" in stdout and "macro-F1" in stdout and "exact match" in stdout, err


def test_server_returns_label_lists(ml_clf, tmp_path):
    from promptclf.serving import ServerSettings, create_app
    from tests.test_serve import ThreadServer

    path = tmp_path / "ml.clf"
    ml_clf.save(path)
    texts = ["goal team guitar song match album", "pizza cheese"]
    with ThreadServer(create_app(ServerSettings(str(path)))) as s:
        body = httpx.post(f"{s.url}/v1/predict", json={"texts": texts}).json()
        assert [p["label"] for p in body["predictions"]] == ml_clf.predict(texts)
        assert httpx.get(f"{s.url}/v1/model").json()["multi_label"] is True
        res = httpx.post(f"{s.url}/v1/classify", json={"texts": texts}).json()["results"]
        assert [[d["class_name"] for d in r] for r in res] == ml_clf.predict(texts)


def test_multi_label_thresholds_on_real_labels_are_calibrated(ml_clf, tmp_path):
    cal = ml_clf.calibration_  # the fixture's examples are all yours: thresholds chosen on them
    assert cal["calibrated"] and cal["labels"] == "real" and set(cal["real_labels"]) == set(TOPICS)
    est = cal["estimate"]
    assert est["method"].endswith("threshold choice") and 0 <= est["coverage"] <= 1
    assert est["precision_interval"][0] <= est["precision"] <= est["precision_interval"][1]
    ml_clf.train(unlabeled=texts_of(("sports", "food"), 10, seed=7))  # with pseudo-label sets too
    assert ml_clf.calibration_["calibrated"]
    assert (
        len(ml_clf._oof_proba_)
        == ml_clf.calibration_["n"]
        == len({e.text for e in ml_clf._store if e.source == "user"})
    )
    ml_clf.save(tmp_path / "m.clf")
    assert PromptClassifier.load(tmp_path / "m.clf").calibration_ == ml_clf.calibration_


def test_label_sets_round_trip_through_lamini_jsonl(ml_clf, tmp_path, fake_embedder):
    """A text added to two classes is in both classes' Lamini lines, and comes back with both labels."""
    path = tmp_path / "ex.jsonl"
    ml_clf.save_examples(path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    shared = texts_of(("sports", "music"), 8, seed=100)[0]
    assert {row["class_name"] for row in lines if shared in row["examples"]} == {"sports", "music"}
    other = PromptClassifier(embedder=fake_embedder, multi_label=True, progress=False).load_examples(path)
    assert other.get_data() == ml_clf.get_data()
    other.train()
    assert set(other.predict(shared)) == set(ml_clf.predict(shared))
