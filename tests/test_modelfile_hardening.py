"""A ``.clf`` from a stranger: crafted members with correct checksums, hostile manifests, resource
bombs within the size limits, a file that names a server. Every outcome is a ``ModelFileError``
(or a load that works), and nothing is ever sent anywhere the user did not name."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import zipfile

import numpy as np
import pytest

from promptclf import ConfigurationError, ModelFileError, PromptClassifier
from tests.servers.scripted import Reply, ScriptedServer, embeddings


@pytest.fixture
def saved(trained, tmp_path):
    path = tmp_path / "m.clf"
    trained.save(path)
    return path


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def forge(src, dst, members=None, manifest=None, compress=zipfile.ZIP_DEFLATED):
    """Rewrite a model file with changed members (checksums made to match) and a changed manifest."""
    with zipfile.ZipFile(src) as z:
        data = {n: z.read(n) for n in z.namelist()}
    m = json.loads(data.pop("manifest.json"))
    for name, value in (members or {}).items():
        if value is None:
            data.pop(name, None)
            m["members"].pop(name, None)
        else:
            data[name] = value
            m["members"][name] = {"sha256": hashlib.sha256(value).hexdigest(), "size": len(value)}
    if manifest is not None:
        m = manifest(m) or m
    with zipfile.ZipFile(dst, "w", compression=compress) as z:
        z.writestr("manifest.json", m if isinstance(m, (str, bytes)) else json.dumps(m))
        for n, d in data.items():
            z.writestr(n, d)
    return dst


def load_fails(path, match):
    with pytest.raises(ModelFileError, match=match) as e:
        PromptClassifier.load(path)
    assert e.value.path == str(path)
    return e.value


# ------------------------------------------------------------------ a file never chooses where data goes
def test_a_file_naming_a_server_sends_nothing_there(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with ScriptedServer([Reply(200, embeddings([[1.0] * 64]))]) as elsewhere:

        def point_elsewhere(m):
            m["embedder"] = {"kind": "openai", "model": "x", "base_url": elsewhere.url, "dimension": 64}

        p = forge(saved, tmp_path / "evil.clf", manifest=point_elsewhere)
        clf = PromptClassifier.load(p)
        assert clf.summary()["embedder"] == {"kind": "openai", "model": "x"}  # info works
        with pytest.raises(ConfigurationError, match=r"pass it yourself: load\(path, embedder=\"openai:x\"\)"):
            clf.predict(["a secret text"])
        # even when the user allows hosted backends, the address comes from them, not the file
        with ScriptedServer([Reply(200, embeddings([[1.0] * 64]))]) as mine:
            monkeypatch.setenv("OPENAI_BASE_URL", mine.url)
            allowed = PromptClassifier.load(p, allow_hosted=True)
            assert allowed.predict(["a secret text"]) in (["pos"], ["neg"])
            assert len(mine.requests) == 1
    assert elsewhere.requests == []


def test_a_file_naming_a_hosted_llm_sends_nothing(saved, tmp_path):
    def hosted_llm(m):
        m["llm"] = {"kind": "openai", "model": "gpt-x", "base_url": "http://127.0.0.1:9/v1"}

    clf = PromptClassifier.load(forge(saved, tmp_path / "l.clf", manifest=hosted_llm))
    assert clf.summary()["llm"] == {"kind": "openai", "model": "gpt-x"}
    with pytest.raises(ConfigurationError, match="hosted LLM openai:gpt-x"):
        clf._llm.generate_json([{"role": "user", "content": "x"}], {})


def test_saved_hosted_specs_carry_no_address(fake_embedder, toy_data, tmp_path):
    from promptclf.llms.hosted import OpenAILLM

    clf = PromptClassifier(llm=OpenAILLM("gpt-x", base_url="http://127.0.0.1:9/v1"), embedder=fake_embedder)
    for c, xs in toy_data.items():
        clf.add_data_to_class(c, xs)
    clf.train().save(tmp_path / "m.clf")
    with zipfile.ZipFile(tmp_path / "m.clf") as z:
        raw = z.read("manifest.json").decode()
    assert json.loads(raw)["llm"] == {"kind": "openai", "model": "gpt-x"} and "127.0.0.1" not in raw


# ------------------------------------------------------------------ resource bombs
def test_newline_bomb_is_refused_fast(saved, tmp_path):
    """Counted before anything splits them (the examples are read beside the load, checked at first use)."""
    bomb = b"\n" * (100 * (1 << 20))  # 100 MiB of newlines compresses to ~100 KB
    p = forge(saved, tmp_path / "b.clf", members={"examples.jsonl": bomb})
    assert p.stat().st_size < 1 << 20
    training_fails(p, r"examples\.jsonl: has more than 2000000 lines", "examples.jsonl")


def test_total_size_is_bounded(saved, tmp_path, monkeypatch):
    """Members each within their own limit, together over the total (a smaller total, to stay fast)."""
    monkeypatch.setattr("promptclf.modelfile.TOTAL_LIMIT", 1 << 20)
    pad = {"class_name": "pos", "examples": ["x" * 1000] * 400}
    p = forge(saved, tmp_path / "t.clf", members={"examples.jsonl": (json.dumps(pad) + "\n").encode() * 3})
    load_fails(p, r"members declare \d+ bytes in all, over the 1048576 limit")


def test_npy_header_is_checked_before_allocating(saved, tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += b" " * (118 - len(header)) + b"\n"
    huge = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64
    e = load_fails(forge(saved, tmp_path / "h.clf", members={"head/coef.npy": huge}), "shape")
    assert e.member == "head/coef.npy"
    bad = b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little") + b"{'descr': ((((    \n"
    load_fails(forge(saved, tmp_path / "p.clf", members={"head/coef.npy": bad}), "not a valid array")


# ------------------------------------------------------------------ crafted manifests
def set_(path, value):
    def change(m):
        node = m
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (set_(["classes"], "neg"), "classes"),
        (set_(["classes"], ["neg", "neg"]), "unique"),
        (set_(["classes"], ["neg", ""]), "classes"),
        (set_(["classes"], ["neg", 5]), "classes"),
        (set_(["settings", "random_state"], None), "random_state"),
        (set_(["settings", "random_state"], "7x"), "random_state"),
        (set_(["settings", "examples_per_class"], -3), "examples_per_class"),
        (set_(["embedder", "dimension"], 1e400), "not valid JSON|dimension"),
        (set_(["embedder", "model"], 5), "embedder.model"),
        # strict at every level: no string or boolean passes for a number
        (set_(["embedder", "dimension"], "384"), "embedder.dimension"),
        (set_(["embedder", "dimension"], True), "embedder.dimension"),
        (set_(["head", "C"], "1.0"), "head.C"),
        (set_(["members", "head/coef.npy", "size"], "10"), "size"),
        (set_(["thresholds"], [0.5, "0.5"]), "thresholds"),
        (set_(["head", "C"], -1), "head.C"),
        (set_(["thresholds"], [0.5]), "thresholds for 2 classes"),
        (set_(["thresholds"], [0.5, 2.0]), "thresholds"),
        (set_(["training_summary", "cv_accuracy"], "high"), "cv_accuracy"),
        (set_(["members", "head/coef.npy", "sha256"], "zz"), "sha256"),
    ],
)
def test_crafted_manifest_values(saved, tmp_path, change, match):
    load_fails(forge(saved, tmp_path / "c.clf", manifest=change), match)


def test_hostile_json(saved, tmp_path):
    digits = '{"format": "promptclf-model", "format_version": 1' + ', "x": 1' + "0" * 5000 + "}"
    load_fails(forge(saved, tmp_path / "d.clf", manifest=lambda m: digits), "digits")
    deep = '{"format": "promptclf-model", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    load_fails(forge(saved, tmp_path / "n.clf", manifest=lambda m: deep), "nested")
    nan = json.dumps({"a": 1}).replace("1", "NaN")
    load_fails(forge(saved, tmp_path / "p.clf", members={"prompts.json": nan.encode()}), "not a JSON number")
    deep_line = ('{"class_name": "pos", "examples": ["x"], "meta": ' + "[" * 50_000 + "]" * 50_000 + "}\n").encode()
    training_fails(forge(saved, tmp_path / "j.clf", members={"examples.jsonl": deep_line}), "nested", "examples.jsonl")


def training_fails(path, match, member):
    """The examples and cached vectors are parsed when training first needs them, not at load:
    a file whose checksums match but whose training members are bad loads and predicts, and the
    first use of them (training, saving) is a ``ModelFileError`` naming the member, every time."""
    clf = PromptClassifier.load(path)
    assert clf.predict(["a wonderful film"])[0] in {"neg", "pos"}
    for use in (clf.train, lambda: clf.save(path)):
        with pytest.raises(ModelFileError, match=match) as e:
            use()
        assert (e.value.path, e.value.member) == (str(path), member)
    assert PromptClassifier.load(path).predict(["a wonderful film"])[0] in {"neg", "pos"}  # the save left it whole


def test_bad_training_members_fail_at_first_use_with_the_member_named(saved, tmp_path):
    with zipfile.ZipFile(saved) as z:
        texts = json.loads(z.read("cache/texts.json"))
        vectors = np.load(io.BytesIO(z.read("cache/embeddings.npy")))
    cases = {
        "cache/texts.json": [(b'{"not": "a list"}', "not a list"), (json.dumps([*texts[:-1], 7]).encode(), "strings")],
        "cache/embeddings.npy": [(npy(vectors[:-1]), "shape"), (npy(np.full_like(vectors, np.nan)), "NaN")],
        "examples.jsonl": [(b'{"class_name": "pos", "examples": [3]}\n', "line 1"), (b"\xff\xfe\n", "not UTF-8")],
    }
    for member, bad in cases.items():
        for i, (value, match) in enumerate(bad):
            path = forge(saved, tmp_path / f"{member.replace('/', '-')}-{i}.clf", members={member: value})
            training_fails(path, match, member)


def test_prediction_never_parses_the_training_members(saved, monkeypatch):
    from promptclf import modelfile

    def refuse(*a, **k):
        raise AssertionError("parsed the training members to predict")

    loaded = PromptClassifier.load(saved)
    monkeypatch.setattr(modelfile.TrainingMembers, "store", refuse)
    monkeypatch.setattr(modelfile.TrainingMembers, "cached", refuse)
    assert len(loaded.predict(["a wonderful film", "boring and dull"])) == 2
    assert loaded.predict_proba(["mixed"]).shape == (1, 2)


def test_non_finite_and_misshapen_arrays(saved, tmp_path):
    coef = npy(np.full((1, 64), np.nan, np.float32))
    load_fails(forge(saved, tmp_path / "a.clf", members={"head/coef.npy": coef}), "NaN or infinite")
    proba = npy(np.full((5, 3), 0.5, np.float32))
    e = load_fails(forge(saved, tmp_path / "b.clf", members={"calibration/proba.npy": proba}), "expected")
    assert e.member == "calibration/proba.npy"
    labels = npy(np.full(len(np.load(io.BytesIO(zipfile.ZipFile(saved).read("calibration/labels.npy")))), 7, np.int32))
    load_fails(forge(saved, tmp_path / "c.clf", members={"calibration/labels.npy": labels}), "outside 0..1")
    load_fails(forge(saved, tmp_path / "d.clf", members={"calibration/labels.npy": None}), "needs both")


def test_zip_with_an_unknown_version_needed(saved, tmp_path):
    raw = bytearray(saved.read_bytes())
    i = raw.rfind(b"PK\x01\x02")  # last central directory entry: "version needed to extract" at +6
    raw[i + 6 : i + 8] = (135).to_bytes(2, "little")
    p = tmp_path / "v.clf"
    p.write_bytes(bytes(raw))
    load_fails(p, "not a promptclf model file|corrupt")


def test_version_from_a_newer_minor_warns(saved, tmp_path, caplog):
    p = forge(saved, tmp_path / "n.clf", manifest=set_(["promptclf_version"], "0.99.0"))
    with caplog.at_level(logging.WARNING, logger="promptclf"):
        PromptClassifier.load(p)
    assert "written by promptclf 0.99.0, newer than this" in caplog.text


# ------------------------------------------------------------------ save
def test_save_keeps_the_mode_and_cleans_stale_temporaries(trained, saved, tmp_path):
    os.chmod(saved, 0o644)
    stale = tmp_path / f".{saved.name}.999999999.abc.tmp"  # a killed writer's leftover (no such pid)
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".{saved.name}.{os.getpid()}.live.tmp"  # our own process: never touched
    live.write_bytes(b"y")
    trained.save(saved)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o644
    assert not stale.exists() and live.exists()
    fresh = tmp_path / "fresh.clf"
    old = os.umask(0o027)
    try:
        trained.save(fresh)
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
