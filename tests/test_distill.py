"""A distilled encoder (``distill=True``): half of MiniLM's layers, trained on the model's own texts to
reproduce its vectors; it becomes the model's encoder in every path and travels in the .clf, served
without torch. Real packaged MiniLM, tiny sets (the thresholds are lowered so a test takes seconds)."""

import json
import logging
import zipfile

import numpy as np
import onnx
import pytest

from promptclf import ConfigurationError, InvalidInputError, PromptClassifier
from promptclf import distill as D
from promptclf.embedders.local import resolve_model_path
from promptclf.finetune import encode, load_model
from tests.conftest import run_without_torch

pytestmark = pytest.mark.integration
POS = ["what a wonderful film", "I loved every minute", "brilliant acting", "a joy to watch", "superb story",
       "a warm and funny picture", "the best film this year", "moving and beautifully shot"]  # fmt: skip
NEG = ["what a dreadful film", "I hated every minute", "wooden acting", "a chore to watch", "a dull story",
       "a cold and joyless picture", "the worst film this year", "tedious and badly shot"]  # fmt: skip
POOL = [f"{a} {b}" for a in ("a lovely", "an awful", "a charming", "a boring", "a gripping", "a clumsy")
        for b in ("film", "story", "cast", "ending", "script", "score")]  # fmt: skip
TEXTS = ["an enchanting, moving picture", "tedious and badly acted", "I would watch it again"]
PROMPTS = {"pos": "A review that praises the film.", "neg": "A review that pans the film."}


