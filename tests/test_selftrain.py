"""Learning from unlabeled texts, with an embedder whose geometry is known: two clusters."""

import hashlib

import numpy as np
import pytest

from promptclf import InvalidInputError, PromptClassifier
from promptclf.embedders import Embedder
from tests.conftest import FakeLLM


class ClusterEmbedder(Embedder):
    """'alpha…' texts sit around e0, 'beta…' around e1; the descriptions sit between, nearer their own."""

    kind = "cluster-test"

    def __init__(self, model: str = "2d") -> None:  # a loaded model file builds it from its spec
        super().__init__(model)
        self.rng = np.random.default_rng(0)

    def embed_batch(self, texts):
        out = []
        for t in texts:
            v = np.zeros(8)
            h = int(hashlib.md5(t.encode()).hexdigest()[:6], 16) % 1000 / 1000  # stable across processes
            if t.startswith("DESC alpha"):
                v[:2] = [0.8, 0.6]
            elif t.startswith("DESC beta"):
                v[:2] = [0.6, 0.8]
            elif t.startswith("alpha"):
                v[:2] = [1.0, 0.3 + 0.2 * h]
            elif t.startswith("beta"):
                v[:2] = [0.3 + 0.2 * h, 1.0]
            v[2 + int(h * 6)] = 0.05
            out.append(v)
        return np.array(out)


PROMPTS = {"A": "DESC alpha things", "B": "DESC beta things"}


def make(**kw):
    # the LLM labels nothing unless a test asks it to ("auto" would check a hosted one: see ``hosted``)
    settings = {"llm": FakeLLM(), "llm_label_budget": 0, **kw}
    clf = PromptClassifier(**settings, embedder=ClusterEmbedder(), progress=False)
    clf.prompts_ = dict(PROMPTS)  # descriptions only, no generation: the pool does the work
    for c in PROMPTS:
        clf._store.add_class(c)
    return clf


def pool(n=40):
    return [f"alpha text {i}" for i in range(n)] + [f"beta text {i}" for i in range(n)]


def test_pseudo_labels_are_right_stored_and_hidden_by_default():
    clf = make().train(unlabeled=pool())
    rep = clf.self_training_report_
    assert not rep["guard"]["fallback"]
    assert rep["pseudo_labels"] > 0 and rep["by_labeler"] == {"model": rep["pseudo_labels"]}
    pseudo = [e for e in clf._store if e.source == "pseudo"]
    assert all(e.class_name == ("A" if e.text.startswith("alpha") else "B") for e in pseudo)
    assert all(0.5 < e.meta["confidence"] <= 1 and e.meta["labeler"] == "model" for e in pseudo)
    assert clf.get_data() == {"A": [], "B": []}
    assert sum(len(v) for v in clf.get_data(include_pseudo=True).values()) == len(pseudo)
    # balanced: neither class swamps the other
    per = rep["per_class"]
    assert max(per.values()) <= 2 * min(per.values())
    assert clf.training_summary_["per_class"]["A"]["pseudo"] == per["A"]


def test_new_pool_replaces_old_pseudo_labels_and_plain_train_keeps_them():
    clf = make().train(unlabeled=pool())
    first = {e.text for e in clf._store if e.source == "pseudo"}
    clf.train()
    assert {e.text for e in clf._store if e.source == "pseudo"} == first
    clf.train(unlabeled=[f"alpha other {i}" for i in range(20)] + [f"beta other {i}" for i in range(20)])
    second = {e.text for e in clf._store if e.source == "pseudo"}
    assert second and not (first & second)


def test_user_examples_are_never_pseudo_labelled_twice():
    clf = make()
    clf.add_data_to_class("A", "alpha text 0")
    clf.train(unlabeled=pool())
    assert "alpha text 0" not in {e.text for e in clf._store if e.source == "pseudo"}


def test_guard_falls_back_when_a_class_gets_no_pseudo_labels():
    clf = make().train(unlabeled=[f"alpha only {i}" for i in range(60)])
    rep = clf.self_training_report_
    assert rep["guard"]["fallback"] and "no pseudo-labels" in rep["guard"]["reason"]
    assert not [e for e in clf._store if e.source == "pseudo"]
    assert clf.predict("beta text 3") == "B"


