"""OpenAILLM against llama-cpp-python's real OpenAI-compatible server on 127.0.0.1."""

import pytest

from promptclf import BackendError, PromptClassifier
from promptclf.llms.hosted import OpenAILLM
from promptclf.llms.local import resolve_gguf
from tests.servers.process import free_port, serve

pytestmark = pytest.mark.integration
pytest.importorskip("llama_cpp.server")
PROMPTS = {
    "sports": "News about sports: games, matches, teams and athletes.",
    "business": "News about business: companies, markets, stocks and the economy.",
}


def server_args(port):
    gguf = str(resolve_gguf("smollm2"))
    return ["-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]


def kill_after(llm, method: str, calls: int, proc) -> None:
    """Kill the server just before the request after ``calls`` answered ones (a crash mid-run)."""
    real = getattr(llm, method)

    def attempt_then_kill(*a, **kw):
        if llm.usage.calls >= calls and proc.poll() is None:
            proc.kill()
            proc.wait()
        return real(*a, **kw)

    setattr(llm, method, attempt_then_kill)


def test_structured_output_falls_back_to_json_object_and_trains(tmp_path):
    port = free_port()
    with serve(server_args(port), port, "/v1/models"):
        llm = OpenAILLM("smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=2, max_retries=1)
        clf = PromptClassifier(llm=llm, examples_per_class=3, progress=False)
        clf.prompt_train(PROMPTS)
        assert llm._mode == "json_object"  # this server answers json_schema with HTTP 500
        assert llm.usage.calls > 0 and llm.usage.completion_tokens > 0
        assert set(clf.classes_) == set(PROMPTS)


def test_server_killed_mid_run_keeps_examples(tmp_path):
    port = free_port()
    path = tmp_path / "ex.jsonl"
    with serve(server_args(port), port, "/v1/models") as proc:
        llm = OpenAILLM("smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=1, max_retries=2)
        clf = PromptClassifier(llm=llm, examples_per_class=30, saved_examples_path=path, progress=False)
        kill_after(llm, "_attempt", 4, proc)
        with pytest.raises(BackendError, match="failed after 3 attempts"):
            clf.prompt_train(PROMPTS)
    made = clf._store.count("sports", "generated") + clf._store.count("business", "generated")
    assert made >= 1
    reloaded = PromptClassifier(saved_examples_path=path)
    assert len(reloaded._store) == made


def test_llama_server_as_a_hosted_link_with_logprobs_then_killed():
    """A real llama.cpp server gives top_logprobs (a real confidence); killed mid-run, the texts it had
    not answered keep the classifier's answer, flagged, and what it answered stays."""
    from promptclf import Chain
    from promptclf.escalation import LLMLink

    clf = PromptClassifier(embedder="fake:bow64", progress=False)
    clf.add_data_to_class("sports", ["the team won the match", "a goal in the final minute", "the athlete ran"])
    clf.add_data_to_class("business", ["the company reported profits", "stocks fell on the market", "a bank merger"])
    clf.train()
    texts = [f"report {i}: the club and the firm agreed on a deal" for i in range(8)]
    port = free_port()
    with serve(server_args(port), port, "/v1/models") as proc:
        llm = OpenAILLM("smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=1, max_retries=1)
        choice = llm.choose([{"role": "user", "content": "Is water wet? Answer Yes or No."}], ["Yes", "No"])
        assert choice.method == "logprobs" and 0 < choice.proba[0] < 1
        kill_after(llm, "_choice_attempt", 4, proc)
        link = LLMLink(llm, PROMPTS)
        res = Chain(clf, [link], shares=1.0, combine="last").predict(texts)
    answered = [i for i, a in enumerate(res.answers[link.name]) if a is not None]
    assert len(answered) == 3  # calls 2-4; the fifth found the server gone
    assert all(res.decided_by[i] == link.name and not res.flags[i] for i in answered)
    rest = [i for i in range(len(texts)) if i not in answered]
    assert all(res.flags[i] == [f"failed:{link.name}"] and res.decided_by[i] == "classifier" for i in rest)


def test_auto_does_not_trust_a_small_llm_behind_a_server_with_the_pool(monkeypatch):
    """``llm_label_budget="auto"`` asks hosted LLMs only, and checks each first. The packaged SmolLM2
    behind a real server is one, to the classifier: asked for the sst2 texts the model (real MiniLM) is
    surest of, it agrees with the model about as often as chance, so it labels nothing of the pool.
    The check asks 20 texts here instead of 60 (this server takes about a second per answer)."""
    import json

    from promptclf import selftrain
    from tests.conftest import DATASETS, read_csv

    monkeypatch.setattr(selftrain, "CHECK_PER_CLASS", 10)
    monkeypatch.setattr(selftrain, "CHECK_TEXTS", 20)

    texts = [r["text"] for r in read_csv("sst2", "train")[:400]]
    descriptions = json.loads((DATASETS / "prompts.json").read_text())["sst2"]
    port = free_port()
    with serve(server_args(port), port, "/v1/models"):
        llm = OpenAILLM("smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=2, max_retries=1)
        clf = PromptClassifier(llm=llm, finetune=False, progress=False)
        clf.prompt_train(descriptions, unlabeled=texts, generate=False)
    report = clf.self_training_report_["llm"]
    check = report["check"]
    assert check["texts"] == 20 and check["conclusive"] and not check["trusted"], check
    assert check["kappa"] < 0.3 and llm.usage.calls >= 20 and set(report) == {"check"}
    assert not any(e.meta.get("labeler") == "llm" for e in clf._store)
