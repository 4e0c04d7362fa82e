"""`make demo`: the README's main-job command. The fakes run its steps in-process; the integration
test runs the real script (packaged LLM and embedder) on a cut-down input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo"


def test_demo_steps_with_fakes(tmp_path, monkeypatch, capsys):
    model = tmp_path / "spam.clf"
    code, _, err = run(
        monkeypatch, capsys, "train", DEMO / "prompts.json", "-o", model, "--unlabeled", DEMO / "unlabeled.txt",
        "--examples-per-class", "4", "--store", tmp_path / "ex.jsonl",
        "--llm", "fake-echo:x", "--embedder", "fake:bow64",
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote {model}" in err
    code, out, _ = run(monkeypatch, capsys, "predict", model, DEMO / "inbox.txt")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 8 and {r["label"] for r in rows} <= {"spam", "ham"}
    code, out, _ = run(monkeypatch, capsys, "info", model, "--json")
    info = json.loads(out)
    assert code == 0 and info["classes"] == ["ham", "spam"]
    from promptclf import PromptClassifier

    assert PromptClassifier.load(model).self_training_report_["pool"] == 50  # the unlabeled messages were used


@pytest.mark.integration
def test_demo_script_end_to_end(tmp_path):
    env = {
        **os.environ,
        "PROMPTCLF": str(Path(sys.executable).parent / "promptclf"),
        "OUT": str(tmp_path),
        "EXAMPLES_PER_CLASS": "2",
    }
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "demo.sh")], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "== 4. predict a file" in out.stdout and f"model: {tmp_path}/spam.clf" in out.stdout
    rows = [json.loads(line) for line in (tmp_path / "inbox.jsonl").read_text().splitlines()]
    labels = [r["label"] for r in rows]
    # the clear cases (a cash prize, an account scam, a late-for-dinner note), from two descriptions,
    # 2 generated examples each and 50 unlabeled messages; the borderline ones are not asserted
    # (README: with 32 examples per class the model still misses "WIN a FREE cruise")
    assert (labels[2], labels[5], labels[6]) == ("spam", "ham", "spam"), labels
    assert "Congratulations, you won a 1000 prize! Reply CLAIM now" in out.stdout