def test_guard_falls_back_when_pseudo_labels_contradict_the_anchors():
    from promptclf.head import fit_head
    from promptclf.selftrain import _guard

    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0.2]), np.array([0.2, 1.0])
    X = np.vstack([a + 0.05 * rng.normal(size=(10, 2)), b + 0.05 * rng.normal(size=(10, 2))])
    y = np.array(["A"] * 10 + ["B"] * 10)
    XU = np.vstack([a + 0.05 * rng.normal(size=(30, 2)), b + 0.05 * rng.normal(size=(30, 2))])
    sel = np.arange(60)
    classes = np.array(["A", "B"])

    def fit(Xf, yf):
        return fit_head(Xf, yf, C=1.0)

    proba0 = fit(X, y).predict_proba(XU)
    right = np.array(["A"] * 30 + ["B"] * 30)
    assert not _guard(X, y, XU, sel, right, classes, 1.0, proba0, right)["fallback"]
    wrong = right[::-1]  # every pseudo-label backwards
    guard = _guard(X, y, XU, sel, wrong, classes, 1.0, proba0, wrong)
    assert guard["fallback"] and guard["reason"].startswith("anchors")
    assert guard["anchor_accuracy_pseudo_only"] < guard["anchor_accuracy_without"] - 0.1


def test_guard_falls_back_when_a_class_collapses():
    """The collapse check itself: pseudo-labels that agree with the anchors, but a final model that
    predicts one class for the whole pool (B held half of the predictions before)."""
    from promptclf.head import fit_head
    from promptclf.selftrain import _guard

    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0.2]), np.array([0.2, 1.0])
    X = np.vstack([a + 0.05 * rng.normal(size=(10, 2)), b + 0.05 * rng.normal(size=(10, 2))])
    y = np.array(["A"] * 10 + ["B"] * 10)
    XU = np.vstack([a + 0.05 * rng.normal(size=(30, 2)), b + 0.05 * rng.normal(size=(30, 2))])
    classes = np.array(["A", "B"])
    right = np.array(["A"] * 30 + ["B"] * 30)
    proba0 = fit_head(X, y, C=1.0).predict_proba(XU)

    always_a = np.array(["A"] * 60)  # a final model that has lost class B labels the pool
    guard = _guard(X, y, XU, np.arange(60), right, classes, 1.0, proba0, always_a)
    assert guard["fallback"] and guard["reason"] == "class(es) ['B'] collapsed"
    assert guard["class_share_before"]["B"] == 0.5 and guard["class_share_after"]["B"] == 0.0
    ok = _guard(X, y, XU, np.arange(60), right, classes, 1.0, proba0, right)
    assert not ok["fallback"]


def test_llm_labels_the_least_confident_texts():
    calls = []

    def answer(messages, schema, n):
        calls.append(messages[-1]["content"])
        text = messages[-1]["content"].split("Text: ")[1]
        return {"answer": "A" if "alpha" in text else "B"}

    clf = make(llm_label_budget=5)
    clf._llm = FakeLLM(fallback=answer)
    clf.train(unlabeled=pool())
    rep = clf.self_training_report_
    assert rep["llm"] == {"asked": 5, "reused": 0, "answered": 5} and rep["by_labeler"]["llm"] == 5
    assert "Categories:\n- A: DESC alpha things\n- B: DESC beta things" in calls[0]
    llm_labelled = [e for e in clf._store if e.source == "pseudo" and e.meta["labeler"] == "llm"]
    assert len(llm_labelled) == 5
    # they train as the LLM's answers (its weight in the head, its trust in fine-tuning)
    texts, _, sources = clf.training_data()
    assert sorted(t for t, s in zip(texts, sources) if s == "llm") == sorted(e.text for e in llm_labelled)
    assert sum(c.get("llm", 0) for c in clf.training_summary_["per_class"].values()) == 5


def test_the_llms_answers_are_reused_while_the_question_holds(tmp_path):
    """A hosted LLM is paid per call: a retrain on the same pool, also after save and load, reuses its
    answers; a changed description asks again."""
    from promptclf.embedders import register_embedder

    register_embedder(ClusterEmbedder)  # removed after the test by conftest's fake_backends
    calls = []

    def answer(messages, schema, n):
        text = messages[-1]["content"].split("Text: ")[1]
        calls.append(text)
        return {"answer": "A" if "alpha" in text else "B"}

    clf = make(llm_label_budget=5)
    clf._llm = FakeLLM(fallback=answer)
    clf.train(unlabeled=pool())
    first = {e.text: e.class_name for e in clf._store if e.meta.get("labeler") == "llm"}
    n = len(calls)  # the link may sample the LLM several times per text
    assert len(set(calls)) == 5 and len(first) == 5
    clf.train(unlabeled=pool())
    assert clf.self_training_report_["llm"] == {"asked": 0, "reused": 5, "answered": 5} and len(calls) == n
    assert {e.text: e.class_name for e in clf._store if e.meta.get("labeler") == "llm"} == first
    clf.save(tmp_path / "m.clf")
    back = PromptClassifier.load(tmp_path / "m.clf")
    back._llm = FakeLLM(fallback=answer)
    back.train(unlabeled=pool())
    assert back.self_training_report_["llm"]["reused"] == 5 and len(calls) == n
    back.prompts_["A"] = "DESC alpha things, said otherwise"  # another question: asked again
    back.train(unlabeled=pool())
    assert back.self_training_report_["llm"]["asked"] == 5 and len(calls) == 2 * n


