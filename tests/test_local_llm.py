"""The default local backend: SmolLM2-135M through llama.cpp, offline."""

import numpy as np
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


def test_plain_text_answers_one_line_and_drops_what_runs_long():
    from promptclf.llms import MalformedOutput

    llm = get_llm(None)
    msgs = [{"role": "user", "content": "Write a one-sentence movie review. Only the review."}]
    text = llm.generate_text(msgs, max_tokens=96, seed=1)
    assert text.strip() and "\n" not in text and not text.lstrip().startswith("{")
    with pytest.raises(MalformedOutput, match="cut off at 3 tokens"):
        llm.generate_text([{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=3, seed=1)
    assert llm.usage.calls == 2


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
    # a two-class task: the packaged Gemma (a base model, continuing a list) writes beside SmolLM2
    assert clf.generation_report_["llm"] == "llama-cpp:smollm2 + llama-cpp:gemma3-270m"
    writers = {e.meta["model"] for e in clf._store.examples(["generated"])}
    assert writers == {"llama-cpp:smollm2", "llama-cpp:gemma3-270m"}, writers
    assert path.exists()
    assert set(clf.classes_) == {"sports", "business"}
    # generated examples plus the descriptions' prior: plain topic news must come out right
    assert clf.predict(["The striker scored twice as the team won the league match."]) == ["sports"]
    assert clf.predict(["The company's shares fell after it cut its profit forecast."]) == ["business"]
    # same seed, same data
    again = PromptClassifier(examples_per_class=3, progress=False).prompt_train(prompts)
    assert again.get_data() == clf.get_data()


def test_local_llm_labels_with_a_real_confidence():
    """The packaged model picks a class under a grammar; its probabilities come from its logits."""
    from promptclf.escalation import LLMLink

    llm = get_llm(None)
    link = LLMLink(llm, {"sports": "games, matches and athletes", "business": "companies, markets, stocks"})
    ans = link(
        ["The striker scored twice in the final.", "Shares fell as the bank cut its forecast."], ["sports", "business"]
    )
    assert ans.answered.all() and np.allclose(ans.proba.sum(1), 1)
    assert ((ans.proba > 0) & (ans.proba < 1)).all()  # a distribution, not a vote of one
    choice = llm.choose([{"role": "user", "content": "Say yes."}], ["Yes", "No"])
    assert choice.method == "logprobs"
    assert link.cost.calls == 2 and link.cost.prompt_tokens > 50 and link.cost.completion_tokens >= 2


def test_gemma_loads_without_printing(capfd):
    llm = get_llm("llama-cpp:gemma3-270m")
    choice = llm.choose([{"role": "user", "content": "Is the sky blue? Answer Yes or No."}], ["Yes", "No"])
    assert choice.method == "logprobs"
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


def test_gemma_is_a_base_model_that_continues_a_list():
    """The packaged Gemma 3 270M has no chat template: it is asked for an example by a list to continue,
    and answers with one line that ends where its quote closes."""
    gemma, smol = get_llm("llama-cpp:gemma3-270m"), get_llm(None)
    assert gemma.is_base_model() and not smol.is_base_model()
    frame = 'Sentences from movie reviews that praise the film.\n\nExamples:\n1. "'
    texts = [gemma.continue_text(frame, max_tokens=96, seed=s) for s in (1, 2)]  # the pipeline's budget
    assert all(t.strip() and "\n" not in t and '"' not in t for t in texts), texts
    assert gemma.usage.calls == 2 and gemma.usage.completion_tokens > 0
    from promptclf.llms import MalformedOutput

    with pytest.raises(MalformedOutput, match="cut off at 2 tokens"):
        gemma.continue_text("Once upon a time, in a faraway land,", max_tokens=2, seed=1)


def _example_requests(seeds, *, frame=None, max_tokens=64):
    from promptclf.llms.base import Request

    msgs = [
        {"role": "system", "content": "You write realistic, varied training data. You answer with the text only."},
        {"role": "user", "content": "A sentence from a movie review that praises the film. Write one. Only the text."},
    ]
    return [Request(msgs, {}, temperature=0.8, max_tokens=max_tokens, seed=s, plain=True, frame=frame) for s in seeds]


@pytest.mark.parametrize("model", ["llama-cpp:smollm2", "llama-cpp:gemma3-270m"])
def test_example_requests_are_decoded_side_by_side(model, monkeypatch):
    """Plain-text requests go to llama.cpp as one batch: each gets its own answer, one line, counted like
    a call decoded alone (the same prompt tokens: the chat is formatted as create_chat_completion
    formats it), the same answers on a second run, and a JSON request among them is still answered."""
    from promptclf.llms import MalformedOutput, local

    monkeypatch.setattr(local, "BATCHED", True)  # the default; set so the test does not follow it
    llm = get_llm(model)
    frame = 'Sentences from movie reviews that praise the film.\n\nExamples:\n1. "'
    reqs = _example_requests(range(6), frame=frame, max_tokens=96)
    reqs[4] = _example_requests([4], frame=frame, max_tokens=2)[0]  # runs long: dropped, not cut
    reqs[5].plain = False  # answered alone, under the JSON grammar (its braces and quotes take tokens too)
    reqs[5].schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    reqs[5].max_tokens = 160
    first = dict(llm.generate_json_many(reqs))
    assert sorted(first) == list(range(6))
    # a tiny model rambles past its budget now and then (that answer is dropped): most are kept
    texts = [first[i]["text"] for i in range(4) if not isinstance(first[i], MalformedOutput)]
    assert len(texts) >= 3 and all(t.strip() and "\n" not in t for t in texts), first
    if llm.is_base_model():
        assert not any('"' in t for t in texts), texts  # the list's closing quote ends an answer
    assert len(set(texts)) == len(texts), texts  # each sequence samples with its own seed
    assert isinstance(first[4], MalformedOutput) and "cut off at 2 tokens" in str(first[4])
    if not llm.is_base_model():  # a base model under a JSON grammar may ramble past the budget
        assert isinstance(first[5], dict) and isinstance(first[5]["text"], str)
    batched = llm.usage.prompt_tokens
    assert llm.usage.calls == 6 and llm.usage.completion_tokens > 0

    assert str(dict(llm.generate_json_many(reqs))[0]) == str(first[0])  # a seed gives the same text again
    monkeypatch.setattr(local, "BATCHED", False)
    before = llm.usage.prompt_tokens
    dict(llm.generate_json_many(reqs))
    assert llm.usage.prompt_tokens - before == batched  # one at a time: the same prompts


def test_a_batch_larger_than_the_cache_is_decoded_in_groups():
    """More sequences than a group holds, and prompts that share only their beginning (a person's
    examples differ from request to request): every one is answered, each from its own prompt."""
    from promptclf.llms.llama_batch import BatchDecoder, Prompt

    llm = get_llm(None)
    llama = llm._llama()
    topics = ["a football match", "a cooking recipe", "the weather", "a new phone", "a train delay"]
    prompts = []
    for s, topic in enumerate(topics):
        text, eos = llm._chat_prompt([{"role": "user", "content": f"Write one short sentence about {topic}."}])
        tokens = llama.tokenize(text.encode(), add_bos=False, special=True)
        prompts.append(Prompt(tokens, max_tokens=96, temperature=0.0, seed=s, stop=["\n", eos]))
    small = BatchDecoder(llama, n_ctx=2 * (len(prompts[0].tokens) + 112), n_seq_max=3)  # 2 prompts fit, not 3
    try:
        assert [len(g) for g in small._groups(prompts)] == [2, 2, 1]
        done = small.complete(prompts)
        small.complete(prompts[::-1])  # other groups in between
        again = small.complete(prompts)
    finally:
        small.close()
    assert [d.prompt_tokens for d in done] == [len(p.tokens) for p in prompts]
    assert all(d.text and d.text.strip() for d in done), done
    assert len({d.text for d in done}) == len(topics)  # each answer follows its own prompt
    # each group starts from an empty cache: the same groups give the same texts whatever ran before
    assert [d.text for d in again] == [d.text for d in done]


def test_a_batch_llama_cpp_cannot_decode_is_answered_one_at_a_time(monkeypatch, caplog):
    """If llama.cpp refuses the batch (out of memory for the context, a decode error), the requests are
    answered one at a time instead, with a warning, not lost."""
    from promptclf.llms import llama_batch, local

    monkeypatch.setattr(local, "BATCHED", True)

    def refuse(self, group):
        raise RuntimeError("llama_decode returned 1")

    monkeypatch.setattr(llama_batch.BatchDecoder, "_complete_group", refuse)
    llm = get_llm(None)
    with caplog.at_level("WARNING", logger="promptclf"):
        out = dict(llm.generate_json_many(_example_requests(range(3), max_tokens=96)))
    assert sorted(out) == [0, 1, 2] and llm.usage.calls == 3
    assert any(isinstance(o, dict) and o["text"].strip() for o in out.values()), out
    assert "answering them one at a time" in caplog.text


def test_decoding_threads_are_the_cores_the_process_may_use():
    """llama-cpp-python alone starts half of os.cpu_count() for one-token steps (1 of 2 here, 1.36x
    slower) and all of it for batches; the model is loaded with one thread per core for both, and a
    model asked for with other threads is loaded apart, not handed the first one."""
    from promptclf._cpu import physical_cores

    llama = get_llm(None)._llama()
    assert llama.context_params.n_threads == llama.context_params.n_threads_batch == physical_cores()
    from promptclf.llms.local import LlamaCppLLM

    one = LlamaCppLLM("smollm2", n_threads=1)._llama()
    assert one is not llama and one.context_params.n_threads == one.context_params.n_threads_batch == 1


def _file_type(path) -> str:
    import contextlib
    import io

    from llama_cpp import Llama

    with contextlib.redirect_stderr(io.StringIO()):
        return Llama(model_path=str(path), vocab_only=True, verbose=False).metadata["general.file_type"]


def test_smollm2_requantised_to_q8_0_is_made_once_in_the_cache(tmp_path, monkeypatch, capfd):
    from promptclf.llms import local, requantise

    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path))
    monkeypatch.setattr(requantise, "_FOUND", {})
    assert not local.REQUANTISED  # opt-in
    monkeypatch.setattr(local, "REQUANTISED", True)
    path = local.resolve_gguf("smollm2")
    assert path.parent == tmp_path / "gguf" and [p.name for p in path.parent.iterdir()] == [path.name]
    assert capfd.readouterr() == ("", "")  # llama.cpp logs every tensor it writes: none of it is printed
    assert _file_type(path) == "7"  # LLAMA_FTYPE_MOSTLY_Q8_0
    made = path.stat().st_mtime_ns
    requantise._FOUND.clear()  # as a new process would
    assert local.resolve_gguf("smollm2") == path and path.stat().st_mtime_ns == made  # found, not made again
    path.unlink()  # the cache cleared while the process runs: made again, not a missing file handed to llama.cpp
    assert local.resolve_gguf("smollm2") == path and path.is_file()
    monkeypatch.setattr(local, "REQUANTISED", False)
    packaged = local.resolve_gguf("smollm2")
    assert packaged.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and _file_type(packaged) == "3"  # Q4_1


def test_a_cache_that_cannot_be_written_decodes_the_packaged_file(tmp_path, monkeypatch, caplog):
    import logging

    from promptclf.llms import local, requantise

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("PROMPTCLF_CACHE", str(blocked))
    monkeypatch.setattr(requantise, "_FOUND", {})
    monkeypatch.setattr(local, "REQUANTISED", True)
    with caplog.at_level(logging.WARNING, logger="promptclf"):
        paths = {local.resolve_gguf("smollm2") for _ in range(3)}
    assert [p.name for p in paths] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    warned = [r.getMessage() for r in caplog.records if "could not requantise" in r.getMessage()]
    assert len(warned) == 1 and "decoding it as packaged" in warned[0], warned  # tried once, not at every request
