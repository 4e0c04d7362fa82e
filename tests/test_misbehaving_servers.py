"""Hosted backends against a real local server that misbehaves, and the retry policy on the client's errors."""

from __future__ import annotations

import time

import httpx2
import numpy as np
import openai
import pytest

from promptclf import BackendError, ConfigurationError
from promptclf._openai import call_with_retries
from promptclf.embedders.hosted import OpenAIEmbedder
from promptclf.llms.hosted import OpenAILLM
from tests.servers.scripted import Reply, ScriptedServer, completion, embeddings

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
MSG = [{"role": "user", "content": "hi"}]


def status_error(code: int, message: str = "boom") -> openai.APIStatusError:
    """The openai client's own exception for an HTTP status, as it raises it."""
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(code, request=request, json={"error": {"message": message}})
    cls = {400: openai.BadRequestError, 401: openai.AuthenticationError, 429: openai.RateLimitError}.get(
        code, openai.InternalServerError if code >= 500 else openai.APIStatusError
    )
    return cls(message, response=response, body={"error": {"message": message}})


@pytest.mark.parametrize(("code", "error"), [(401, ConfigurationError), (400, ConfigurationError)])
def test_auth_and_bad_request_fail_at_once(code, error):
    calls = []

    def fn():
        calls.append(1)
        raise status_error(code)

    with pytest.raises(error):
        call_with_retries(fn, what="x", max_retries=3, max_wait=0.01)
    assert len(calls) == 1


@pytest.mark.parametrize("code", [429, 503])
def test_transient_errors_retry_then_backend_error_with_fields(code):
    calls = []

    def fn():
        calls.append(1)
        raise status_error(code)

    with pytest.raises(BackendError, match="failed after 3 attempts") as e:
        call_with_retries(fn, what="x", max_retries=2, backend="openai:m", max_wait=0.01)
    assert len(calls) == 3
    assert (e.value.attempts, e.value.status_code, e.value.backend) == (3, code, "openai:m")


def llm(server: ScriptedServer, **kw) -> OpenAILLM:
    return OpenAILLM("m", base_url=server.url, max_concurrency=1, max_retries=kw.pop("max_retries", 1), **kw)


def test_a_passing_500_does_not_switch_off_json_schema():
    script = [Reply(500, {"error": {"message": "temporarily overloaded"}}), Reply(200, completion('{"text": "ok"}'))]
    with ScriptedServer(script) as s:
        out = llm(s).generate_json(MSG, SCHEMA)
    assert out == {"text": "ok"}
    assert [r.body["response_format"]["type"] for r in s.requests] == ["json_schema", "json_schema"]


def test_a_format_refusal_switches_to_json_object():
    script = [
        Reply(500, {"error": {"message": "Input should be 'text' or 'json_object' at response_format.type"}}),
        Reply(200, completion('{"text": "ok"}')),
    ]
    with ScriptedServer(script) as s:
        backend = llm(s)
        assert backend.generate_json(MSG, SCHEMA) == {"text": "ok"}
    assert backend._mode == "json_object"
    assert [r.body["response_format"]["type"] for r in s.requests] == ["json_schema", "json_object"]


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, '{"choices": [', "application/json"), "not valid JSON"),
        (Reply(200, "<html><body>Bad gateway</body></html>", "text/html"), "<html>"),
        (Reply(200, {"id": "x"}), "without choices"),
        (Reply(200, {"choices": []}), "without choices"),
        (Reply(200, {"choices": [{"message": {"content": 5}}]}), "non-text message"),
        (Reply(200, "[1, 2]"), "not an object"),
    ],
)
def test_malformed_chat_answers_are_backend_errors_naming_the_server(reply, said):
    with ScriptedServer([reply]) as s, pytest.raises(BackendError) as e:
        llm(s, max_retries=1).generate_json(MSG, SCHEMA)
    assert said in str(e.value) and "127.0.0.1" in str(e.value)
    assert e.value.attempts == 2 and len(s.requests) == 2  # retried once: a flaky proxy may recover


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(200, "not json", "text/plain"), "not valid JSON"),
        (Reply(200, {"object": "list"}), "without a list of embeddings"),
        (Reply(200, {"data": None}), "without a list of embeddings"),
        (Reply(200, {"data": [{"embedding": ["a", "b"]}]}), "non-numbers"),
    ],
)
def test_malformed_embedding_answers_are_backend_errors(reply, said):
    with ScriptedServer([reply]) as s, pytest.raises(BackendError, match=said):
        OpenAIEmbedder("m", base_url=s.url, max_retries=0).embed(["a text"])


def test_embeddings_from_a_good_server():
    with ScriptedServer([Reply(200, embeddings([[3.0, 4.0], [0.0, 2.0]]))]) as s:
        X = OpenAIEmbedder("m", base_url=s.url).embed(["a", "b"])
    assert np.allclose(X, [[0.6, 0.8], [0.0, 1.0]])
    assert s.requests[0].body["encoding_format"] == "float"


def test_a_dripping_server_meets_the_overall_deadline():
    body = completion('{"text": "' + "x" * 200 + '"}')
    with ScriptedServer([Reply(200, body, drip_s=0.05)]) as s:
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="within 1 s"):
            llm(s, max_retries=0, timeout=1.0).generate_json(MSG, SCHEMA)
        assert time.monotonic() - t0 < 5  # the whole body would take over 10 s