def asked_text(messages) -> str:
    """The text a labelling prompt asks about."""
    return messages[-1]["content"].split("Text: ")[1].split("\n\n")[0]


def hosted(llm: FakeLLM) -> FakeLLM:
    """The fake, standing for a hosted LLM: the only kind ``llm_label_budget="auto"`` asks."""
    llm.hosted = True
    return llm


def by_cluster(calls: list[str]):
    """An LLM's answers that are always right here ('alpha' texts are A), each text asked noted in ``calls``."""

    def answer(messages, schema, n):
        text = asked_text(messages)
        calls.append(text)
        return {"answer": "A" if "alpha" in text else "B"}

    return answer


def test_auto_lets_an_llm_label_only_after_it_agrees_with_the_surest_labels(tmp_path):
    """llm_label_budget="auto", the default: a hosted LLM that labels the pool's surest texts as the model does
    labels the least sure ones too. The check is made once per question: a retrain, and the model
    loaded again, keep its verdict (and the LLM's answers) without asking; a new description asks again."""
    from promptclf.embedders import register_embedder

    register_embedder(ClusterEmbedder)  # removed after the test by conftest's fake_backends
    calls: list[str] = []
    assert PromptClassifier().llm_label_budget == "auto"
    clf = make(llm_label_budget="auto")
    clf._llm = hosted(FakeLLM(fallback=by_cluster(calls)))
    clf.train(unlabeled=pool())
    rep = clf.self_training_report_["llm"]
    check = rep["check"]
    assert check["trusted"] and check["conclusive"] and check["kappa"] == 1.0 and check["agreement"] == 1.0
    by_model = {e.text for e in clf._store if e.source == "pseudo" and e.meta["labeler"] == "model"}
    by_llm = {e.text: e.class_name for e in clf._store if e.source == "pseudo" and e.meta["labeler"] == "llm"}
    # checked on the model's surest labels (all of them here: 20 per class), then the rest went to the LLM
    assert check["texts"] == len(by_model) == 40 and set(calls) == by_model | set(by_llm)
    assert rep["answered"] == len(by_llm) == 40 and all(c == ("A" if t[0] == "a" else "B") for t, c in by_llm.items())
    n = len(calls)
    clf.train(unlabeled=pool())
    assert clf.self_training_report_["llm"]["check"] == check and len(calls) == n
    clf.save(tmp_path / "m.clf")
    back = PromptClassifier.load(tmp_path / "m.clf")
    assert back.llm_label_budget == "auto"
    back._llm = hosted(FakeLLM(fallback=by_cluster(calls)))
    back.train(unlabeled=pool())
    assert back.self_training_report_["llm"]["check"] == check and len(calls) == n
    back.prompts_["A"] = "DESC alpha things, said otherwise"  # another question: checked again
    back.train(unlabeled=pool())
    assert back.self_training_report_["llm"]["check"]["asked_with"] != check["asked_with"] and len(calls) > n


def test_auto_leaves_an_llm_that_does_not_agree_beyond_chance_out():
    """One class for everything agrees with half of a balanced check, as chance does: kappa 0, nothing
    labelled. An LLM that gives no usable answer is not trusted either, and is checked again next time."""
    asked: list[str] = []

    def always_a(messages, schema, n):
        asked.append(asked_text(messages))
        return {"answer": "A"}

    clf = make(llm_label_budget="auto")
    clf._llm = hosted(FakeLLM(fallback=always_a))
    clf.train(unlabeled=pool())
    check = clf.self_training_report_["llm"]["check"]
    assert check["conclusive"] and not check["trusted"] and check["agreement"] == 0.5 and check["kappa"] == 0.0
    assert set(clf.self_training_report_["llm"]) == {"check"}  # nothing asked beyond the check
    assert not any(e.meta.get("labeler") == "llm" for e in clf._store)
    assert set(asked) == {e.text for e in clf._store if e.source == "pseudo"}  # the surest texts only

    mute = make(llm_label_budget="auto")
    mute._llm = hosted(FakeLLM(fallback=lambda m, s, n: {"answer": "neither"}))
    mute.train(unlabeled=pool())
    check = mute.self_training_report_["llm"]["check"]
    assert check["answered"] == 0 and not check["conclusive"] and not check["trusted"]
    calls = len(mute._llm.calls)
    mute.train(unlabeled=pool())  # an inconclusive check does not stand: asked again
    assert len(mute._llm.calls) == 2 * calls


