import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import promptclf
from promptclf import ModelFileError, PromptClassifier


@pytest.fixture
def saved(trained, tmp_path):
    path = tmp_path / "m.clf"
    trained.save(path)
    return path


def rewrite(src, dst, change):
    """Copy a zip member by member through ``change(name, data) -> data | None`` (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def test_round_trip_predicts_identically_and_keeps_learning(trained, saved, fake_embedder):
    texts = ["a wonderful film", "boring and dull", "mixed"]
    loaded = promptclf.load(saved)
    assert np.array_equal(loaded.classes_, trained.classes_)
    assert np.allclose(loaded.predict_proba(texts), trained.predict_proba(texts), atol=1e-6)
    assert np.allclose(loaded.thresholds_, trained.thresholds_)
    assert loaded.get_data() == trained.get_data()
    assert set(loaded.precision_recall_curves()) == {"neg", "pos"}
    loaded.add_data_to_class("pos", "a joyful surprise").train()
    assert "a joyful surprise" in loaded.get_data()["pos"]


def test_loaded_model_retrains_without_re_embedding(saved):
    loaded = PromptClassifier.load(saved)
    emb = loaded._embedder
    emb.calls.clear()
    loaded.train()
    assert emb.calls == []  # vectors travelled in the file


def test_a_shared_cache_given_after_load_gets_the_files_vectors(saved):
    from promptclf.embedders.base import EmbeddingCache

    shared = EmbeddingCache()
    loaded = PromptClassifier.load(saved).use_embedding_cache(shared)
    assert len(shared) == len({t for ts in loaded.get_data().values() for t in ts})
    loaded._embedder.calls.clear()
    loaded.train()
    assert loaded._embedder.calls == []


def test_manifest_is_json_with_checksums(saved):
    with zipfile.ZipFile(saved) as z:
        m = json.loads(z.read("manifest.json"))
        assert m["format"] == "promptclf-model" and m["classes"] == ["neg", "pos"]
        assert m["embedder"]["kind"] == "fake" and m["embedder"]["dimension"] == 64
        assert set(m["members"]) >= {"head/coef.npy", "examples.jsonl", "prompts.json"}
        assert not any(n.endswith((".pkl", ".pickle")) for n in z.namelist())


def test_float_arrays_are_stored_uncompressed_and_deflated_ones_still_load(saved, tmp_path):
    """The cached vectors (and a fine-tuned encoder) are stored as they are: inflating them cost a
    distilled model a third of its cold start. Files written before, deflated, load the same."""
    with zipfile.ZipFile(saved) as z:
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    assert kinds.pop("cache/embeddings.npy") == zipfile.ZIP_STORED
    assert set(kinds.values()) == {zipfile.ZIP_DEFLATED}
    old = tmp_path / "old.clf"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(old, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    texts = ["a wonderful film", "boring and dull"]
    assert np.allclose(promptclf.load(old).predict_proba(texts), promptclf.load(saved).predict_proba(texts))


@pytest.mark.parametrize("rows", [24, 6000])
def test_the_whole_file_digest_is_of_the_bytes_read(fake_embedder, tmp_path, rows):
    """The whole file is hashed beside the member checks (a thread): the digest of its bytes, small or large."""
    import hashlib

    clf = PromptClassifier(embedder=fake_embedder, progress=False)
    for i in range(rows):
        clf.add_data_to_class(("pos", "neg")[i % 2], f"review number {i}")
    path = tmp_path / "m.clf"
    clf.train().save(path)
    assert (path.stat().st_size > 1 << 20) == (rows > 24)  # 6,000 cached 64-d vectors: 1.5 MB
    assert promptclf.load(path).model_sha256_ == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failure_in_the_digest_thread_reaches_the_reader(monkeypatch):
    """Hashing runs on a second thread: an error there is raised where the digest is wanted (before,
    the reader would have waited for ever)."""
    from promptclf import modelfile

    def broken(data=b""):
        raise MemoryError("no room to hash")

    monkeypatch.setattr(modelfile.hashlib, "sha256", broken)
    with pytest.raises(MemoryError, match="no room"):
        modelfile._sha256_beside(b"x" * 10).result(timeout=10)


def test_a_manifest_that_passed_the_schema_is_not_validated_again(saved, tmp_path, monkeypatch):
    """Its bytes leave a marker: the next load skips pydantic-core (a tenth of a small model's cold
    start). Other bytes, a manifest the schema had to complete, other rules: validated every time."""
    from promptclf import modelfile as mf

    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "cache"))
    validated = []
    schema = mf._schema
    monkeypatch.setattr(mf, "_schema", lambda: validated.append(1) or schema())
    promptclf.load(saved)
    promptclf.load(saved)
    assert len(validated) == 1 and len(list((tmp_path / "cache" / "checked").iterdir())) == 1
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pydantic_core", None)  # not importable: the marker is all it needs
        assert promptclf.load(saved).predict(["a wonderful film"]) == ["pos"]

    def manifest(change):
        def edit(name, data):
            if name != "manifest.json":
                return data
            obj = json.loads(data)
            change(obj)
            return json.dumps(obj, indent=2).encode()

        return edit

    other = rewrite(saved, tmp_path / "other.clf", manifest(lambda m: None))  # the same content, other bytes
    promptclf.load(other)
    assert len(validated) == 2
    bad = rewrite(saved, tmp_path / "bad.clf", manifest(lambda m: m["head"].update(C="1.0")))
    for _ in range(2):
        with pytest.raises(ModelFileError, match=r"head\.C"):
            promptclf.load(bad)
    older = rewrite(saved, tmp_path / "older.clf", manifest(lambda m: m.pop("created")))  # the schema fills it in
    assert promptclf.load(older).predict(["a wonderful film"]) == ["pos"]
    promptclf.load(older)
    assert len(validated) == 6
    monkeypatch.setattr(mf, "SCHEMA_FINGERPRINT", "other rules")
    promptclf.load(saved)
    assert len(validated) == 7
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    monkeypatch.setenv("PROMPTCLF_CACHE", str(tmp_path / "blocked"))  # nowhere to remember: validated every time
    promptclf.load(saved)
    promptclf.load(saved)
    assert len(validated) == 9


def test_the_schema_fingerprint_names_these_rules(monkeypatch):
    """Markers of validated manifests are named with SCHEMA_FINGERPRINT: after any change of the
    schema it must change too, or a manifest that passed the old rules would skip the new ones."""
    from promptclf import modelfile as mf

    assert mf.schema_fingerprint() == mf.SCHEMA_FINGERPRINT, (
        f"the manifest schema changed: set modelfile.SCHEMA_FINGERPRINT = {mf.schema_fingerprint()!r}"
    )
    monkeypatch.setattr(mf, "MAX_CLASSES", mf.MAX_CLASSES + 1)  # a bound
    assert mf.schema_fingerprint() != mf.SCHEMA_FINGERPRINT
    monkeypatch.undo()
    monkeypatch.setattr(mf, "HEAD_KINDS", {**mf.HEAD_KINDS, True: "another-head"})  # an allowed value
    assert mf.schema_fingerprint() != mf.SCHEMA_FINGERPRINT


def test_not_a_model_file(tmp_path):
    p = tmp_path / "x.clf"
    p.write_text("hello")
    with pytest.raises(ModelFileError, match="not a promptclf model file"):
        PromptClassifier.load(p)
    with pytest.raises(ModelFileError, match="not found"):
        PromptClassifier.load(tmp_path / "missing.clf")
    with zipfile.ZipFile(tmp_path / "z.clf", "w") as z:
        z.writestr("manifest.json", "{}")
    with pytest.raises(ModelFileError, match="bad manifest"):
        PromptClassifier.load(tmp_path / "z.clf")


def test_truncated(saved, tmp_path):
    data = saved.read_bytes()
    p = tmp_path / "t.clf"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a zip archive, or truncated"):
        PromptClassifier.load(p)


def test_member_missing(saved, tmp_path):
    p = rewrite(saved, tmp_path / "r.clf", lambda n, d: None if n == "head/coef.npy" else d)
    with pytest.raises(ModelFileError, match=r"head/coef\.npy: is missing"):
        PromptClassifier.load(p)


def test_checksum_mismatch(saved, tmp_path):
    def tamper(name, data):
        if name == "head/coef.npy":
            arr = np.load(io.BytesIO(data))
            buf = io.BytesIO()
            np.save(buf, arr * -1)
            return buf.getvalue()
        return data

    with pytest.raises(ModelFileError, match=r"head/coef\.npy: checksum mismatch"):
        PromptClassifier.load(rewrite(saved, tmp_path / "r.clf", tamper))


def test_damaged_training_members_fail_at_first_use_and_prediction_goes_on(saved, tmp_path):
    """The examples and cached vectors are read and hashed beside the load and checked when first used:
    a wrong checksum or a damaged deflate stream there still loads and predicts, and training or saving
    raises a ModelFileError naming the member (the file left whole)."""
    tampered = rewrite(saved, tmp_path / "t.clf", lambda n, d: d + b"\n" if n == "examples.jsonl" else d)
    raw = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("cache/texts.json")
        assert info.compress_type == zipfile.ZIP_DEFLATED
    extra = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")  # local header's
    mid = info.header_offset + 30 + len(info.filename) + extra + info.compress_size // 2
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    corrupt = tmp_path / "c.clf"
    corrupt.write_bytes(bytes(raw))
    from tests.test_modelfile_hardening import training_fails

    for path, member, match in (
        (tampered, "examples.jsonl", "checksum mismatch"),
        (corrupt, "cache/texts.json", "corrupt"),
    ):
        before = path.read_bytes()
        training_fails(path, match, member)  # loads and predicts; training and saving name the member
        assert path.read_bytes() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_right_after_load_can_train(saved, monkeypatch):
    """The training members are read on a second thread, which a fork leaves behind: a fork waits for
    it (a server's workers forked right after the parent loaded a model would otherwise wait for ever)."""
    import multiprocessing
    import time

    from promptclf import modelfile

    read_apart = modelfile._Reader._read_apart

    def slow(self, raw, infos):
        time.sleep(0.5)  # still reading when the fork comes
        return read_apart(self, raw, infos)

    monkeypatch.setattr(modelfile._Reader, "_read_apart", slow)
    clf = promptclf.load(saved)
    child = multiprocessing.get_context("fork").Process(target=lambda: os._exit(0 if clf.get_data() else 1))
    child.start()
    child.join(timeout=30)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0


def test_newer_format_version(saved, tmp_path):
    def bump(name, data):
        if name == "manifest.json":
            m = json.loads(data)
            m["format_version"] = 99
            return json.dumps(m)
        return data

    with pytest.raises(ModelFileError, match="format 99, newer"):
        PromptClassifier.load(rewrite(saved, tmp_path / "r.clf", bump))


def test_dimension_mismatch(saved, tmp_path):
    def lie(name, data):
        if name == "manifest.json":
            m = json.loads(data)
            m["embedder"]["dimension"] = 384
            return json.dumps(m)
        return data

    with pytest.raises(ModelFileError, match="64 features but the manifest says dimension 384"):
        PromptClassifier.load(rewrite(saved, tmp_path / "r.clf", lie))


def test_embedder_override_with_other_dimension(saved):
    from tests.conftest import FakeEmbedder

    clf = PromptClassifier.load(saved, embedder=FakeEmbedder(dim=32))
    with pytest.raises(promptclf.ConfigurationError, match="32-dimensional vectors but this model was trained on 64"):
        clf.predict(["x"])


def test_path_traversal_member_is_refused(saved, tmp_path):
    p = rewrite(saved, tmp_path / "r.clf", lambda n, d: d)
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("../../x", "boom")
    with pytest.raises(ModelFileError, match=r"unexpected member '\.\./\.\./x'; refusing to load") as e:
        PromptClassifier.load(p)
    assert e.value.path == str(p)


def test_zip_bomb_and_huge_manifest_are_refused(saved, tmp_path):
    big = b"{" + b" " * (5 << 20) + b"}"  # 5 MiB manifest, compresses to a few KB
    p = tmp_path / "bomb.clf"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", big)
    assert p.stat().st_size < 100_000
    with pytest.raises(ModelFileError, match=r"over the .* limit"):
        PromptClassifier.load(p)


def test_failed_save_leaves_existing_file_intact(trained, saved, monkeypatch):
    before = saved.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("promptclf._atomic.os.fsync", broken_fsync)
    trained.add_data_to_class("pos", "another wonderful one").train()
    with pytest.raises(ModelFileError, match="disk full"):
        trained.save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary left behind


def test_load_works_with_pickle_unusable(saved):
    code = f"""
import sys, pickle
def refuse(*a, **k):
    raise RuntimeError('pickle was used on the load path')
pickle.load = pickle.loads = pickle.Unpickler = refuse  # any unpickling now fails loudly
sys.path.insert(0, {str(saved.parent)!r})
from tests.conftest import FakeEmbedder
from promptclf.embedders import register_embedder
register_embedder(FakeEmbedder)
import promptclf
clf = promptclf.load({str(saved)!r})
print(clf.predict(['a wonderful superb film']))
"""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['pos']" in out.stdout