@pytest.fixture
def small_sets(monkeypatch):
    monkeypatch.setattr(D, "MIN_TEXTS", 20)
    monkeypatch.setattr(D, "EPOCHS", 10)  # two steps an epoch on these 52 texts


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(D, "MIN_TEXTS", 20)
    clf = PromptClassifier(finetune=False, distill=True, finetune_budget_s=120, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    clf.prompt_train(PROMPTS, unlabeled=POOL, generate=False)
    mp.undo()
    path = tmp_path_factory.mktemp("distil") / "m.clf"
    clf.save(path)
    return clf, path


def test_distillation_stops_at_its_own_budget_or_finetune_budget_s_if_lower(distilled, monkeypatch):
    clf, _ = distilled
    assert clf.encoder_["report"]["student"]["settings"]["budget_s"] == 120.0  # finetune_budget_s=120 < 150
    monkeypatch.setattr(D, "MIN_TEXTS", 20)
    monkeypatch.setattr(D, "BUDGET_S", 0.0)  # the cap, lower than finetune_budget_s
    short = PromptClassifier(finetune=False, distill=True, finetune_budget_s=300, progress=False)
    short.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    short.prompt_train(PROMPTS, unlabeled=POOL, generate=False)
    student = short.encoder_["report"]["student"]
    assert student["settings"]["budget_s"] == 0.0 and student["stopped_by_budget"] and student["steps"] == 1


def test_the_student_keeps_every_other_layer_and_learns_the_teachers_vectors(small_sets):
    teacher = load_model(resolve_model_path("all-MiniLM-L6-v2"))
    texts = POS + NEG + POOL
    target = encode(teacher, texts)
    untrained = D.student_of(teacher)
    student, report = D.distill(teacher, texts, target, budget_s=120)
    assert len(student[0].auto_model.encoder.layer) == 3 and len(teacher[0].auto_model.encoder.layer) == 6
    assert report.steps > 0 and report.pairs == len(texts) and not report.stopped_by_budget
    assert report.settings["layers"] == [0, 2, 4] and report.settings["teacher_layers"] == 6
    assert student.max_seq_length == teacher.max_seq_length  # serves with the teacher's window

    def error(m):
        return float(((encode(m, texts) - target) ** 2).sum(1).mean())

    assert error(student) < 0.5 * error(untrained)  # dropping layers alone moves the vectors; training brings them back
    assert np.allclose(encode(teacher, texts), target, atol=1e-5)  # the teacher is left as it was


def test_targets_must_match_the_texts(small_sets):
    with pytest.raises(InvalidInputError, match="one vector per text") as e:
        D.distill(resolve_model_path("all-MiniLM-L6-v2"), ["a", "b"], np.zeros((3, 384)))
    assert e.value.argument == "targets"


def test_a_non_bert_encoder_is_a_configuration_error():
    class Plain:
        def __getitem__(self, i):
            return type("M", (), {"auto_model": object()})()

    with pytest.raises(ConfigurationError) as e:
        D.student_of(Plain())
    assert e.value.setting == "distill"


def test_the_budget_stops_distillation_and_leaves_a_usable_student(small_sets):
    texts = POS + NEG + POOL
    teacher = load_model(resolve_model_path("all-MiniLM-L6-v2"))
    student, report = D.distill(teacher, texts, encode(teacher, texts), budget_s=0.0)
    assert report.stopped_by_budget and report.steps == 1
    assert encode(student, ["still works"]).shape == (1, 384)


def test_the_classifier_serves_the_distilled_encoder(distilled):
    clf, _ = distilled
    enc = clf.encoder_
    assert "student" in enc["report"] and enc["report"]["student"]["pairs"] == len(POS + NEG + POOL) + 2
    assert clf.embedder_spec_ == {"kind": "finetuned", "model": enc["name"]}
    assert len(clf._tuned.torch_model[0].auto_model.encoder.layer) == 3
    assert clf.predict(["a wonderful film, I loved it", "a dreadful, dull film"]) == ["pos", "neg"]
    assert clf.get_params()["distill"] is True and clf.summary()["settings"]["distill"] is True


def test_a_distilled_model_saves_loads_without_torch_and_predicts_identically(distilled):
    clf, path = distilled
    lines = run_without_torch(
        "import json\n"
        "import promptclf\n"
        f"m = promptclf.load({str(path)!r}, embedder='onnx:all-MiniLM-L6-v2')\n"
        f"print(json.dumps(m.predict_proba({TEXTS!r}).tolist()))\n"
        f"print(json.dumps(promptclf.load({str(path)!r}).predict({TEXTS!r})))\n"
        "print(json.dumps([m.get_params()['distill'], sys.modules.get('torch') is not None]))\n"
    )
    assert np.allclose(json.loads(lines[0]), clf.predict_proba(TEXTS), atol=1e-3)
    assert json.loads(lines[1]) == clf.predict(TEXTS)
    assert json.loads(lines[2]) == [True, False]
    with zipfile.ZipFile(path) as z:  # read as it is at load, not inflated
        assert z.getinfo("encoder/model.onnx").compress_type == zipfile.ZIP_STORED
    graph = onnx.load_model_from_string(clf._encoder_graph())
    # three layers of six: the query weights of each layer are one initializer (or one MatMul input)
    names = {i.name for i in graph.graph.initializer} | {x for n in graph.graph.node for x in n.input}
    layers = {n.split(".layer.")[1].split(".")[0] for n in names if ".layer." in n}
    assert len(layers) == 3, layers


def test_a_train_that_keeps_the_encoder_keeps_its_distilled_copy(distilled):
    _, path = distilled
    served = PromptClassifier.load(path)
    name = served.encoder_["name"]
    served.add_data_to_class("pos", "a delightful, warm film").train()
    assert served.encoder_["name"] == name and served.embedder_spec_["model"] == name


def test_a_loaded_model_distils_again_when_its_encoder_is_tuned(distilled, small_sets):
    _, path = distilled
    served = PromptClassifier.load(path).set_params(finetune=True, finetune_budget_s=30)
    name = served.encoder_["name"]
    served.train(unlabeled=POOL)
    rep = served.encoder_["report"]
    assert served.encoder_["name"] != name and rep["steps"] > 0 and rep["student"]["steps"] > 0
    assert len(served._tuned.torch_model[0].auto_model.encoder.layer) == 3


def test_too_few_texts_keep_the_full_encoder_with_a_warning(caplog):
    clf = PromptClassifier(finetune=False, distill=True, progress=False)
    clf.add_data_to_class("pos", POS).add_data_to_class("neg", NEG)
    with caplog.at_level(logging.WARNING, logger="promptclf"):
        clf.train()
    assert "keeping the full encoder" in caplog.text and "16 distinct texts" in caplog.text
    assert clf.__dict__.get("_tuned") is None and clf.embedder_spec_["kind"] == "sentence-transformers"


def test_distill_must_be_a_bool():
    clf = PromptClassifier(distill="yes", progress=False).add_data_to_class("a", "x").add_data_to_class("b", "y")
    with pytest.raises(ConfigurationError) as e:
        clf.train()
    assert e.value.setting == "distill"
