import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(monkeypatch, capsys, *args, stdin=None):
    monkeypatch.setattr(sys, "argv", ["promptclf", *map(str, args)])
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model(trained, tmp_path):
    path = tmp_path / "m.clf"
    trained.save(path)
    return path


def test_predict_lines_csv_jsonl_and_stdin(model, tmp_path, monkeypatch, capsys):
    lines = tmp_path / "in.txt"
    lines.write_text("a wonderful superb film\n\na dreadful boring film\n")
    code, out, _ = run(monkeypatch, capsys, "predict", model, lines)
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [r["label"] for r in rows] == ["pos", "neg"]
    assert rows[0]["text"] == "a wonderful superb film" and 0.5 < rows[0]["prob"] <= 1

    csv = tmp_path / "in.csv"
    csv.write_text('id,body\n1,"a charming, joyful film"\n')
    code, out, _ = run(monkeypatch, capsys, "predict", model, csv, "--column", "body")
    assert json.loads(out)["label"] == "pos"

    jl = tmp_path / "in.jsonl"
    jl.write_text(json.dumps({"t": "tedious and dull"}) + "\n")
    code, out, _ = run(monkeypatch, capsys, "predict", model, jl, "--field", "t", "--batch-size", "1")
    assert json.loads(out)["label"] == "neg"

    code, out, _ = run(monkeypatch, capsys, "predict", model, "-", stdin="brilliant moving film\n")
    assert json.loads(out)["label"] == "pos"


def test_predict_abstain_writes_null(model, monkeypatch, capsys):
    clf = PromptClassifier.load(model)
    clf.thresholds_[:] = 1.0  # no probability of 'something' reaches 1
    clf.save(model)
    code, out, _ = run(monkeypatch, capsys, "predict", model, "-", "--abstain", stdin="something\n")
    assert code == 0 and json.loads(out)["label"] is None


def test_eval_reports_metrics_and_plots(model, tmp_path, monkeypatch, capsys):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na wonderful film,pos\na boring film,neg\nsuperb,pos\ndull and tedious,neg\n")
    png = tmp_path / "pr.png"
    code, out, _ = run(monkeypatch, capsys, "eval", model, data, "--plot", png)
    assert code == 0
    assert "accuracy  1.0000" in out and "macro-F1" in out and "confusion matrix" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_add_then_retrain_then_info(model, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "add", model, "pos", "a radiant triumph", "pure joy")
    assert code == 0 and "added 2" in err
    assert "pure joy" in PromptClassifier.load(model).get_data()["pos"]
    code, _, _ = run(monkeypatch, capsys, "retrain", model)
    assert code == 0
    code, out, _ = run(monkeypatch, capsys, "info", model, "--json")
    info = json.loads(out)
    assert info["classes"] == ["neg", "pos"] and info["examples"]["pos"]["user"] == 14
    assert set(info["thresholds"]) == {"neg", "pos"}


def test_train_from_prompts(tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise.", "neg": "Reviews that criticise."}))
    out_path = tmp_path / "t.clf"
    code, _, err = run(
        monkeypatch, capsys, "train", prompts, "-o", out_path,
        "--llm", "fake-topic:x", "--embedder", "fake:bow64", "--examples-per-class", "4",
    )  # fmt: skip
    assert code == 0, err
    assert PromptClassifier.load(out_path).get_data()["pos"]
    assert PromptClassifier.load(out_path).finetune == "auto"  # the default, saved with the model

    pool = tmp_path / "pool.csv"
    pool.write_text("body\n" + "".join(f"film {w} number {i}\n" for i in range(10) for w in ("superb", "dreadful")))
    code, _, err = run(monkeypatch, capsys, "retrain", out_path, "--unlabeled", pool, "--column", "body")
    assert code == 0, err
    back = PromptClassifier.load(out_path)
    assert back.self_training_report_["pool"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.clf", "-"], "model file not found: missing.clf"),
        (["info", "README.md"], "not a promptclf model file"),
    ],
)
def test_errors_are_one_line(monkeypatch, capsys, args, message):
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1
    assert err.strip().startswith("promptclf: error:") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_input_file_is_one_line(model, tmp_path, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "predict", model, tmp_path / "nope.txt")
    assert code == 1 and "input file not found" in err
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    code, _, err = run(monkeypatch, capsys, "predict", model, bad)
    assert code == 1 and "no column 'text'" in err


