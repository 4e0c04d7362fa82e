"""``promptclf serve`` as a real process with the packaged MiniLM: reload on SIGHUP, and SIGTERM drains
the requests in flight."""

from __future__ import annotations

import signal
import sys
import threading
import time

import httpx2 as httpx
import pytest

from promptclf import PromptClassifier
from tests.servers.process import free_port, serve

pytestmark = pytest.mark.integration
pytest.importorskip("prometheus_client")


def train(path, classes: dict[str, list[str]]) -> None:
    clf = PromptClassifier(progress=False)
    for c, xs in classes.items():
        clf.add_data_to_class(c, xs)
    clf.train().save(path)


TOPICS = {
    "sports": ["the team won the match", "a late goal in the final", "the runner set a record"],
    "business": ["the company beat profit forecasts", "stocks fell", "the bank raised rates"],
}
MOODS = {
    "happy": ["joy and delight", "a wonderful day", "smiles all round"],
    "sad": ["tears and grief", "a miserable day", "a heavy heart"],
}


def args(model, port, *extra):
    return ["-m", "promptclf", "serve", str(model), "--port", str(port), *extra]


def test_sighup_reloads_and_sigterm_drains(tmp_path):
    model = tmp_path / "m.clf"
    train(model, TOPICS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(args(model, port, "--allow-reload", "--max-texts", "400"), port, "/readyz") as proc:
        r = httpx.post(f"{url}/v1/predict", json={"texts": ["the striker scored"]})
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "sports"
        first = httpx.get(f"{url}/v1/model").json()["sha256"]

        train(model, MOODS)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/model").json()["sha256"] == first:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.2)
        r = httpx.post(f"{url}/v1/predict", json={"texts": ["such a wonderful day"]})
        assert r.json()["predictions"][0]["label"] == "happy"

        # a request that takes a while (several seconds here, well inside uvicorn's 30 s of graceful
        # shutdown: 2,000 of these texts took 41 s on a loaded 2-core machine and were cut off), then
        # SIGTERM while it is in flight
        texts = [f"a long day number {i} of joy, tears, smiles and grief " * 8 for i in range(400)]
        result = {}

        def slow():
            result["r"] = httpx.post(f"{url}/v1/predict", json={"texts": texts}, timeout=120)
            result["answered"] = time.monotonic()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        t.join(timeout=120)
        # uvicorn re-raises the signal once it has shut down gracefully, so the status says SIGTERM
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert result["answered"] > signalled, "the request was answered before SIGTERM: nothing was drained"
    assert result["r"].status_code == 200 and len(result["r"].json()["predictions"]) == 400


def test_a_bad_model_file_fails_before_binding(tmp_path):
    import subprocess

    bad = tmp_path / "bad.clf"
    bad.write_bytes(b"not a zip")
    out = subprocess.run([sys.executable, *args(bad, free_port())], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "promptclf: error:" in out.stderr and "Traceback" not in out.stderr
