"""Escalation chains with scripted LLMs: forwarding, the backward pass, verification, fusion, a failing
link, routing fit on labeled data, feedback into training, and the hosted backend's log-probabilities
read from a real HTTP server."""

from __future__ import annotations

import numpy as np
import pytest

from promptclf import Chain, PromptClassifier
from promptclf.errors import BackendError, ConfigurationError, InvalidInputError
from promptclf.escalation import LinkAnswers, LLMLink
from promptclf.escalation.chain import forward, margin
from promptclf.escalation.links import rank_fuse
from promptclf.llms import LLM, MalformedOutput
from promptclf.llms.base import Choice, match_option
from promptclf.llms.hosted import OpenAILLM
from tests.conftest import FakeLLM
from tests.servers.scripted import Reply, ScriptedServer, completion


class ScriptedLabeler(LLM):
    """Picks a class by ``rule(text)`` -> (class, probability of it), or raises what the rule returns.
    Verification questions ("Does the category fit") get ``verify(text, label)`` as P(Yes)."""

    kind = "scripted-test"

    def __init__(self, rule, verify=None, fail_after: int | None = None, name: str = "s") -> None:
        super().__init__(name)
        self.rule, self.verify, self.fail_after = rule, verify, fail_after
        self.seen: list[str] = []

    def generate_json(self, messages, schema, **kw):  # pragma: no cover - choose is overridden
        raise NotImplementedError

    def choose(self, messages, options, *, seed=None):
        content = messages[-1]["content"]
        text = content.split("Text: ", 1)[1].split("\n\n", 1)[0]
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise BackendError("server down", backend=self.id, attempts=3)
        self.seen.append(text)
        self.usage.add(20, 1)
        if list(options) == ["Yes", "No"]:
            label = content.split("Category: ", 1)[1].split(":", 1)[0]
            p = self.verify(text, label)
            return Choice(0 if p >= 0.5 else 1, np.array([p, 1 - p]), "logprobs")
        out = self.rule(text)
        if isinstance(out, Exception):
            raise out
        cls, p = out
        proba = np.full(len(options), (1 - p) / max(len(options) - 1, 1))
        proba[list(options).index(cls)] = p
        return Choice(list(options).index(cls), proba, "logprobs")


TRUTH_WORDS = {
    "pos": ("wonderful", "superb", "delightful", "moving"),
    "neg": ("dreadful", "boring", "tedious", "awful"),
}


def truth(text: str) -> str:
    return "pos" if any(w in text for w in TRUTH_WORDS["pos"]) else "neg"


def oracle(p_right: float = 0.95):
    return ScriptedLabeler(lambda t: (truth(t), p_right))


def liar():
    return ScriptedLabeler(lambda t: ("neg" if truth(t) == "pos" else "pos", 0.99), name="liar")


@pytest.fixture
def texts():
    # half clear, half ambiguous for the bag-of-words classifier (one word of each side, or none)
    rng = np.random.default_rng(1)
    out = []
    for i in range(40):
        side = "pos" if i % 2 else "neg"
        if i < 20:
            ws = rng.choice(TRUTH_WORDS[side], size=3, replace=False)
            out.append(f"a {' '.join(ws)} movie {i}")
        else:
            other = "neg" if side == "pos" else "pos"
            out.append(f"{TRUTH_WORDS[side][i % 4]} plot but {TRUTH_WORDS[other][0]}ish acting, film {i}")
    return out


def test_share_forwards_the_least_confident(trained, texts):
    llm = oracle()
    chain = Chain(trained, [llm], shares=0.25)
    res = chain.predict(texts)
    proba = trained.predict_proba(texts)
    least = set(np.argsort(margin(proba), kind="stable")[:10])
    assert {texts[i] for i in least} == set(llm.seen)
    assert res.escalated_share() <= 0.25
    assert res.costs[llm.id]["calls"] == 10 and res.costs["classifier"]["calls"] == 0
    for i in range(len(texts)):
        assert (res.answers[llm.id][i] is not None) == (i in least)
    assert all(not f for f in res.flags)


def test_nothing_escalated_without_a_share(trained, texts):
    llm = oracle()
    res = Chain(trained, [llm]).predict(texts)
    assert llm.seen == [] and set(res.decided_by) == {"classifier"}
    assert res.labels == trained.predict(texts)


def test_bad_shares_and_combine_are_named(trained, texts):
    with pytest.raises(ConfigurationError, match="shares") as e:
        Chain(trained, [oracle()], shares=1.5).predict(texts)
    assert e.value.setting == "shares"
    with pytest.raises(ConfigurationError, match="shares"):
        Chain(trained, [oracle(), oracle()], shares=[0.5]).predict(texts)
    with pytest.raises(ConfigurationError, match="combine"):
        Chain(trained, [oracle()], combine="best").predict(texts)


