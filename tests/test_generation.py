import json

import pytest

from promptclf import BackendError, ConfigurationError, GenerationError, InvalidInputError, PromptClassifier
from promptclf.generation.filters import normalize, reject_reason
from promptclf.generation.pipeline import TEXT_SCHEMA
from promptclf.generation.templates import DEFAULT_TEMPLATES
from promptclf.llms import MalformedOutput, parse_json_object
from tests.conftest import WORDS, FakeEmbedder, FakeLLM, topic_llm

PROMPTS = {"pos": "Reviews that praise the film.", "neg": "Reviews that criticise the film."}


def make(fake_embedder, llm, tmp_path=None, **kw):
    path = tmp_path / "ex.jsonl" if tmp_path is not None else None
    kw = {"examples_per_class": 6, "progress": False, **kw}
    return PromptClassifier(llm=llm, embedder=fake_embedder, saved_examples_path=path, **kw)


def test_prompt_train_generates_keeps_and_reports(fake_embedder):
    clf = make(fake_embedder, topic_llm()).prompt_train(PROMPTS)
    data = clf.get_data()
    assert {c: len(v) for c, v in data.items()} == {"pos": 6, "neg": 6}
    assert clf.predict("the film was wonderful superb delightful") == "pos"
    rep = clf.generation_report_
    assert rep["kept"] == 12 and rep["calls"] >= 12 and rep["llm"] == "fake:fake"
    gen = [e for e in clf._store if e.source == "generated"]
    assert all(e.meta["phase"] == "direct" and e.meta["model"] == "fake:fake" for e in gen)
    assert clf.training_summary_["per_class"]["pos"] == {"prompt": 1, "generated": 6}
    assert clf.get_data(include_generated=False) == {"pos": [], "neg": []}


def test_auto_examples_per_class_follows_the_number_of_classes(fake_embedder, monkeypatch):
    """ "auto" generates more per class for two classes than for three (sizes lowered to stay short)."""
    monkeypatch.setattr("promptclf.generation.pipeline.AUTO_EXAMPLES_PER_CLASS", 3)
    monkeypatch.setattr("promptclf.generation.pipeline.AUTO_EXAMPLES_FEW_CLASSES", {2: 5})
    clf = make(fake_embedder, topic_llm(), examples_per_class="auto").prompt_train(PROMPTS)
    assert {c: len(v) for c, v in clf.get_data().items()} == {"pos": 5, "neg": 5}
    assert clf.generation_report_["examples_per_class"] == 5 and clf.examples_per_class == "auto"
    # your own examples of a third class (no description) make it a three-class task
    clf = make(fake_embedder, topic_llm(), examples_per_class="auto")
    clf.add_data_to_class("meh", ["an average film", "a film neither good nor bad", "fine i guess"])
    clf.prompt_train(PROMPTS)
    assert clf.generation_report_["examples_per_class"] == 3
    assert {c: len(v) for c, v in clf.get_data().items()} == {"pos": 3, "neg": 3, "meh": 3}


def test_three_phases_are_used(fake_embedder):
    llm = topic_llm()
    make(fake_embedder, llm, examples_per_class=20, strategy="summaries").prompt_train(PROMPTS)
    texts = [c["messages"][-1]["content"] for c in llm.calls]
    assert any("Write 8 different short summaries" in t for t in texts)  # generate
    assert any("substantially different" in t for t in texts)  # diversify
    assert any("Summary: summary" in t for t in texts)  # expand


def test_malformed_truncated_duplicate_and_degenerate_output_is_dropped(fake_embedder):
    summaries = {"summaries": [f"topic number {i} here" for i in range(8)]}
    good = [{"text": f"the film was wonderful take {i} of many"} for i in range(6)]
    outputs = [
        summaries,
        '{"text": "the film was wonderful and',  # truncated JSON
        "I think the answer is great",  # prose
        good[0],
        good[0],  # exact duplicate
        {"text": "Reviews that praise the film."},  # parrots the description
        {"text": "so good so good so good so good so good so good"},  # degenerate loop
        *good[1:4],
    ]

    def fallback(messages, schema, n):
        if "summaries" in schema["properties"]:
            return {"summaries": [f"another topic {n} {i}" for i in range(8)]}
        return {"text": f"the film was wonderful take {n} of many"}

    llm = FakeLLM(outputs=outputs, fallback=fallback)
    clf = make(fake_embedder, llm, filter_generated=False, strategy="summaries")
    clf.prompt_train({"pos": PROMPTS["pos"]} | {"neg": PROMPTS["neg"]})
    dropped = clf.generation_report_["classes"]["pos"]["dropped"]
    assert dropped["malformed"] == 2
    assert dropped["duplicate"] == 1
    assert dropped["copies_description"] == 1
    assert dropped["degenerate"] == 1
    assert len(clf.get_data()["pos"]) == 6


