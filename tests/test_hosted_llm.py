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
        real = llm._attempt

        def attempt_then_kill(*a, **kw):
            if llm.usage.calls >= 4 and proc.poll() is None:
                proc.kill()
                proc.wait()
            return real(*a, **kw)

        llm._attempt = attempt_then_kill
        with pytest.raises(BackendError, match="failed after 3 attempts"):
            clf.prompt_train(PROMPTS)
    made = clf._store.count("sports", "generated") + clf._store.count("business", "generated")
    assert made >= 1
    reloaded = PromptClassifier(saved_examples_path=path)
    assert len(reloaded._store) == made
