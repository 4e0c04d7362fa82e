"""The HTTP server, run for real by uvicorn on 127.0.0.1 (in a thread, so the fake embedder serves):
endpoints, bad input, micro-batching, metrics, reload."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref

import httpx2 as httpx
import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.serving import ServerSettings, create_app
from tests.servers.process import free_port

pytest.importorskip("prometheus_client")


class ThreadServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def model_file(trained, tmp_path):
    path = tmp_path / "m.clf"
    trained.save(path)
    return path


@pytest.fixture
def server(model_file):
    app = create_app(ServerSettings(str(model_file), max_texts=8, max_text_chars=200, allow_reload=True))
    with ThreadServer(app) as s:
        s.app = app
        yield s


def test_predict_classify_model_health(server, model_file):
    texts = ["a wonderful superb film", "a dreadful boring film"]
    r = httpx.post(f"{server.url}/v1/predict", json={"texts": texts})
    assert r.status_code == 200
    body = r.json()
    clf = PromptClassifier.load(model_file)
    assert [p["label"] for p in body["predictions"]] == clf.predict(texts)
    expect = clf.predict_proba(texts)
    got = np.array([[p["probs"][c] for c in clf.classes_] for p in body["predictions"]])
    assert np.allclose(got, expect, atol=1e-6)
    assert body["model"] == server.app.state.promptclf["model"].sha256

    r = httpx.post(f"{server.url}/v1/classify", json={"texts": texts, "top_n": 1})
    assert r.status_code == 200 and [x[0]["class_name"] for x in r.json()["results"]] == clf.predict(texts)
    assert all(len(x) == 1 for x in r.json()["results"])

    info = httpx.get(f"{server.url}/v1/model").json()
    assert info["classes"] == ["neg", "pos"] and len(info["sha256"]) == 64 and info["trained_at"]
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "/v1/predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


def test_abstain_gives_null(server, model_file):
    server.app.state.promptclf["model"].classifier.thresholds_[:] = 1.0
    r = httpx.post(f"{server.url}/v1/predict", json={"texts": ["something"], "abstain": True})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        ({"texts": "one string"}, 422, "texts"),
        ({"texts": ["ok", 3]}, 422, "texts.1"),
        ({"texts": []}, 422, "texts"),
        ({"texts": ["x"] * 9}, 422, "texts"),
        ({"texts": ["x" * 201]}, 413, "201 characters"),
        ({"texts": ["x"], "extra": 1}, 422, "extra"),
        ({"text": ["x"]}, 422, "texts"),
        ({"texts": ["x"], "abstain": "yes"}, 422, "abstain"),
        ([1, 2], 422, "body"),
        (None, 422, "body"),
    ],
)
def test_bad_requests_are_4xx_with_a_named_problem(server, body, status, words):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{server.url}/v1/predict", headers={"content-type": "application/json"}, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"] or words in json.dumps(err.get("detail")), err
    assert "Traceback" not in r.text


def test_bad_classify_and_methods(server):
    r = httpx.post(f"{server.url}/v1/classify", json={"texts": ["x"], "top_n": 0})
    assert r.status_code == 422 and "top_n" in r.json()["error"]["message"]
    r = httpx.post(f"{server.url}/v1/classify", json={"texts": ["x"], "threshold": 2})
    assert r.status_code == 422 and "threshold" in r.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/predict").status_code == 405
    r = httpx.get(f"{server.url}/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "http"


def test_concurrent_requests_are_batched_together(server):
    async def burst():
        async with httpx.AsyncClient() as client:
            reqs = [client.post(f"{server.url}/v1/predict", json={"texts": [f"film {i} superb"]}) for i in range(40)]
            return await asyncio.gather(*reqs)

    answers = asyncio.run(burst())
    assert all(r.status_code == 200 for r in answers)
    metrics = httpx.get(f"{server.url}/metrics").text
    count = float(next(x.split()[-1] for x in metrics.splitlines() if x.startswith("promptclf_batch_texts_count")))
    total = float(next(x.split()[-1] for x in metrics.splitlines() if x.startswith("promptclf_batch_texts_sum")))
    assert total == 40 and count < 40  # some requests shared a batch
    assert 'promptclf_requests_total{endpoint="/v1/predict",status="200"} 40.0' in metrics
    assert "promptclf_model_info{" in metrics and "promptclf_request_seconds_bucket" in metrics


def test_errors_are_counted(server):
    httpx.post(f"{server.url}/v1/predict", json={"texts": []})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'promptclf_errors_total{kind="invalid_request"} 1.0' in metrics
    assert 'promptclf_requests_total{endpoint="/v1/predict",status="422"} 1.0' in metrics


def test_reload_swaps_a_good_file_and_keeps_serving_on_a_bad_one(server, model_file, fake_embedder):
    before = httpx.get(f"{server.url}/v1/model").json()["sha256"]
    replaced = weakref.ref(server.app.state.promptclf["model"].classifier)
    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    clf.add_data_to_class("happy", ["joy and delight", "a happy day", "smiles all round"])
    clf.add_data_to_class("sad", ["tears and grief", "a sad day", "a heavy heart"])
    clf.add_data_to_class("angry", ["rage and fury", "an angry mob", "shouting in anger"])
    clf.train().save(model_file)
    r = httpx.post(f"{server.url}/v1/reload")
    assert r.status_code == 200 and r.json()["reloaded"] is True
    info = httpx.get(f"{server.url}/v1/model").json()
    assert info["sha256"] != before and info["classes"] == ["angry", "happy", "sad"]
    assert replaced() is None  # the old model is freed by the reload, not kept until some later collection
    good = info["sha256"]
    model_file.write_bytes(b"PK\x03\x04 not a model")
    r = httpx.post(f"{server.url}/v1/reload")
    assert r.status_code == 409 and r.json()["error"]["detail"]["serving"] == good
    r = httpx.post(f"{server.url}/v1/predict", json={"texts": ["a sad day"]})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "sad"
    assert 'promptclf_reloads_total{result="failed"} 1.0' in httpx.get(f"{server.url}/metrics").text


def test_reload_is_off_unless_enabled(model_file):
    with ThreadServer(create_app(ServerSettings(str(model_file)))) as s:
        r = httpx.post(f"{s.url}/v1/reload")
    assert r.status_code == 403 and "--allow-reload" in r.json()["error"]["message"]


def test_a_split_request_is_answered_whole(model_file):
    app = create_app(ServerSettings(str(model_file), max_batch=3, max_texts=10))
    texts = [f"a {w} film" for w in ("superb", "dull", "moving", "awful", "charming", "boring", "joyful")]
    with ThreadServer(app) as s:
        r = httpx.post(f"{s.url}/v1/predict", json={"texts": texts})
        metrics = httpx.get(f"{s.url}/metrics").text
    assert r.status_code == 200 and len(r.json()["predictions"]) == 7
    assert [p["label"] for p in r.json()["predictions"]] == PromptClassifier.load(model_file).predict(texts)
    assert "promptclf_batch_texts_count 3.0" in metrics  # 3 + 3 + 1


def test_reloads_under_load_fail_no_request(server, model_file, fake_embedder):
    statuses: list[int] = []
    stop = threading.Event()

    def hammer():
        with httpx.Client() as client:
            while not stop.is_set():
                statuses.append(
                    client.post(f"{server.url}/v1/predict", json={"texts": ["a superb film"] * 3}).status_code
                )

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        clf = PromptClassifier(embedder=fake_embedder, progress=False)
        clf.add_data_to_class("pos", ["superb", "a superb film", "wonderful"])
        clf.add_data_to_class("neg", ["dreadful", "a dull film", "boring"])
        clf.train().save(model_file)
        assert httpx.post(f"{server.url}/v1/reload").status_code == 200
        time.sleep(0.3)
        model_file.write_bytes(model_file.read_bytes()[:100])  # truncated: corrupt
        assert httpx.post(f"{server.url}/v1/reload").status_code == 409
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 20 and set(statuses) == {200}


def test_a_reload_trims_again_once_a_batch_in_flight_lets_go_of_the_old_model(server, model_file, monkeypatch):
    """Under load a batch may still hold the replaced model when a reload drops it: its memory goes
    back to the OS (``release_memory``) once it is freed, not only at the next reload (in one process,
    40-54 MiB of a fine-tuned model stayed per reload until a later trim)."""
    calls = []
    monkeypatch.setattr("promptclf.serving.app.release_memory", lambda: calls.append(time.monotonic()))
    held = server.app.state.promptclf["model"]  # as a batch in flight holds it
    replaced = weakref.ref(held.classifier)
    model_file.write_bytes(model_file.read_bytes())
    assert httpx.post(f"{server.url}/v1/reload").status_code == 200
    time.sleep(0.3)
    assert len(calls) == 1 and replaced() is not None  # the reload's own trim, while the batch holds it
    del held  # the batch ends
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert replaced() is None and len(calls) == 2


def test_serve_keeps_no_copy_of_the_first_model(model_file, monkeypatch):
    """``serve`` loads the model before binding the port; after a reload nothing may still hold that
    first copy (its frame lives as long as the server: a fine-tuned model's 155 MiB stayed for good)."""
    import gc

    import promptclf.serving.app as server_app

    for name in (server_app.ENV, "OMP_NUM_THREADS"):  # serve sets them; restored after
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    first = []

    def run(*args, **kwargs):  # uvicorn.run: build the app as uvicorn would, then reload it away
        app = server_app.app_from_env()
        first.append(weakref.ref(app.state.promptclf["model"].classifier))
        app.state.promptclf["model"] = None  # what a reload does to the first model
        gc.collect()
        first.append(first[0]() is None)

    monkeypatch.setattr("uvicorn.run", run)
    server_app.serve(ServerSettings(str(model_file)))
    assert first[1] is True