def test_crash_mid_run_keeps_everything_and_resume_finishes(fake_embedder, tmp_path):
    base = topic_llm()
    n_calls = {"n": 0}

    def flaky(messages, schema, n):
        n_calls["n"] += 1
        if n_calls["n"] == 7:
            raise BackendError("server went away")
        return base.fallback(messages, schema, n)

    clf = make(fake_embedder, FakeLLM(fallback=flaky), tmp_path)
    with pytest.raises(BackendError, match="server went away"):
        clf.prompt_train(PROMPTS)
    made = clf._store.count("pos", "generated")
    assert made > 0
    on_disk = [json.loads(x) for x in (tmp_path / "ex.jsonl").read_text().splitlines()]
    assert sum(len(r["examples"]) for r in on_disk) == made

    # a new process (new classifier on the same file) resumes: nothing made is lost or redone
    llm2 = topic_llm(seed=1)
    clf2 = make(fake_embedder, llm2, tmp_path).prompt_train(PROMPTS)
    assert clf2._store.count("pos", "generated") == 6 and clf2._store.count("neg", "generated") == 6
    first = [e.text for e in clf._store if e.class_name == "pos"]
    assert [e.text for e in clf2._store if e.class_name == "pos"][: len(first)] == first

    # a third run with the same prompts generates nothing
    llm3 = topic_llm()
    make(fake_embedder, llm3, tmp_path).prompt_train(PROMPTS)
    assert llm3.calls == []


def test_changed_prompt_replaces_generated_examples_only(fake_embedder):
    clf = make(fake_embedder, topic_llm())
    clf.add_data_to_class("pos", "my own glowing review of a charming film")
    clf.prompt_train(PROMPTS)
    old = set(clf.get_data()["pos"])
    clf._llm = topic_llm(seed=5)
    clf.prompt_train({"pos": "Reviews full of praise for a film.", "neg": PROMPTS["neg"]})
    new = set(clf.get_data()["pos"])
    assert "my own glowing review of a charming film" in new
    assert not (old - {"my own glowing review of a charming film"}) & new
    assert clf._store.count("pos", "generated") == 6
    assert clf.prompts_["pos"] == "Reviews full of praise for a film."


def test_user_examples_appear_in_prompts(fake_embedder):
    llm = topic_llm()
    clf = make(fake_embedder, llm)
    clf.add_data_to_class("pos", "my own glowing review of a charming film")
    clf.prompt_train(PROMPTS)
    pos_prompts = [c["messages"][-1]["content"] for c in llm.calls if "praise" in c["messages"][-1]["content"]]
    assert all("my own glowing review" in p for p in pos_prompts)


def test_class_with_data_but_no_prompt_is_trained_on_its_data(fake_embedder):
    clf = make(fake_embedder, topic_llm())
    clf.add_data_to_class("other", ["weather report for tuesday", "rain and wind later", "sunny weekend ahead"])
    clf.prompt_train(PROMPTS)
    assert list(clf.classes_) == ["neg", "other", "pos"]
    assert clf.predict("rain and sunny weather") == "other"


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ({}, "prompts is empty"),
        ({"pos": ""}, "description of class 'pos' is empty"),
        ({"pos": "Praise."}, "at least two classes"),
        (["pos"], "must be a dict"),
        ({"": "x", "b": "y"}, "class name must not be empty"),
    ],
)
def test_bad_prompts(fake_embedder, prompts, message):
    with pytest.raises(InvalidInputError, match=message):
        make(fake_embedder, topic_llm()).prompt_train(prompts)


def test_same_seed_same_data(fake_embedder):
    a = make(fake_embedder, topic_llm()).prompt_train(PROMPTS)
    b = make(fake_embedder, topic_llm()).prompt_train(PROMPTS)
    assert a.get_data() == b.get_data()
    assert [e.meta for e in a._store] == [e.meta for e in b._store]


