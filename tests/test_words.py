"""The fast path's word columns: scikit-learn's TF-IDF without scikit-learn, and what a .clf holds of them."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from promptclf import modelfile
from promptclf.cascade import FastPath
from promptclf.errors import ModelFileError
from promptclf.head import LinearHead
from promptclf.words import WordColumns
from tests.conftest import FakeEmbedder

CORPUS = [
    "How many people live in Paris?",
    "How many moons does Jupiter have?",
    "Who was the first person on the Moon?",
    "Who was the president of France in 1990?",
    "What is the capital of France?",
    "What is an atom? What is a molecule?",
    "Paris, Paris, PARIS: the city of light",
    "Ünïcödé wörds and ünïcödé wörds again",
]


def test_the_columns_are_scikit_learns():
    """Same terms, same order, same values (to float32 rounding) as TfidfVectorizer, on texts it never saw,
    an empty one, one with no word, and repeated words (the sublinear tf)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = WordColumns.fit(CORPUS)
    ref = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(CORPUS)
    assert words.vocabulary == ref.get_feature_names_out().tolist() and "how many" in words.vocabulary
    texts = [*CORPUS, "", "?! -- !", "how many how many how many", "WHO WAS who was Paris"]
    expected = ref.transform(texts).toarray()
    np.testing.assert_allclose(words.matrix(texts).toarray(), expected, atol=1e-6)
    coef = np.random.default_rng(0).normal(size=(3, words.n_terms)).astype(np.float32)
    np.testing.assert_allclose(words.scores(texts, coef), expected @ coef.T, atol=1e-5)


def test_no_term_in_two_texts_gives_no_columns():
    words = WordColumns.fit(["alpha beta", "gamma delta"])
    assert words.n_terms == 0
    assert words.scores(["alpha"], np.zeros((1, 0), np.float32)).shape == (1, 1)


def saved_with_words(tmp_path, dim: int | None = None):
    """A small model on the fake embedder whose fast path has word columns beside ``dim``-dimensional
    static vectors (the fake embedder's size unless given: the real static model's, to predict with it)."""
    from tests.test_cascade import _toy_classifier

    clf = _toy_classifier(120).train()
    words = WordColumns.fit(CORPUS)
    d = FakeEmbedder().dim if dim is None else dim
    head = LinearHead(clf.classes_, np.ones((1, d + words.n_terms), np.float32), np.zeros(1, np.float32), 1.0)
    clf.fast = True
    clf.fast_ = FastPath({"kind": "model2vec", "model": "all-MiniLM-L6-v2"}, head, 0.9, {"share": 0.5}, words)
    path = tmp_path / "m.clf"
    clf.save(path)
    return path, words


def test_a_clf_keeps_the_word_columns(tmp_path):
    path, words = saved_with_words(tmp_path)
    fast = modelfile.read(path).fast
    assert fast.words.vocabulary == words.vocabulary and np.array_equal(fast.words.idf, words.idf)
    assert fast.head.coef_.shape[1] == FakeEmbedder().dim + words.n_terms


def _edited(path, tmp_path, **members):
    """A copy of ``path`` with ``members`` replaced (None: removed), the manifest's checksums made to match."""
    with zipfile.ZipFile(path) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(data["manifest.json"])
    for name, blob in members.items():
        if name == "manifest":
            manifest = blob(manifest)
        elif blob is None:
            data.pop(name)
            manifest["members"].pop(name)
        else:
            data[name] = blob
            manifest["members"][name] = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    data["manifest.json"] = json.dumps(manifest).encode()
    bad = tmp_path / "bad.clf"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in data.items():
            zf.writestr(n, b)
    return bad


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a, np.float32))
    return buf.getvalue()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda w: {"fast/words.json": json.dumps(w.vocabulary[:-1]).encode()}, "distinct terms"),
        (lambda w: {"fast/words.json": json.dumps([w.vocabulary[0]] * w.n_terms).encode()}, "distinct terms"),
        (lambda w: {"fast/words.json": json.dumps([*w.vocabulary[:-1], 7]).encode()}, "distinct terms"),
        (lambda w: {"fast/words.json": b"{not json"}, "fast/words.json"),
        (lambda w: {"fast/idf.npy": _npy(np.full(w.n_terms, 0.5))}, "at least 1"),
        (lambda w: {"fast/idf.npy": _npy(np.full(w.n_terms + 1, 2.0))}, "fast/idf.npy"),
        (lambda w: {"fast/idf.npy": None}, "word columns need"),
        (lambda w: {"manifest": lambda m: {**m, "fast": {**m["fast"], "words": w.n_terms + 1}}}, "fast/"),
    ],
)
def test_a_clf_with_inconsistent_word_columns_is_refused(tmp_path, change, message):
    path, words = saved_with_words(tmp_path)
    with pytest.raises(ModelFileError, match=message):
        modelfile.read(_edited(path, tmp_path, **change(words)))
