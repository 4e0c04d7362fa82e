"""Word 1-2-gram TF-IDF columns for the static fast path, computed without scikit-learn.

The same columns as scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)``
(lower-cased, tokens of two or more word characters, ``1 + log(tf)`` times the idf, each row scaled
to unit length), fit with scikit-learn at training and computed here at prediction: importing
scikit-learn is over a second of a cold start (bench/fast_features.py), a regular expression and a
dictionary are not. Beside the static vectors they let the fast path's head see word pairs ("how
many", "who was") that mean-pooled token vectors blur: on the dev sets the share it could answer at
a 1% bound went from 32 / 74 / 31% to 47 / 80 / 60% (BENCHMARKS.md, "What the fast path's first stage
could answer").
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
MIN_DF = 2
MAX_TERMS = 100_000  # the most frequent terms kept; a bound on the .clf member too


@dataclass
class WordColumns:
    """The fitted vocabulary (column order) and the idf of each term."""

    vocabulary: list[str]
    idf: np.ndarray  # (n_terms,) float32
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # built once here, not lazily at the first prediction: a served model predicts from several threads
        self._index = {t: i for i, t in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts: list[str]) -> WordColumns:
        """Fit on ``texts`` with scikit-learn (training only)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=MIN_DF, sublinear_tf=True, max_features=MAX_TERMS)
        try:
            vec.fit(texts)
        except ValueError:  # no term in two texts: no columns
            return cls([], np.zeros(0, np.float32))
        terms = vec.get_feature_names_out().tolist()
        return cls(terms, vec.idf_.astype(np.float32))

    @property
    def n_terms(self) -> int:
        return len(self.vocabulary)

    def transform(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR parts ``(indptr, indices, data)`` of the TF-IDF rows of ``texts``, each of unit length."""
        index = self._index
        indptr, cols, tfs = [0], [], []
        for text in texts:  # the terms of each text counted in Python, the arithmetic once for all texts
            words = TOKEN.findall(text.lower())
            counts: dict[int, int] = {}
            for term in (*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))):
                j = index.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            cols.extend(counts)
            tfs.extend(counts.values())
            indptr.append(len(cols))
        indices = np.array(cols, np.int64)
        vals = (1.0 + np.log(np.array(tfs, np.float64))) * self.idf[indices]
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=len(texts)))  # > 0: every idf >= 1
        return np.asarray(indptr, np.int64), indices, (vals / norms[rows]).astype(np.float32)

    def matrix(self, texts: list[str]) -> Any:
        """The rows as a scipy sparse matrix (training: scikit-learn fits on it)."""
        from scipy.sparse import csr_matrix

        indptr, indices, data = self.transform(texts)
        return csr_matrix((data, indices, indptr), shape=(len(texts), self.n_terms))

    def scores(self, texts: list[str], coef: np.ndarray) -> np.ndarray:
        """``rows @ coef.T`` for ``coef`` of shape (k, n_terms), with numpy only (prediction)."""
        indptr, indices, data = self.transform(texts)
        out = np.zeros((len(texts), coef.shape[0]), np.float32)
        if len(indices):
            parts = coef.T[indices] * data[:, None]  # (nnz, k)
            rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
            np.add.at(out, rows, parts)
        return out