def test_unknown_strategy(fake_embedder):
    with pytest.raises(
        ConfigurationError, match=r"strategy must be one of \['direct', 'summaries'\], got 'magic'"
    ) as e:
        make(fake_embedder, topic_llm(), strategy="magic").prompt_train(PROMPTS)
    assert e.value.setting == "strategy"


def test_off_class_generations_are_dropped(fake_embedder):
    def drift(messages, schema, n):  # every text for 'pos' reads like the 'neg' description
        return {"text": f"reviews that criticise the film, take {n}"}

    clf = make(FakeEmbedder(dim=1024), FakeLLM(fallback=drift))
    with pytest.raises(GenerationError, match="class 'pos': the LLM produced no usable example") as e:
        clf.prompt_train(PROMPTS)
    assert e.value.class_name == "pos" and e.value.dropped.get("closer_to_other_class", 0) > 0
    assert set(e.value.report["classes"]) == {"pos", "neg"}  # every class was tried before the error
    assert clf._store.count("pos", "generated") == 0
    # the same description again: not retried (it would fail again at the same cost), and the error says so
    calls = len(clf._llm.calls)
    with pytest.raises(GenerationError, match=r"in an earlier run with this description; .*regenerate=True"):
        clf.prompt_train(PROMPTS)
    assert len(clf._llm.calls) == calls


def test_template_override_and_validation(fake_embedder):
    llm = topic_llm()
    make(fake_embedder, llm, templates={"system_plain": "SYSTEM-X"}).prompt_train(PROMPTS)
    assert llm.calls and all(c["messages"][0]["content"] == "SYSTEM-X" for c in llm.calls)
    with pytest.raises(ConfigurationError, match=r"templates must be a dict whose keys are among .*\(got 'nope'\)"):
        make(fake_embedder, topic_llm(), templates={"nope": "x"}).prompt_train(PROMPTS)


def test_examples_are_asked_as_plain_text_and_summaries_as_json(fake_embedder):
    """A backend with a plain-text path gets every example request there; summaries stay JSON."""

    class PlainLLM(FakeLLM):
        def __init__(self):
            super().__init__(fallback=topic_llm().fallback)
            self.plain: list[list[dict[str, str]]] = []

        def generate_text(self, messages, *, temperature=0.8, max_tokens=256, seed=None):
            self.plain.append(messages)
            assert max_tokens <= 128  # long answers are dropped early, not decoded to the end
            return "Sure! Here's an example: " + self.fallback(messages, TEXT_SCHEMA, len(self.plain))["text"]

    llm = PlainLLM()
    clf = make(fake_embedder, llm, strategy="summaries").prompt_train(PROMPTS)
    assert llm.plain and all(m[0]["content"] == DEFAULT_TEMPLATES["system_plain"] for m in llm.plain)
    assert llm.calls and all("summaries" in c["schema"]["properties"] for c in llm.calls)
    texts = [t for ts in clf.get_data().values() for t in ts]
    assert texts and not any(t.startswith("Sure") for t in texts)  # the lead-in is stripped


def test_plain_text_through_a_json_only_backend():
    """The base class answers plain-text requests through ``generate_json``, so any backend works."""
    from promptclf.llms import Request

    llm = FakeLLM(outputs=[{"text": "A fine film."}, {"text": ""}, {"nope": 1}])
    reqs = [Request([{"role": "user", "content": "x"}], TEXT_SCHEMA, plain=True) for _ in range(3)]
    got = dict(llm.generate_json_many(reqs))
    assert got[0] == {"text": "A fine film."}
    assert isinstance(got[1], MalformedOutput) and isinstance(got[2], MalformedOutput)
    assert llm.calls[0]["schema"]["required"] == ["text"]


def test_strip_preamble():
    from promptclf.generation.filters import strip_preamble

    assert strip_preamble("Sure! Here's an example of a review: The plot drags.") == "The plot drags."
    assert strip_preamble("Example 2: Shares fell.") == "Shares fell."
    assert strip_preamble("The film was great: really.") == "The film was great: really."
    assert strip_preamble("Example:") == "Example:"  # nothing after it: left for the filters to judge


def test_filters():
    assert normalize('  "hello   world"  ') == "hello world"
    assert reject_reason("ok", "d", "c") == "too_short"
    assert reject_reason("1. one thing 2. another thing", "d", "c") == "list_not_text"
    assert reject_reason("Category: pos. A great film indeed.", "d", "pos") == "prompt_leak"
    assert reject_reason("A great film that I loved.", "Reviews that praise the film.", "pos") is None


