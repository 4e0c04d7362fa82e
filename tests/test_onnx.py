"""The ONNX Runtime embedders: exported here from the packaged weights, served without PyTorch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.embedders import get_embedder
from tests.conftest import read_csv

pytestmark = pytest.mark.integration
pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import os

    from promptclf.embedders import onnx_backend

    path = tmp_path_factory.mktemp("onnx-cache")
    old = os.environ.get("PROMPTCLF_CACHE")
    os.environ["PROMPTCLF_CACHE"] = str(path)
    # sessions opened by earlier tests come from the other cache folder: start from nothing here
    onnx_backend._SESSIONS.clear()
    yield path
    onnx_backend._SESSIONS.clear()
    if old is None:
        del os.environ["PROMPTCLF_CACHE"]
    else:
        os.environ["PROMPTCLF_CACHE"] = old


@pytest.fixture(scope="module")
def texts():
    return [r["text"] for r in read_csv("sst2", "test")[:200]]


def test_fp32_matches_pytorch_and_int8_stays_close(cache, texts):
    ref = get_embedder(None).embed(texts)
    fp32 = get_embedder("onnx:all-MiniLM-L6-v2").embed(texts)
    int8 = get_embedder("onnx-int8:all-MiniLM-L6-v2").embed(texts)
    assert (fp32 * ref).sum(1).min() > 0.99
    # per-channel int8 stays close to the exact vectors on every text, not only on average
    assert (int8 * ref).sum(1).min() > 0.95, (int8 * ref).sum(1).min()
    assert (int8 * ref).sum(1).mean() > 0.98
    assert list(cache.glob("onnx/*/model*.onnx"))  # exported once, cached


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        return set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))


@pytest.mark.skipif(
    not {"avx512_vnni", "cpuid_fault"} <= _cpu_flags(),
    reason="needs a VNNI CPU that can mask CPUID (on an AVX2-only CPU the test above runs the AVX2 kernels)",
)
def test_int8_stays_close_on_the_avx2_kernels_too(cache, texts, tmp_path):
    """ONNX Runtime's AVX2 int8 kernels (no VNNI) can saturate where VNNI's do not: the served vectors
    must stay as close there, with AVX-512 and VNNI masked out of CPUID as on an AVX2-only CPU."""
    ref = get_embedder(None).embed(texts)
    here = get_embedder("onnx-int8:all-MiniLM-L6-v2").embed(texts)  # exported here, not in the child
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = (
        "import json, numpy as np\n"
        "from promptclf.embedders import get_embedder\n"
        "assert not np._core._multiarray_umath.__cpu_features__['AVX512F'], 'the mask did not take'\n"
        f"texts = json.load(open({str(tmp_path / 'texts.json')!r}))\n"
        f"np.save({str(tmp_path / 'int8.npy')!r}, get_embedder('onnx-int8:all-MiniLM-L6-v2').embed(texts))\n"
    )
    out = subprocess.run(
        [sys.executable, "bench/as_avx2.py", "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    int8 = np.load(tmp_path / "int8.npy")
    assert not np.allclose(int8, here, atol=1e-4)  # other kernels really ran: the last digits differ
    assert (int8 * ref).sum(1).min() > 0.95, (int8 * ref).sum(1).min()
    assert (int8 * ref).sum(1).mean() > 0.98


def test_pytorch_trained_model_served_with_onnx(cache, texts, tmp_path):
    clf = PromptClassifier(progress=False)
    rows = read_csv("sst2", "train")[:64]
    for r in rows:
        clf.add_data_to_class(r["label"], r["text"])
    path = tmp_path / "m.clf"
    clf.train().save(path)
    torch_pred = clf.predict(texts)
    fp32 = PromptClassifier.load(path, embedder="onnx:all-MiniLM-L6-v2")
    assert np.allclose(fp32.predict_proba(texts), clf.predict_proba(texts), atol=1e-3)
    int8 = PromptClassifier.load(path, embedder="onnx-int8:all-MiniLM-L6-v2")
    agreement = np.mean([a == b for a, b in zip(int8.predict(texts), torch_pred)])
    print(f"int8 prediction agreement with PyTorch: {agreement:.3f}")
    assert agreement > 0.85


def test_predict_path_imports_no_torch(cache, tmp_path):
    clf = PromptClassifier(progress=False)
    clf.add_data_to_class("sports", ["The team won the match.", "A late goal decided the final."])
    clf.add_data_to_class("business", ["Shares rose after earnings.", "The merger was approved."])
    path = tmp_path / "m.clf"
    clf.train().save(path)
    get_embedder("onnx-int8:all-MiniLM-L6-v2").embed(["warm the export cache"])
    code = (
        "import sys, json, promptclf\n"
        f"clf = promptclf.load({str(path)!r}, embedder='onnx-int8:all-MiniLM-L6-v2')\n"
        "print(json.dumps({'pred': clf.predict(['The striker scored twice.']),"
        " 'torch': 'torch' in sys.modules, 'st': 'sentence_transformers' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"pred": ["sports"], "torch": False, "st": False}


@pytest.fixture(scope="module")
def st_model(tmp_path_factory):
    """A .clf trained with the packaged MiniLM on PyTorch (the usual training path)."""
    clf = PromptClassifier(progress=False)
    clf.add_data_to_class("sports", ["The team won the match.", "A late goal decided the final."])
    clf.add_data_to_class("business", ["Shares rose after earnings.", "The merger was approved."])
    clf.prompt_train({"sports": "News about sports.", "business": "News about companies and markets."}, generate=False)
    path = tmp_path_factory.mktemp("st") / "m.clf"
    clf.save(path)
    return path


def test_onnx_load_add_save_load_retrain_embeds_only_the_new_text(cache, st_model, tmp_path, monkeypatch):
    from promptclf.embedders.onnx_backend import OnnxEmbedder

    seen: list[str] = []
    real = OnnxEmbedder.embed_batch

    def spy(self, texts):
        seen.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(OnnxEmbedder, "embed_batch", spy)
    first = PromptClassifier.load(st_model)
    assert first._embedder.kind == "onnx-int8"  # predicts with int8, trains with the fp32 twin
    first.add_data_to_class("sports", "The keeper saved a penalty.")
    path = tmp_path / "again.clf"
    first.save(path)
    second = PromptClassifier.load(path)
    assert second.summary()["embedder"] == {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}
    assert second.summary()["serving_embedder"] == {"kind": "onnx-int8", "model": "all-MiniLM-L6-v2"}
    seen.clear()
    second.train()
    assert seen == ["The keeper saved a penalty."]


def test_int8_served_model_trains_on_exact_vectors(cache, st_model):
    """The cache (and so the head, and the saved file) only ever holds fp32 vectors, even when a
    loaded model predicts with int8: one space, whatever serves it."""
    from promptclf.embedders.onnx_backend import OnnxEmbedder

    clf = PromptClassifier.load(st_model)
    text = "The keeper saved a penalty in extra time."
    clf.add_data_to_class("sports", text).train()
    cached = clf._cache.get(clf._emb.trainer()._cache_key("chunk")(text), text)
    exact = OnnxEmbedder().embed([text])[0]
    served = clf._emb.embed([text])[0]
    assert np.allclose(cached, exact, atol=1e-6)
    assert not np.allclose(served, exact, atol=1e-4)  # int8 really served the prediction
    assert clf.embedder_spec_ == {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}


def test_first_load_prints_nothing_and_makes_both_models(st_model, tmp_path):
    import os

    fresh = tmp_path / "fresh-cache"
    code = f"import promptclf; print(promptclf.load({str(st_model)!r}).predict(['The striker scored twice.']))"
    env = {**os.environ, "PROMPTCLF_CACHE": str(fresh)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['sports']"
    assert out.stderr == ""
    import onnxruntime

    made = sorted(p.name for p in fresh.glob("onnx/*/*.onnx"))
    v = onnxruntime.__version__
    # int8 serves, fp32 trains (made to quantise), and the int8 graph's optimised copy opens the session
    assert made == [
        "model-int8-s8-perchannel-7bit.onnx",
        f"model-int8-s8-perchannel-7bit.ort-{v}-extended.onnx",
        "model.onnx",
    ]


def test_sessions_open_the_optimised_graph_with_the_same_vectors(cache, texts, tmp_path):
    import onnxruntime as ort

    from promptclf.embedders import onnx_backend

    src = onnx_backend.onnx_file("all-MiniLM-L6-v2", quantized=True)
    opt = onnx_backend.optimized_file(src)
    assert opt != src and opt.exists() and onnx_backend.optimized_file(src) == opt  # made once
    assert opt.stat().st_size != src.stat().st_size  # rewritten, not a copy

    def vectors(sess) -> np.ndarray:  # the embedder's own batching, one batch
        tok, pad = onnx_backend._tokenizer("all-MiniLM-L6-v2")
        _, feed = next(onnx_backend.padded_batches(tok, pad, texts[:8], batch_size=8))
        return sess.run(None, feed)[0]

    plain = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(vectors(onnx_backend.session(src)), vectors(plain), atol=1e-5)

    # where the copy cannot be written (here: its name would pass the file system's 255 bytes, a failure
    # even root meets), the original graph opens, nothing is left behind and nothing is raised
    folder = tmp_path / "long"
    folder.mkdir()
    original = folder / ("m" * 240 + ".onnx")
    original.write_bytes(src.read_bytes())
    assert onnx_backend.optimized_file(original) == original
    assert [p.name for p in folder.iterdir()] == [original.name]
    assert onnx_backend.session(original).get_inputs()


def test_batches_run_side_by_side_on_single_threaded_sessions(cache, texts, monkeypatch):
    """A call's batches run on one thread per CPU the process may use, each on a single-threaded
    session, a few texts split so that every CPU gets some; a lone text computes on every CPU. The
    vectors are those of one text at a time, in the texts' order."""
    import itertools
    import threading

    from promptclf.embedders import onnx_backend

    emb = get_embedder("onnx:all-MiniLM-L6-v2")  # fp32: int8 quantises activations per batch
    sizes, threads = [], []
    real_run, real_session = onnx_backend.run_batches, emb._session

    def spy(sess, batches, workers):
        batches = list(batches)
        sizes.append((workers, [len(idx) for idx, _ in batches]))
        threads.append(sess.get_session_options().intra_op_num_threads)
        return real_run(sess, batches, workers)

    monkeypatch.setattr(onnx_backend, "run_batches", spy)
    monkeypatch.setattr(onnx_backend, "workers", lambda: 3)
    some = emb.embed_batch(texts[:7])
    one = emb.embed_batch(texts[:1])
    assert sizes == [(3, [3, 3, 1]), (1, [1])] and threads == [1, 3]  # ceil(7 / 3) texts per batch
    monkeypatch.setattr(onnx_backend, "workers", lambda: 1)
    alone = np.stack([emb.embed_batch([t])[0] for t in texts[:7]])
    assert np.allclose(some, alone, atol=1e-5) and np.allclose(one[0], alone[0], atol=1e-5)

    # two CPUs: the first two batches must be computing at the same time, each on a thread of the pool
    monkeypatch.setattr(onnx_backend, "workers", lambda: 2)
    both, calls, names = threading.Barrier(2, timeout=30), itertools.count(), set()

    class Watched:
        def __init__(self, sess):
            self.sess = sess

        def get_session_options(self):
            return self.sess.get_session_options()

        def run(self, *args):
            if next(calls) < 2:
                both.wait()  # one batch at a time would wait here until the timeout, and fail
            names.add(threading.current_thread().name)
            return self.sess.run(*args)

    monkeypatch.setattr(emb, "_session", lambda n: Watched(real_session(n)))
    many = emb.embed_batch(texts[:40])
    assert sizes[-1][0] == 2 and sum(sizes[-1][1]) == 40 and len(names) == 2
    assert all(n.startswith("promptclf-onnx") for n in names)
    assert np.allclose(many[:7], some, atol=1e-5)