@pytest.mark.integration
def test_entry_point_runs_as_module(tmp_path):
    clf = PromptClassifier(progress=False)
    clf.add_data_to_class("sports", ["The team won the match.", "A late goal decided the final."])
    clf.add_data_to_class("business", ["Shares rose after earnings.", "The merger was approved."])
    path = tmp_path / "m.clf"
    clf.train().save(path)
    out = subprocess.run(
        [sys.executable, "-m", "promptclf", "predict", str(path), "-"],
        input="The striker scored twice.\n", capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["label"] == "sports"


def test_reading_stdin_leaves_it_open(monkeypatch):
    import io

    from promptclf.textio import iter_texts

    raw = io.BytesIO(b"one\ntwo\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
    assert list(iter_texts("-")) == ["one", "two"]
    assert not raw.closed


@pytest.mark.parametrize("command", ["predict", "eval", "train", "retrain"])
def test_non_utf8_input_is_one_line_with_a_way_out(model, tmp_path, monkeypatch, capsys, command):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1"))
    prompts = tmp_path / "p.json"
    prompts.write_bytes('{"pos": "Cr\xe8me praise.", "neg": "Criticism."}'.encode("latin-1"))
    args = {
        "predict": ["predict", model, latin],
        "eval": ["eval", model, latin],
        "train": ["train", prompts, "-o", tmp_path / "o.clf", "--llm", "fake-topic:x", "--embedder", "fake:bow64"],
        "retrain": ["retrain", model, "--unlabeled", latin],
    }[command]
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "utf-8" in err.lower() or "decode" in err.lower()
    if command in ("predict", "eval"):
        code, out, err = run(monkeypatch, capsys, *args, "--encoding", "latin-1")
        assert code == 0, err
        assert json.loads(out.splitlines()[0])["text"] == "café crème" if command == "predict" else "rows      1" in out


@pytest.mark.parametrize("size", ["0", "-1"])
def test_batch_size_must_be_positive(model, monkeypatch, capsys, size):
    code, out, err = run(monkeypatch, capsys, "predict", model, "-", "--batch-size", size, stdin="a film\n")
    assert code == 1 and out == "" and f"--batch-size must be at least 1, got {size}" in err


def test_eval_short_row_and_missing_plot_folder(model, tmp_path, monkeypatch, capsys):
    short = tmp_path / "s.csv"
    short.write_text("text,label\na wonderful film,pos\na boring film\n")
    code, _, err = run(monkeypatch, capsys, "eval", model, short)
    assert code == 1 and "line 3: the row has fewer columns than the header" in err
    good = tmp_path / "g.csv"
    good.write_text("text,label\na wonderful film,pos\n")
    code, _, err = run(monkeypatch, capsys, "eval", model, good, "--plot", tmp_path / "nope" / "pr.png")
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_info_names_training_and_serving_embedders(model, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "info", model, "--json")
    info = json.loads(out)
    assert code == 0
    assert info["embedder"] == {"kind": "fake", "model": "bow64"}
    assert info["serving_embedder"] == {"kind": "fake", "model": "bow64"}
    assert info["calibration"]["source"] == "out-of-fold" and info["settings"]["examples_per_class"] == "auto"


def test_train_writes_a_first_model_before_the_llm_starts(tmp_path, monkeypatch, capsys):
    from promptclf.llms.base import llms
    from tests.conftest import EchoLLM

    out_path = tmp_path / "m.clf"
    seen = []

    class Watching(EchoLLM):
        kind = "fake-watching"

        def generate_json(self, messages, schema, **kw):
            seen.append(out_path.exists())
            return super().generate_json(messages, schema, **kw)

    llms().register(Watching)
    try:
        prompts = tmp_path / "p.json"
        prompts.write_text(json.dumps({"pos": "Reviews that praise the film.", "neg": "Reviews that criticise it."}))
        code, _, err = run(
            monkeypatch, capsys, "train", prompts, "-o", out_path, "--llm", "fake-watching:x",
            "--embedder", "fake:bow64", "--examples-per-class", "3",
        )  # fmt: skip
    finally:
        llms().unregister("fake-watching")
    assert code == 0, err
    assert seen and all(seen)  # the first model existed before the first LLM call
    assert "wrote a first model" in err and PromptClassifier.load(out_path).get_data()["pos"]


def test_predict_escalates_to_an_llm(model, monkeypatch, capsys):
    """--escalate: the least confident share goes to the LLM (a fake that always answers 'neg')."""
    from tests.conftest import FakeLLM

    class AlwaysNeg(FakeLLM):
        kind = "fake-neg"

        def __init__(self, model="x"):
            super().__init__(model, fallback=lambda *a: {"answer": "neg"})

    from promptclf.llms.base import llms

    llms().register(AlwaysNeg)
    try:
        stdin = "a wonderful superb film\nsomething\nbrilliant moving film\nan odd one\n"
        code, out, _ = run(
            monkeypatch,
            capsys,
            "predict",
            model,
            "-",
            "--escalate",
            "fake-neg:x",
            "--escalate-share",
            "0.5",
            stdin=stdin,
        )
        rows = [json.loads(x) for x in out.splitlines()]
        assert code == 0 and len(rows) == 4
        by = [r["decided_by"] for r in rows]
        assert by.count("fake-neg:x") + by.count("classifier") == 4 and all(r["flags"] == [] for r in rows)
        texts = stdin.split("\n")[:4]
        proba = np.sort(PromptClassifier.load(model).predict_proba(texts), axis=1)
        unsure = {texts[i] for i in np.argsort(proba[:, -1] - proba[:, -2], kind="stable")[:2]}
        assert {r["text"] for r in rows if r["decided_by"] == "fake-neg:x"} <= unsure
        assert all(r["label"] == "neg" for r in rows if r["decided_by"] == "fake-neg:x")
        code, _, err = run(
            monkeypatch, capsys, "predict", model, "-", "--escalate", "fake-neg:x", "--escalate-share", "2", stdin="x\n"
        )
        assert code != 0 and "--escalate-share" in err
        code, _, err = run(monkeypatch, capsys, "predict", model, "-", "--escalate", "nope:x", stdin="x\n")
        assert code != 0 and "unknown llm kind" in err and "Traceback" not in err
    finally:
        llms().unregister("fake-neg")


def test_train_finetune_and_examples_per_class_options(tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise.", "neg": "Reviews that criticise."}))
    common = ["train", prompts, "--llm", "fake-topic:x", "--embedder", "fake:bow64", "--examples-per-class", "2"]
    code, _, err = run(monkeypatch, capsys, *common, "-o", tmp_path / "a.clf", "--finetune", "maybe")
    assert code == 2 and "--finetune" in err and "maybe" in err and "Traceback" not in err
    code, _, err = run(monkeypatch, capsys, *common, "-o", tmp_path / "b.clf", "--finetune", "off")
    assert code == 0, err
    assert PromptClassifier.load(tmp_path / "b.clf").finetune is False
    assert PromptClassifier.load(tmp_path / "b.clf").fast == "auto"  # the default: where real texts bound it
    code, _, err = run(monkeypatch, capsys, *common, "-o", tmp_path / "d.clf", "--finetune", "off", "--no-fast")
    assert code == 0, err
    assert PromptClassifier.load(tmp_path / "d.clf").fast is False
    many = ["train", prompts, "--llm", "fake-topic:x", "--embedder", "fake:bow64", "-o", tmp_path / "c.clf"]
    code, _, err = run(monkeypatch, capsys, *many, "--examples-per-class", "lots")
    assert code == 2 and "--examples-per-class" in err and "lots" in err and "Traceback" not in err
    code, _, err = run(monkeypatch, capsys, *many, "--examples-per-class", "0")  # a number, checked by the model
    assert code != 0 and "examples_per_class" in err and "Traceback" not in err


def test_train_llm_label_budget_option(tmp_path, monkeypatch, capsys):
    """--llm-label-budget: the LLM labels the unsure pool texts for the finished model, not the first one."""
    from promptclf.llms.base import llms
    from tests.conftest import EchoLLM

    out_path = tmp_path / "m.clf"
    asked: list[bool] = []  # per labelling call: did the first model exist already

    class Labelling(EchoLLM):
        kind = "fake-labelling"
        hosted = True  # "auto" asks hosted LLMs only

        def generate_json(self, messages, schema, **kw):
            if "answer" in schema.get("properties", {}):
                asked.append(out_path.exists())
                return {"answer": "pos" if "praise" in messages[-1]["content"].split("Text: ")[1] else "neg"}
            return super().generate_json(messages, schema, **kw)

    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise the film.", "neg": "Reviews that criticise the film."}))
    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"{w} film number {i}\n" for i in range(20) for w in ("praise the", "criticise the")))
    args = ["train", prompts, "-o", out_path, "--llm", "fake-labelling:x", "--embedder", "fake:bow64"]
    args += ["--examples-per-class", "3", "--unlabeled", pool]
    llms().register(Labelling)
    try:
        for bad in ("-1", "lots"):
            code, _, err = run(monkeypatch, capsys, *args, "--llm-label-budget", bad)
            assert code == 2 and "--llm-label-budget" in err and bad in err and "Traceback" not in err
        code, _, err = run(monkeypatch, capsys, *args, "--llm-label-budget", "4")
        assert code == 0, err
        back = PromptClassifier.load(out_path)
        report = back.self_training_report_["llm"]
        assert back.llm_label_budget == 4 and report["asked"] == 4 and report["answered"] == 4
        assert "check" not in report and "the LLM labelled" not in err  # a number is asked as it is
        assert asked and all(asked)  # every labelling call came after the first model was written
        out_path.unlink()
        code, _, err = run(monkeypatch, capsys, *args)  # auto: checked on the model's surest labels first
    finally:
        llms().unregister("fake-labelling")
    assert code == 0, err
    back = PromptClassifier.load(out_path)
    report = back.self_training_report_["llm"]
    assert back.llm_label_budget == "auto" and report["check"]["trusted"] and report["answered"] > 4
    said = f"the LLM labelled {report['answered']} of the texts the model was least sure of (it agreed with the model's"
    assert f"{said} surest labels on 100% of {report['check']['texts']}, kappa 1.00)" in err

    class OneClass(EchoLLM):  # "pos" for every text: no better than chance
        kind = "fake-one-class"
        hosted = True

        def generate_json(self, messages, schema, **kw):
            if "answer" in schema.get("properties", {}):
                return {"answer": "pos"}
            return super().generate_json(messages, schema, **kw)

    llms().register(OneClass)
    try:
        out_path.unlink()
        code, _, err = run(monkeypatch, capsys, *args[:5], "fake-one-class:x", *args[6:])
    finally:
        llms().unregister("fake-one-class")
    assert code == 0, err
    check = PromptClassifier.load(out_path).self_training_report_["llm"]["check"]
    assert not check["trusted"] and check["kappa"] == 0.0
    said = "; the LLM labelled none of the pool (it agreed with the model's surest labels on 50% of 20"
    assert f"{said}, kappa 0.00; 0.5 needed)" in err


@pytest.mark.integration
def test_train_distill_option(tmp_path, monkeypatch, capsys, caplog):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise.", "neg": "Reviews that criticise."}))
    args = ["train", prompts, "--llm", "fake-topic:x", "--examples-per-class", "4", "--distill"]
    code, _, err = run(monkeypatch, capsys, *args, "--embedder", "fake:bow64", "-o", tmp_path / "a.clf")
    assert code != 0 and "distill=True needs a local sentence-transformers embedder" in err
    assert "Traceback" not in err
    with caplog.at_level("WARNING", logger="promptclf"):
        code, _, err = run(monkeypatch, capsys, *args, "-o", tmp_path / "b.clf")
    assert code == 0, err
    assert "keeping the full encoder" in caplog.text  # 10 texts: too few to distil on
    m = PromptClassifier.load(tmp_path / "b.clf")
    assert m.get_params()["distill"] is True and m.summary()["encoder"] is None


@pytest.mark.integration
def test_train_says_when_the_budget_stopped_fine_tuning(tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise.", "neg": "Reviews that criticise."}))
    args = ["train", prompts, "--llm", "fake-topic:x", "--examples-per-class", "4", "--no-quick-first"]
    code, _, err = run(
        monkeypatch, capsys, *args, "-o", tmp_path / "a.clf", "--finetune", "on", "--finetune-budget", "0.01"
    )
    assert code == 0, err
    report = PromptClassifier.load(tmp_path / "a.clf").summary()["encoder"]["report"]
    assert report["stopped_by_budget"] and f"stopped at its 0.01 s budget after {report['steps']} steps" in err


@pytest.mark.integration
@pytest.mark.parametrize("why", ["agreement", "guard"])
def test_train_says_when_the_pool_did_not_tune_the_encoder(tmp_path, monkeypatch, capsys, why):
    """finetune "auto" keeps the prompt-tuned encoder where the pool agrees with the examples (forced
    here by a zero POOL_TUNING_MAX_AGREEMENT), or where self-training's guard kept none of the pool's
    labels (forced by a negative GUARD_MARGIN; small minimums keep it short): the command says which."""
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_PER_CLASS", 4)
    monkeypatch.setattr("promptclf.classifier.AUTO_FINETUNE_MIN_POOL", 8)
    if why == "agreement":
        monkeypatch.setattr("promptclf.classifier.POOL_TUNING_MAX_AGREEMENT", 0.0)
    else:  # the agreement alone would tune
        monkeypatch.setattr("promptclf.classifier.POOL_TUNING_MAX_AGREEMENT", 1.01)
        monkeypatch.setattr("promptclf.selftrain.GUARD_MARGIN", -2.0)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"pos": "Reviews that praise.", "neg": "Reviews that criticise."}))
    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"{w} film number {i}\n" for i in range(6) for w in ("a lovely", "a dreadful")))
    args = ["train", prompts, "--llm", "fake-topic:x", "--examples-per-class", "4", "--no-quick-first"]
    code, _, err = run(
        monkeypatch, capsys, *args, "--unlabeled", pool, "--finetune-budget", "1", "-o", tmp_path / "a.clf"
    )
    assert code == 0, err
    loaded = PromptClassifier.load(tmp_path / "a.clf")
    choice = loaded.summary()["pool_tuning"]
    assert choice["tuned"] is False and choice["chosen_by"] == why
    if why == "agreement":
        said = f"the pool's labels agree with the examples' on {choice['agreement_with_anchors']:.0%}"
    else:
        said = f"self-training found the pool's labels harmful ({loaded.self_training_report_['guard']['reason']})"
    assert "the encoder tuned on the prompt was kept" in err and said in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--drain-s", "-1", "--drain-s must be between 0 and 86400 seconds, got -1.0"),
        ("--max-wait-ms", "2000", "--max-wait-ms must be between 0 and 1000, got 2000.0"),
        ("--max-batch", "0", "--max-batch must be at least 1, got 0"),
        ("--parallel-batches", "0", "--parallel-batches must be at least 1, got 0"),
    ],
)
def test_serve_flags_are_checked_before_loading(model, monkeypatch, capsys, flag, value, message):
    code, out, err = run(monkeypatch, capsys, "serve", model, flag, value)
    assert code == 1 and out == "" and message in err and "Traceback" not in err