def test_text_about_an_example_is_unwrapped_or_dropped(monkeypatch):
    """``ECHO_FILTER`` (a benchmark switch, off by default) drops text about being an example."""
    from promptclf.generation.filters import unwrap_quoted

    d = "Reviews that criticise the film."
    assert reject_reason("Here's an example:", d, "neg") is None  # off: kept, as before
    monkeypatch.setattr("promptclf.generation.filters.ECHO_FILTER", True)
    assert reject_reason("Here's an example:", d, "neg") == "about_an_example"
    assert reject_reason("I can certainly help with that, the film was dull.", d, "neg") == "about_an_example"
    assert reject_reason("The plot is a textbook example of lazy writing.", d, "neg") == "about_an_example"
    assert reject_reason("A realistic review: the film was dull.", d, "neg") == "about_an_example"
    # the example inside: the longest quoted part that is a text of its own
    wrapped = 'One example of such a text is: "The plot drags and the jokes fall flat." Or "it is bad".'
    assert unwrap_quoted(wrapped, d) == "The plot drags and the jokes fall flat."
    assert unwrap_quoted('An example is "an example".', d) == 'An example is "an example".'  # nothing better inside
    assert unwrap_quoted('The critic called it "a slog from start to end".', d) == (
        'The critic called it "a slog from start to end".'  # a quote in a real example is left alone
    )
    # words the description itself uses are the class's own, not talk about the example
    own = "Sentences that give an example of style."
    assert reject_reason("An example of good style in a sentence.", own, "c") is None


def test_generation_keeps_the_example_inside_text_about_one(fake_embedder, monkeypatch):
    """The fake criticises in the words the pos/neg fake uses, wrapped in talk about an example or not."""
    monkeypatch.setattr("promptclf.generation.filters.ECHO_FILTER", True)
    topic = topic_llm().fallback
    wrapped = ['One example of such a text could be: "{}"', "Here's an example:", "{}"]

    def answer(messages, schema, n):
        text = topic(messages, schema, n)["text"]
        return {"text": text if "praise" in messages[-1]["content"] else wrapped[n % 3].format(text)}

    clf = make(fake_embedder, FakeLLM(fallback=answer), examples_per_class=6).prompt_train(PROMPTS)
    kept = clf.get_data()["neg"]
    assert len(kept) == 6 and not any("example" in t.lower() for t in kept)
    assert clf.generation_report_["classes"]["neg"]["dropped"]["about_an_example"] >= 1


def test_a_class_whose_examples_are_mostly_about_examples_gets_others(fake_embedder, monkeypatch):
    """With ``ECHO_MAJORITY`` at 0.5 (a switch; the default 1.0 never drops), a class where most kept
    texts talk about being an example drops them and generates others; a class where such text is a
    minority keeps it."""
    topic = topic_llm().fallback
    wrapped = ['A realistic example: "{}"', "One example of such a text could be: {}"]

    def answer(messages, schema, n):
        text = topic(messages, schema, n)["text"]
        if "praise" in messages[-1]["content"]:
            return {"text": f"{text}, to give one example" if n % 4 == 0 else text}  # a minority
        return {"text": text if n % 3 == 0 else wrapped[n % 2].format(text)}  # most of them

    def about(texts):
        return sum("example" in t.lower() for t in texts)

    def kept(majority):
        monkeypatch.setattr("promptclf.generation.filters.ECHO_MAJORITY", majority)
        clf = make(fake_embedder, FakeLLM(fallback=answer), examples_per_class=8).prompt_train(PROMPTS)
        return clf.get_data(), clf.generation_report_["classes"]

    data, report = kept(1.0)  # never: the default
    assert about(data["neg"]) > len(data["neg"]) / 2 and about(data["pos"]) >= 1
    data, report = kept(0.5)
    assert len(data["neg"]) == 8 and about(data["neg"]) == 0
    assert report["neg"]["dropped"]["about_an_example"] >= 4
    assert about(data["pos"]) >= 1 and "about_an_example" not in report["pos"]["dropped"]


def test_parse_json_object():
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! {"a": "x\ny"} done') == {"a": "x\ny"}
    for bad in ["", "[1, 2]", '{"a": ', "no json"]:
        with pytest.raises(MalformedOutput):
            parse_json_object(bad)