def answers(proba, verified=None):
    return LinkAnswers(np.asarray(proba, dtype=float), verified=None if verified is None else np.asarray(verified))


def test_backward_pass_ranks_confidences():
    # link 0 is unsure of texts 0-1 (margins 0.1, 0.3), sure of 2-3; both go on at share 0.5.
    p0 = answers([[0.55, 0.45], [0.65, 0.35], [0.9, 0.1], [0.95, 0.05]])
    # link 1: confident on text 0 (margin 0.8), unsure on text 1 (margin 0.02)
    p1 = answers([[0.1, 0.9], [0.49, 0.51], [0.5, 0.5], [0.5, 0.5]])
    full = [p0, p1]
    routing = [{"share": 0.5}, {}]
    last = forward(4, lambda i, idx: full[i].take(idx), routing, "last")
    rank = forward(4, lambda i, idx: full[i].take(idx), routing, "rank")
    assert last.label.tolist() == [1, 1, 0, 0] and last.decided.tolist() == [1, 1, 0, 0]
    # rank: link 0's ranks among its 4 texts are 0.25, 0.5; link 1's among its 2 are 1.0, 0.5
    assert rank.label.tolist() == [1, 1, 0, 0]  # text 1 ties at 0.5: the later link keeps it
    assert rank.decided.tolist() == [1, 1, 0, 0]
    # with a reference that ranks link 1's 0.02 margin at the bottom, text 1 goes back to link 0
    ref = [np.sort(margin(p0.proba)), np.array([0.05, 0.5, 0.7, 0.8])]
    rank_ref = forward(4, lambda i, idx: full[i].take(idx), routing, "rank", ref)
    assert rank_ref.label.tolist() == [1, 0, 0, 0] and rank_ref.decided.tolist() == [1, 0, 0, 0]


def test_verification_routes_on_yes_probability(trained, texts):
    # link 1 verifies itself: it says "yes" only for clear texts; the unsure ones go on to link 2
    first = ScriptedLabeler(lambda t: (truth(t), 0.9), verify=lambda t, lab: 0.9 if "ish" not in t else 0.1)
    second = oracle()
    second.model = "second"
    chain = Chain(trained, [LLMLink(first, verify=True), second], shares=[1.0, 0.5])
    res = chain.predict(texts)
    name = chain._links()[1].name
    v = res.verified[name]
    assert np.all(~np.isnan(v))  # every text reached link 1 and was verified
    assert set(second.seen) == {t for t in texts if "ish" in t}  # the "no" ones, half of 40
    assert res.costs[name]["calls"] == 80  # a label and a verification per text


def test_rank_fuse_weights_and_missing_rows():
    a = np.array([[0.9, 0.1], [np.nan, np.nan], [0.6, 0.4]])
    b = np.array([[0.2, 0.8], [0.3, 0.7], [np.nan, np.nan]])
    c = np.array([[0.3, 0.7], [np.nan, np.nan], [np.nan, np.nan]])
    equal = rank_fuse([a, b, c], [1, 1, 1])
    assert equal[0].argmax() == 1  # two of three rank class 1 first
    trusted = rank_fuse([a, b, c], [5, 1, 1])
    assert trusted[0].argmax() == 0  # a's weight outvotes the two others
    assert equal[1].argmax() == 1 and equal[2].argmax() == 0  # only one member answered
    assert np.allclose(np.nansum(equal, axis=1), 1)
    assert np.isnan(rank_fuse([a[1:2]], [1])).all()


def test_fused_link_in_a_chain(trained, texts):
    good, bad = oracle(0.8), liar()
    link = LLMLink([good, bad], weights=[3.0, 1.0])
    res = Chain(trained, [link], shares=1.0).predict(texts)
    assert res.labels == [truth(t) for t in texts]
    assert link.name == f"{good.id}+{bad.id}"


def test_a_failing_link_keeps_earlier_answers_and_the_run_goes_on(trained, texts):
    down = ScriptedLabeler(lambda t: (truth(t), 0.99), fail_after=4, name="down")
    after = oracle()
    after.model = "after"
    res = Chain(trained, [down, after], shares=[0.5, 0.0]).predict(texts)
    names = list(res.answers)
    assert len(down.seen) == 4
    failed = [i for i, f in enumerate(res.flags) if f]
    assert len(failed) == 16 and all(res.flags[i] == [f"failed:{names[1]}"] for i in failed)
    # what failed went on to the next link, which answered it
    assert {texts[i] for i in failed} == set(after.seen)
    assert all(res.decided_by[i] == names[2] for i in failed)
    answered = [i for i, a in enumerate(res.answers[names[1]]) if a is not None]
    assert len(answered) == 4 and all(res.decided_by[i] == names[1] for i in answered)