def test_auto_asks_no_local_llm_nor_a_hosted_one_a_file_names(tmp_path, monkeypatch):
    """A local LLM is not asked: the packaged 135M / 270M models label the pool at chance, and any local
    one answers a text at a time. A hosted LLM that a loaded model file names is not passed by the caller:
    retraining with a pool works and sends nothing."""
    from promptclf.embedders import register_embedder
    from promptclf.llms.hosted import OpenAILLM
    from promptclf.llms.local import LlamaCppLLM

    register_embedder(ClusterEmbedder)  # removed after the test by conftest's fake_backends

    def asked(*a, **kw):
        raise AssertionError("a local LLM was asked to label the pool")

    monkeypatch.setattr(LlamaCppLLM, "choose", asked)
    monkeypatch.setattr(LlamaCppLLM, "generate_json", asked)
    for llm in ("llama-cpp:smollm2", f"llama-cpp:{tmp_path / 'a-larger-model.gguf'}", FakeLLM(fallback=asked)):
        clf = make(llm=llm, llm_label_budget="auto")
        clf.train(unlabeled=pool())
        assert clf.self_training_report_["llm"] == {}
    hosted_llm = OpenAILLM("some-model", base_url="http://127.0.0.1:9/v1", api_key="x")
    clf = make(llm=hosted_llm, llm_label_budget="auto")
    clf.train()
    clf.save(tmp_path / "h.clf")
    back = PromptClassifier.load(tmp_path / "h.clf")  # the file names a hosted LLM: refused, not used
    back.train(unlabeled=pool())
    assert back.self_training_report_["llm"] == {}


def test_pseudo_labels_travel_in_the_model_file(tmp_path):
    from promptclf.embedders import register_embedder

    register_embedder(ClusterEmbedder)  # removed after the test by conftest's fake_backends
    clf = make().train(unlabeled=pool())
    clf.save(tmp_path / "m.clf")
    back = PromptClassifier.load(tmp_path / "m.clf")
    assert [(e.text, e.class_name, e.meta) for e in back._store if e.source == "pseudo"] == [
        (e.text, e.class_name, e.meta) for e in clf._store if e.source == "pseudo"
    ]
    assert back.self_training_report_["pseudo_labels"] == clf.self_training_report_["pseudo_labels"]


def test_empty_pool_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="no texts left"):
        make().train(unlabeled=["", "  "])
    with pytest.raises(InvalidInputError, match=r"unlabeled\[1\] must be a string"):
        make().train(unlabeled=["ok", None])


def test_cotraining_drops_pseudo_labels_the_text_view_disputes():
    """Ten pool texts full of class-A words whose vectors sit in B's cluster: the embedding view calls
    them B; the TF-IDF view, trained on the same anchors, calls them A; co-training keeps none of them."""
    from promptclf.selftrain import TextView, self_train

    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0.1]), np.array([0.1, 1.0])
    anchors = [f"alpha apple amber {i}" for i in range(10)] + [f"beta berry blue {i}" for i in range(10)]
    y = np.array(["A"] * 10 + ["B"] * 10)
    X = np.vstack([a + 0.05 * rng.normal(size=(10, 2)), b + 0.05 * rng.normal(size=(10, 2))])
    pool = [f"alpha amber apple text {i}" for i in range(30)] + [f"beta blue berry text {i}" for i in range(30)]
    tricky = [f"alpha apple amber odd {i}" for i in range(10)]
    XU = np.vstack([a + 0.05 * rng.normal(size=(30, 2)), b + 0.05 * rng.normal(size=(30, 2)),
                    b + 0.02 * rng.normal(size=(10, 2))])  # fmt: skip
    texts = pool + tricky

    plain = self_train(X, y, XU, C=1.0)
    assert any(i >= 60 for i in plain.index)  # the embedding view takes some tricky texts as B
    view = TextView(anchors, y, texts)
    co = self_train(X, y, XU, C=1.0, view=view)
    assert not any(i >= 60 for i in co.index) and co.report["second_view"]
    assert all(lab == ("A" if i < 30 else "B") for i, lab in zip(co.index, co.labels))