def test_resume_filters_what_an_interrupted_run_made(fake_embedder, tmp_path):
    """A run that stopped after a class had its examples but before the embedding filter ran:
    the next run filters them, and its report never counts negative examples."""
    from promptclf.classifier import prompt_sha
    from promptclf.store import ExampleStore

    store = ExampleStore(tmp_path / "ex.jsonl")
    meta = {"model": "fake:fake", "phase": "direct", "prompt_sha": prompt_sha(PROMPTS["pos"])}
    made = [f"a wonderful superb film take {i}" for i in range(6)]
    made[5] = "a wonderful superb film take 0."  # the same words as take 0: a near-duplicate
    for t in made:
        store.add("pos", [t], source="generated", meta=meta)
    llm = topic_llm()
    clf = make(fake_embedder, llm, tmp_path).prompt_train(PROMPTS)
    rep = clf.generation_report_["classes"]["pos"]
    assert rep["dropped"] == {"near_duplicate": 1}
    assert "a wonderful superb film take 0." not in clf.get_data()["pos"]
    assert clf._store.count("pos", "generated") == 6  # topped up again
    assert rep["kept"] == 1 and all(r["kept"] >= 0 for r in clf.generation_report_["classes"].values())


def short_llm():
    """Writes three distinct texts per class, then only repeats itself."""
    from tests.conftest import WORDS

    def answer(messages, schema, n):
        cls = "pos" if "praise" in messages[-1]["content"] else "neg"
        return {"text": f"{WORDS[cls][n % 3]} film, scene {n % 3}, i really {cls}-rate it"}

    return FakeLLM(fallback=answer)


def test_a_class_that_came_up_short_is_not_regenerated_on_every_run(fake_embedder, tmp_path):
    llm = short_llm()
    clf = make(fake_embedder, llm, tmp_path, filter_generated=False)
    clf.prompt_train(PROMPTS)
    assert 0 < clf._store.count("pos", "generated") < 6
    calls = len(llm.calls)
    clf.prompt_train(PROMPTS)  # same descriptions, same setting: nothing new to try
    assert len(llm.calls) == calls
    assert set(clf.generation_report_["skipped_short_before"]) == {"pos", "neg"}
    # remembered on disk too: a new process with the same store does not try again either
    llm2 = short_llm()
    make(fake_embedder, llm2, tmp_path, filter_generated=False).prompt_train(PROMPTS)
    assert llm2.calls == []
    # asked to, or asked for more, it tries again
    clf.prompt_train(PROMPTS, regenerate=True)
    assert len(llm.calls) > calls
    calls = len(llm.calls)
    clf.set_params(examples_per_class=8).prompt_train(PROMPTS)
    assert len(llm.calls) > calls


def test_descriptions_alone_train_without_the_llm(fake_embedder):
    llm = topic_llm()
    clf = make(fake_embedder, llm).prompt_train(PROMPTS, generate=False)
    assert llm.calls == [] and list(clf.classes_) == ["neg", "pos"]
    assert clf.predict("the film deserves praise") == "pos"


def test_multi_label_keeps_examples_near_a_co_occurring_class(monkeypatch):
    from promptclf.generation import pipeline

    # 'annoyed' examples share most words with the 'angry' description: nearest to it, yet their own
    # description is second nearest. Single-label: drift, dropped; multi-label: kept (classes co-occur)
    prompts = {
        "angry": "Furious shouting rage anger.",
        "annoyed": "Irritated by noise.",
        "calm": "Peaceful quiet relaxed morning.",
    }

    def texts(messages, schema, n):
        prompt = json.dumps(messages)
        if "Irritated" in prompt:
            return {"text": f"irritated furious shouting rage anger take {n}"}
        if "Furious" in prompt:
            return {"text": f"rage and shouting at the referee take {n}"}
        return {"text": f"peaceful quiet relaxed take {n}"}

    def annoyed_kept(multi_label: bool) -> int:
        clf = make(FakeEmbedder(dim=1024), FakeLLM(fallback=texts), multi_label=multi_label)
        try:
            clf.prompt_train(prompts)
        except GenerationError as e:
            assert e.class_name == "annoyed" and e.dropped.get("closer_to_other_class", 0) > 0
        assert clf._store.count("angry", "generated") == clf._store.count("calm", "generated") == 6
        return clf._store.count("annoyed", "generated")

    assert annoyed_kept(multi_label=False) == 0
    assert annoyed_kept(multi_label=True) == 6
    # the rank is the rule: at 1 a multi-label class is held to its own description being nearest
    monkeypatch.setattr(pipeline, "MULTI_LABEL_AGREEMENT_RANK", 1)
    assert annoyed_kept(multi_label=True) == 0


