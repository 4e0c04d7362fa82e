"""OpenAIEmbedder against a real HTTP server on 127.0.0.1."""

import numpy as np
import pytest

from promptclf import BackendError, ConfigurationError, PromptClassifier
from promptclf.embedders import get_embedder
from promptclf.embedders.hosted import OpenAIEmbedder
from tests.servers.process import free_port, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with serve(["tests/servers/embed_server.py", str(port)], port, "/health"):
        yield f"http://127.0.0.1:{port}/v1"


def test_matches_local_embedder_and_trains(server):
    remote = OpenAIEmbedder("all-MiniLM-L6-v2", base_url=server, batch_size=3)
    texts = ["a wonderful film", "a dreadful film", "the plot was thin", "great acting", "i loved it"]
    R = remote.embed(texts)
    L = get_embedder(None).embed(texts)
    assert np.allclose((R * L).sum(1), 1.0, atol=1e-4)
    clf = PromptClassifier(embedder=remote, progress=False)
    clf.add_data_to_class("pos", ["a wonderful film", "great acting", "i loved it"])
    clf.add_data_to_class("neg", ["a dreadful film", "the plot was thin", "i hated it"])
    assert clf.train().predict("what a wonderful, lovely film") == "pos"


def test_per_token_vectors_are_refused(server):
    with pytest.raises(BackendError, match="one vector per token"):
        OpenAIEmbedder("per-token", base_url=server).embed(["hello there"])


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="no API key"):
        OpenAIEmbedder("text-embedding-3-small").embed(["x"])


def test_unreachable_server_retries_then_fails_clearly():
    emb = OpenAIEmbedder("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, timeout=2)
    with pytest.raises(BackendError, match="failed after 2 attempts"):
        emb.embed(["x"])
