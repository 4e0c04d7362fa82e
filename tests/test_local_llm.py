"""The default local backend: SmolLM2-135M through llama.cpp, offline."""

import pytest

from promptclf import PromptClassifier
from promptclf.llms import get_llm

pytestmark = pytest.mark.integration


def test_structured_output_from_packaged_model():
    llm = get_llm(None)
    schema = {"type": "object", "properties": {"text": {"type": "string", "maxLength": 100}}, "required": ["text"]}
    out = llm.generate_json(
        [{"role": "user", "content": "Write a one-line movie review."}], schema, max_tokens=60, seed=1
    )
    assert isinstance(out["text"], str) and out["text"]
    assert llm.usage.calls == 1 and llm.usage.completion_tokens > 0


def test_prompt_train_offline_default_backend(tmp_path):
    prompts = {
        "sports": "News about sports: games, matches, teams and athletes.",
        "business": "News about business: companies, markets, stocks and the economy.",
    }
    path = tmp_path / "ex.jsonl"
    clf = PromptClassifier(examples_per_class=3, saved_examples_path=path, progress=False)
    clf.prompt_train(prompts)
    counts = {c: len(v) for c, v in clf.get_data().items()}
    assert all(n >= 1 for n in counts.values()), counts
    assert path.exists()
    assert set(clf.classes_) == {"sports", "business"}
    # generated examples plus the descriptions' prior: plain topic news must come out right
    assert clf.predict(["The striker scored twice as the team won the league match."]) == ["sports"]
    assert clf.predict(["The company's shares fell after it cut its profit forecast."]) == ["business"]
    # same seed, same data
    again = PromptClassifier(examples_per_class=3, progress=False).prompt_train(prompts)
    assert again.get_data() == clf.get_data()