class BaseFake(FakeLLM):
    """A base model: it continues text (``continue_text``) and records what it was asked to continue."""

    def __init__(self):
        super().__init__(model="base")
        self.frames: list[str] = []

    def is_base_model(self) -> bool:
        return True

    def continue_text(self, frame, *, temperature=0.8, max_tokens=256, seed=None):
        self.frames.append(frame)
        self.usage.add(7, 3)
        cls = "pos" if "praise" in frame else "neg"
        n = len(self.frames)
        return f"{' '.join(WORDS[cls][n % 8 :][:3] or WORDS[cls][:3])} base take {n} of the film"


def test_two_writers_share_each_class_and_a_base_model_continues_a_list(fake_embedder):
    """Each class's examples are shared evenly between the LLMs that write them; a base model gets the
    request as a numbered list to continue, the user's own examples listed first; the report and each
    example's meta say who wrote what."""
    from promptclf.classifier import prompt_sha
    from promptclf.embedders import EmbeddingCache
    from promptclf.generation import GenerationContext, generate_for_classes
    from promptclf.store import ExampleStore

    store = ExampleStore()
    store.add("pos", ["my own praise of the film"], source="user")
    chat, base = topic_llm(), BaseFake()
    ctx = GenerationContext(
        store=store, llm=chat, embedder=fake_embedder, cache=EmbeddingCache(), descriptions=PROMPTS,
        examples_per_class=10, filter_generated=False, more_writers=(base,),
    )  # fmt: skip
    rep = generate_for_classes(ctx, list(PROMPTS), {c: prompt_sha(d) for c, d in PROMPTS.items()})
    by = {c: rep["classes"][c]["by_writer"] for c in PROMPTS}
    assert by == {"pos": {"fake:fake": 5, "fake:base": 5}, "neg": {"fake:fake": 5, "fake:base": 5}}, by
    models = [e.meta["model"] for e in store.examples(["generated"])]
    assert models.count("fake:base") == 10 and models.count("fake:fake") == 10
    assert rep["llm"] == "fake:fake + fake:base" and rep["calls"] == len(chat.calls) + len(base.frames)
    # the frame: the description, the user's example as item 1, then item 2 opened for the model
    pos_frames = [f for f in base.frames if "praise" in f]
    assert pos_frames[0] == 'Reviews that praise the film.\n\nExamples:\n1. "my own praise of the film"\n2. "'
    assert all(f == 'Reviews that criticise the film.\n\nExamples:\n1. "' for f in base.frames if "criticise" in f)
    assert all("Write one realistic example" in c["messages"][-1]["content"] for c in chat.calls)


def test_a_second_writer_beside_the_default_llm_on_few_class_tasks(fake_embedder, tmp_path):
    """With ``llm=None`` Gemma 3 270M writes beside SmolLM2 on a task of two to four classes (resolving
    it loads nothing) and "auto" asks each writer for what one would write; a number you set is shared
    out; five classes, a named LLM or summaries: one writer. A saved model keeps ``llm=None``, so a loaded copy
    writes with the same LLMs."""
    from promptclf.generation import examples_per_class_for

    clf = PromptClassifier(embedder=fake_embedder)
    assert [[w.id for w in clf._more_writers(k)] for k in (2, 3, 4)] == [["llama-cpp:gemma3-270m"]] * 3
    assert clf._more_writers(5) == clf._more_writers(6) == ()
    assert PromptClassifier(llm="llama-cpp:smollm2")._more_writers(2) == ()
    assert PromptClassifier(strategy="summaries")._more_writers(2) == ()
    assert examples_per_class_for("auto", 2, writers=2) == 2 * examples_per_class_for("auto", 2) == 192
    assert examples_per_class_for("auto", 3, writers=2) == 2 * examples_per_class_for("auto", 3) == 128
    assert examples_per_class_for("auto", 4, writers=2) == 2 * examples_per_class_for("auto", 4) == 64
    assert examples_per_class_for("auto", 4) == 32 and examples_per_class_for(50, 2, writers=2) == 50
    trained = make(fake_embedder, None, examples_per_class=1)
    trained.prompt_train(PROMPTS, generate=False)
    assert trained._llm.id == "llama-cpp:smollm2"  # resolved, as after a generation
    trained.save(tmp_path / "m.clf")
    assert PromptClassifier.load(tmp_path / "m.clf", embedder=fake_embedder).llm is None