def blobs(n=60, seed=0):
    """Two well separated Gaussian blobs of unit vectors in 16 dimensions, and their classes."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:2] * 3
    y = np.repeat([0, 1], n // 2)
    X = centres[y] + rng.normal(0, 0.4, (n, 16))
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def test_cluster_refinement_repairs_a_noisy_start():
    from promptclf.selftrain import refine_by_clusters

    XU, y = blobs()
    rng = np.random.default_rng(1)
    start = np.eye(2)[np.where(rng.random(len(y)) < 0.3, 1 - y, y)] * 0.6 + 0.2  # 30% start wrong
    assert (start.argmax(1) != y).mean() > 0.2
    assert (refine_by_clusters(XU, start).argmax(1) == y).mean() > 0.95


def test_retrieval_labels_each_anchors_neighbours_and_keeps_the_classes_balanced():
    from promptclf.selftrain import retrieved

    XU, y = blobs()
    anchors = np.vstack([XU[:1], XU[:2][-1:], XU[-1:]])  # two anchors of class 0, one of class 1
    rows, labels = retrieved(anchors, np.array([0, 0, 1]), XU, 2, per_anchor=4)
    assert (labels == y[rows]).all()  # neighbours inherit their anchor's class
    assert np.bincount(labels).tolist() == [4, 4]  # class 0 found up to 8, kept as many as class 1


def test_neighbour_smoothing_repairs_a_noisy_start(monkeypatch):
    from promptclf import selftrain
    from promptclf.selftrain import nearest_neighbours, self_train

    XU, y = blobs()
    rng = np.random.default_rng(1)
    start = np.eye(2)[np.where(rng.random(len(y)) < 0.3, 1 - y, y)] * 0.6 + 0.2  # 30% start wrong
    near = nearest_neighbours(XU, 20, chunk=7)  # chunks that do not divide the pool
    assert near.shape == (len(y), 20) and all(i in row for i, row in enumerate(near))  # each text is its own
    assert (np.sort(near, 1) == np.sort(nearest_neighbours(XU, 20), 1)).all()  # chunking changes nothing
    assert (y[near] == y[:, None]).all()  # the blobs are apart: every neighbour is of the text's own blob
    assert (start.argmax(1) == y).mean() < 0.8 and (start[near].mean(1).argmax(1) == y).mean() > 0.9
    assert nearest_neighbours(XU[:3], 10).shape == (3, 3)  # k over the pool's size: every text

    # the setting reaches self-training, which says so in its report and still labels the blobs right
    X = np.vstack([XU[y == 0][:3], XU[y == 1][:3]])
    ya = np.array(["A"] * 3 + ["B"] * 3)
    monkeypatch.setattr(selftrain, "NEIGHBOURS", 15)
    res = self_train(X, ya, XU, C=1.0)
    assert res.report["neighbours"] == 15
    assert all(lab == "AB"[y[i]] for i, lab in zip(res.index, res.labels))


def test_the_report_says_how_much_the_pool_moved_the_model():
    """agreement_with_anchors: the share of the pool the final model labels as the anchors alone did.
    Anchors of B lie far right of B's texts, so the anchors alone cut B's cluster in two; the pool's
    labels repair it, and a quarter of the pool changes class."""
    from promptclf.selftrain import self_train

    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 100)
    XU = np.c_[np.where(truth == 0, -1.0, 1.0) + rng.normal(0, 0.3, 200), rng.normal(0, 0.3, 200)]
    X = np.c_[[-1, -1.1, -0.9, 3, 3.1, 2.9], [0, 0.1, -0.1, 0, 0.1, -0.1]]
    ya = np.array(["A"] * 3 + ["B"] * 3)
    res = self_train(X, ya, XU, C=1.0)
    assert (res.pool_labels == np.array(["A", "B"])[truth]).all()
    assert 0.6 < res.report["agreement_with_anchors"] < 0.9
    near = np.r_[X[:3], X[:3] * -1]  # B's anchors at B's texts: the pool moves nothing
    assert self_train(near, ya, XU, C=1.0).report["agreement_with_anchors"] > 0.99