def test_a_failing_last_link_leaves_the_classifier_answer(trained, texts):
    down = ScriptedLabeler(lambda t: (truth(t), 0.99), fail_after=0, name="down")
    res = Chain(trained, [down], shares=0.5).predict(texts)
    flagged = [i for i, f in enumerate(res.flags) if f]
    assert len(flagged) == 20
    base = trained.predict(texts)
    assert [res.labels[i] for i in flagged] == [base[i] for i in flagged]
    assert all(res.decided_by[i] == "classifier" for i in flagged)


def test_malformed_answers_count_as_no_answer(trained, texts):
    llm = ScriptedLabeler(lambda t: MalformedOutput("junk") if "ish" in t else (truth(t), 0.9))
    res = Chain(trained, [llm], shares=1.0).predict(texts)
    name = list(res.answers)[1]
    assert sum(bool(f) for f in res.flags) == 20
    assert all(res.answers[name][i] is None for i, t in enumerate(texts) if "ish" in t)


def test_fit_routing_escalates_to_a_good_llm_and_thresholds_route_alone(trained, texts):
    labels = [truth(t) for t in texts]
    llm = ScriptedLabeler(lambda t: (truth(t), 0.9 if "ish" in t else 0.99))
    chain = Chain(trained, [llm])
    base_acc = np.mean(np.array(trained.predict(texts)) == np.array(labels))
    report = chain.fit_routing(texts, labels)
    assert report.chosen["accuracy"] >= base_acc
    assert report.chosen["escalated"] > 0 and report.chosen["accuracy"] == 1.0
    assert report.curve[0]["escalated"] == 0.0 and len(report.curve) > 2
    assert report.links[1]["accuracy"] == 1.0 and "skipped" not in report.links[1]
    # thresholds: one text at a time takes the same route as in a batch
    batch = chain.predict(texts)
    single = [chain.predict([t]) for t in texts]
    assert [s.decided_by[0] for s in single] == batch.decided_by
    assert [s.labels[0] for s in single] == batch.labels


def test_fit_routing_skips_a_worse_link_and_escalates_nothing(trained, texts):
    labels = [truth(t) for t in texts]
    chain = Chain(trained, [liar()])
    report = chain.fit_routing(texts, labels)
    assert "skipped" in report.links[1] and report.chosen["escalated"] == 0.0
    res = chain.predict(texts)
    assert set(res.decided_by) == {"classifier"}


def test_fit_routing_needs_a_significant_gain(trained, texts):
    # an LLM that is right only slightly more often than the classifier on the forwarded texts
    labels = [truth(t) for t in texts]
    base = trained.predict(texts)
    wrong = [i for i, (p, y) in enumerate(zip(base, labels)) if p != y]
    fixes = {texts[i] for i in wrong[:1]}

    def rule(t):
        return (truth(t), 0.9) if t in fixes else (base[texts.index(t)], 0.9)

    report = Chain(trained, [ScriptedLabeler(rule)]).fit_routing(texts, labels)
    assert report.chosen["escalated"] == 0.0 and "more than chance" in report.reason


def test_fit_routing_fits_fusion_weights(trained, texts):
    labels = [truth(t) for t in texts]
    link = LLMLink([oracle(0.9), liar(), ScriptedLabeler(lambda t: ("neg", 0.6), name="neg")])
    report = Chain(trained, [link]).fit_routing(texts, labels)
    w = dict(zip([x.id for x in link.llms], link.weights))
    assert w[link.llms[0].id] > 0 and w[link.llms[1].id] == 0 and w[link.llms[2].id] == 0
    assert report.links[1]["accuracy"] == 1.0


def test_fit_routing_checks_its_input(trained, texts):
    chain = Chain(trained, [oracle()])
    with pytest.raises(InvalidInputError, match="labels"):
        chain.fit_routing(texts, ["pos"])
    with pytest.raises(InvalidInputError, match="among the classes"):
        chain.fit_routing(texts[:2], ["pos", "maybe"])
    with pytest.raises(ConfigurationError, match="max_share"):
        chain.fit_routing(texts[:2], ["pos", "neg"], max_share=2)


def test_feedback_adds_llm_answers_and_shrinks_escalation(trained, texts, tmp_path):
    labels = [truth(t) for t in texts]
    chain = Chain(trained, [oracle()])
    chain.fit_routing(texts, labels)
    res = chain.predict(texts)
    before = res.escalated_share()
    added = chain.feedback(texts, res)
    assert added == sum(d != "classifier" for d in res.decided_by) > 0
    llm_examples = [e for e in trained._store if e.source == "llm"]
    assert len(llm_examples) == added and all(e.meta["confidence"] > 0 for e in llm_examples)
    trained.train()
    assert (
        trained.training_summary_["per_class"]["pos"]["llm"] + trained.training_summary_["per_class"]["neg"]["llm"] > 0
    )
    after = chain.predict(texts).escalated_share()
    assert after < before
    trained.save(tmp_path / "m.clf")
    again = PromptClassifier.load(tmp_path / "m.clf")
    assert sum(e.source == "llm" for e in again._store) == added


