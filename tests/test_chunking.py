"""Long texts: chunks on sentence boundaries that fit the window, mean of chunk vectors, never silent truncation."""

import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.embedders.chunking import sentence_spans, split, window_for
from promptclf.embedders.local import resolve_model_path
from tests.conftest import FakeEmbedder


@pytest.fixture(scope="module")
def window():
    return window_for(resolve_model_path("all-MiniLM-L6-v2"))


class WindowedFake(FakeEmbedder):
    """The fake embedder with MiniLM's real tokenizer window: checks what reaches ``embed_batch``."""

    kind = "windowed-test"

    def window(self):
        return window_for(resolve_model_path("all-MiniLM-L6-v2"))


def long_text(words: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    vocab = ["market", "shares", "rose", "team", "won", "the", "final", "rocket", "launch", "orbit", "votes"]
    sents = []
    while sum(len(s.split()) for s in sents) < words:
        sents.append(" ".join(rng.choice(vocab, size=int(rng.integers(5, 25)))).capitalize() + ".")
    return " ".join(sents)


def test_sentence_spans_keep_closing_quotes():
    text = 'He said "stop." Then (quietly.) he left! Done'
    assert [text[a:b] for a, b in sentence_spans(text)] == ['He said "stop."', "Then (quietly.)", "he left!", "Done"]


def test_a_5000_word_text_is_chunked_within_the_window(window):
    text = long_text(5000)
    chunks = split(text, window)
    assert len(chunks) > 15
    assert all(window.n_tokens(c) <= window.max_tokens for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut between sentences
    assert chunks[0].split(".")[0] in text and chunks[-1].endswith(text[-20:])
    # a run-on "sentence" with no boundary is still cut to fit
    run_on = " ".join(["word"] * 3000)
    pieces = split(run_on, window)
    assert len(pieces) >= 11 and all(window.n_tokens(c) <= window.max_tokens for c in pieces)
    assert split("short text.", window) == ["short text."]


def test_embed_averages_chunks_and_never_sends_an_over_long_text(window):
    emb = WindowedFake()
    text = long_text(1200, seed=1)
    v = emb.embed([text, "a short one"])
    sent = emb.embedded
    assert all(window.n_tokens(t) <= window.max_tokens for t in sent)
    chunks = split(text, window)
    assert sent[: len(chunks)] == chunks
    parts = FakeEmbedder().embed(chunks)
    mean = parts.mean(0) / np.linalg.norm(parts.mean(0))
    assert np.allclose(v[0], mean, atol=1e-6)
    assert emb.count_long([text, "a short one", text]) == 1


def test_truncate_mode_is_explicit_and_cached_apart(window):
    from promptclf.embedders import EmbeddingCache

    emb, cache = WindowedFake(), EmbeddingCache()
    text = long_text(1500, seed=2)
    a = emb.embed([text], cache=cache)
    b = emb.embed([text], cache=cache, long_texts="truncate")
    assert not np.allclose(a, b)  # not the same vector, and not served from the other's cache entry
    assert emb.embedded[-1] == text  # truncate sends the whole text; the backend cuts at its window
    assert np.allclose(emb.embed([text], cache=cache), a) and len(cache) == 2
    with pytest.raises(Exception, match="long_texts"):
        emb.embed([text], long_texts="drop")


def test_training_summary_and_info_count_long_texts():
    from promptclf.embedders.base import embedders

    embedders().register(WindowedFake)
    clf = PromptClassifier(embedder="windowed-test:bow64", progress=False)
    clf.add_data_to_class("markets", [long_text(800, seed=3), "shares rose"])
    clf.add_data_to_class("sport", ["the team won the final", "team won"])
    clf.train()
    info = clf.summary()["long_texts"]
    assert info == {
        "mode": "chunk",
        "n": 1,
        "window_tokens": window_for(resolve_model_path("all-MiniLM-L6-v2")).max_tokens,
    }
    clf.set_params(long_texts="truncate").train()
    assert clf.training_summary_["long_texts"]["mode"] == "truncate"


@pytest.mark.integration
def test_real_minilm_embeds_a_long_document_in_chunks():
    from promptclf.embedders import get_embedder

    emb = get_embedder("onnx:all-MiniLM-L6-v2")
    text = long_text(5000, seed=4)
    chunked, truncated = emb.embed([text]), emb.embed([text], long_texts="truncate")
    assert chunked.shape == (1, 384) and np.isclose(np.linalg.norm(chunked), 1.0, atol=1e-5)
    assert float((chunked @ truncated.T)[0, 0]) < 0.999  # the rest of the document counts