def test_a_forked_child_runs_batches_side_by_side_too(cache, texts, monkeypatch):
    """multiprocessing forks on Linux: the child has none of the parent's pool threads and must not
    wait for them."""
    import multiprocessing

    from promptclf.embedders import onnx_backend

    emb = get_embedder("onnx-int8:all-MiniLM-L6-v2")
    monkeypatch.setattr(onnx_backend, "workers", lambda: 2)
    emb.embed_batch(texts[:20])  # the parent's pool of two threads exists now
    child = multiprocessing.get_context("fork").Process(target=emb.embed_batch, args=(texts[20:40],))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def test_onnx_batches_are_small_and_sorted(cache):
    from promptclf.embedders import onnx_backend

    tok, pad = onnx_backend._tokenizer("all-MiniLM-L6-v2")
    texts = ["a " * n for n in (40, 3, 25, 1, 12, 30, 2, 18, 7, 33, 9, 21, 5, 27, 15, 11, 38, 4)]
    batches = list(onnx_backend.padded_batches(tok, pad, texts, onnx_backend.ONNX_BATCH))
    assert [len(idx) for idx, _ in batches] == [16, 2]
    widths = [feed["input_ids"].shape[1] for _, feed in batches]
    assert widths[0] < widths[1]  # the short texts are padded only to the longest of their own batch