def test_add_data_to_class_source_is_checked(trained):
    with pytest.raises(InvalidInputError, match="source"):
        trained.add_data_to_class("pos", "x", source="pseudo")


def test_self_consistency_when_no_logprobs():
    llm = FakeLLM(outputs=[{"answer": "b"}, {"answer": "a"}, {"answer": "b"}, "not json", {"answer": "zzz"}])
    c = llm.choose([{"role": "user", "content": "?"}], ["a", "b"])
    assert c.method == "samples" and c.index == 1 and np.allclose(c.proba, [1 / 3, 2 / 3])
    assert llm.calls[0]["schema"]["properties"]["answer"]["enum"] == ["a", "b"]
    none = FakeLLM(outputs=["junk"] * 5)
    with pytest.raises(MalformedOutput):
        none.choose([{"role": "user", "content": "?"}], ["a", "b"])


def test_match_option():
    opts = ["World", "Sci/Tech", "Sports"]
    assert match_option(" sports.", opts) == 2
    assert match_option('"Sci/Tech" is the answer', opts) == 1
    assert match_option("Business", opts) is None and match_option(None, opts) is None


def logprob_completion(content, top):
    body = completion(content)
    body["choices"][0]["logprobs"] = {
        "content": [
            {"token": content[:3], "logprob": -0.1, "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}
        ]
    }
    return body


def test_hosted_choose_reads_top_logprobs():
    top = [("Spo", -0.2), (" World", -2.0), ("world", -3.0), ("The", -1.0)]
    with ScriptedServer([Reply(body=logprob_completion("Sports", top))]) as srv:
        llm = OpenAILLM("m", base_url=srv.url, max_retries=0)
        c = llm.choose([{"role": "user", "content": "?"}], ["World", "Sports", "Business"])
        sent = srv.requests[0].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20 and "response_format" not in sent
    assert c.method == "logprobs" and c.index == 1
    world = np.log(np.exp(-2.0) + np.exp(-3.0))
    expect = np.exp([world, -0.2, min(-0.2, world) - 5.0])
    assert np.allclose(c.proba, expect / expect.sum())
    assert llm.usage.calls == 1


def test_hosted_choose_falls_back_to_samples_without_logprobs():
    with ScriptedServer([Reply(body=completion("Sports")), Reply(body=completion('{"answer": "World"}'))]) as srv:
        llm = OpenAILLM("m", base_url=srv.url, max_retries=0)
        llm.choice_samples = 3
        c = llm.choose([{"role": "user", "content": "?"}], ["World", "Sports"])
        assert c.method == "samples" and c.index == 0
        assert llm._logprobs is False
        n = len(srv.requests)
        llm.choose([{"role": "user", "content": "?"}], ["World", "Sports"])
        assert len(srv.requests) == n + 3  # no second try at logprobs


def test_hosted_choose_when_the_server_refuses_logprobs():
    refuse = Reply(status=400, body={"error": {"message": "logprobs not supported"}})
    with ScriptedServer([refuse, Reply(body=completion('{"answer": "Sports"}'))]) as srv:
        llm = OpenAILLM("m", base_url=srv.url, max_retries=0)
        llm.choice_samples = 1
        c = llm.choose([{"role": "user", "content": "?"}], ["World", "Sports"])
    assert c.method == "samples" and c.index == 1


def test_fit_routing_keeps_a_link_worse_overall_but_right_where_the_classifier_is_unsure(trained, texts):
    labels = [truth(t) for t in texts]
    proba = trained.predict_proba(texts)
    unsure = {texts[i] for i in np.argsort(margin(proba), kind="stable")[:8]}
    # right on the 8 texts the classifier is least sure of, wrong on every other one: worse overall
    llm = ScriptedLabeler(lambda t: (truth(t), 0.9) if t in unsure else ("neg" if truth(t) == "pos" else "pos", 0.6))
    chain = Chain(trained, [llm])
    report = chain.fit_routing(texts, labels)
    base = np.mean(np.array(trained.predict(texts)) == np.array(labels))
    assert report.links[1]["accuracy"] < base  # worse on the whole sample
    assert "skipped" not in report.links[1] and report.links[1]["best_gain_on_forwarded"] > 0
    assert report.chosen["accuracy"] >= base