def test_onnx_long_texts_go_a_few_at_a_time(cache, texts):
    from promptclf.embedders import onnx_backend

    tok, pad = onnx_backend._tokenizer("all-MiniLM-L6-v2")
    mixed = ["a " * n for n in (200, 3, 120, 1, 60, 250, 2, 90)]
    batches = list(onnx_backend.padded_batches(tok, pad, mixed, 16, max_tokens=256))
    assert sorted(i for idx, _ in batches for i in idx) == list(range(len(mixed)))  # each text once
    for idx, feed in batches:
        rows, width = feed["input_ids"].shape
        assert rows == len(idx) and (rows * width <= 256 or rows == 1)
    assert len(batches[0][0]) > 1 and len(batches[-1][0]) == 1  # short ones share a call, the longest goes alone
    # the budget changes how texts are grouped, never their vectors
    small = onnx_backend.OnnxEmbedder(max_tokens=256).embed_batch(mixed + texts[:4])
    whole = onnx_backend.OnnxEmbedder(max_tokens=None).embed_batch(mixed + texts[:4])
    np.testing.assert_allclose(small, whole, atol=1e-5)


def test_onnx_tokenizer_is_parsed_once_and_truncates_as_its_own_truncation_would():
    from tokenizers import Tokenizer

    from promptclf.embedders import onnx_backend
    from promptclf.embedders.chunking import max_seq_length, window_for
    from promptclf.embedders.local import resolve_model_path

    folder = Path(resolve_model_path("all-MiniLM-L6-v2"))
    tok, pad = onnx_backend._tokenizer("all-MiniLM-L6-v2")
    # one parse of tokenizer.json per process: the ONNX path encodes with the chunking window's tokenizer
    assert tok.tokenizer is window_for(folder).tokenizer and tok.max_length == max_seq_length(folder) == 256
    assert pad == 0
    own = Tokenizer.from_file(str(folder / "tokenizer.json"))
    own.enable_truncation(max_length=256)
    own.no_padding()
    texts = ["", "short one", "a " * 253, "a " * 254, "a " * 255, "word " * 400, "antidisestablishmentarianism " * 60]
    got = tok.encode_batch(texts)
    for text, e in zip(texts, got):
        want = own.encode(text)
        assert (e.ids, e.attention_mask, e.type_ids) == (want.ids, want.attention_mask, want.type_ids)
    assert [len(e.ids) for e in got[3:]] == [256] * 4 and got[5].ids[-1] == own.token_to_id("[SEP]")
    # the shared tokenizer itself still never truncates (chunking counts a long text's every token)
    assert len(window_for(folder).tokenizer.encode("word " * 400).ids) == 402
