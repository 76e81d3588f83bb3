"""Hashed TF-IDF: a text representation that needs no vocabulary file, no network, no model.

Tokens are lower-cased words and single punctuation marks; unigrams and bigrams are
hashed (CRC-32, stable across processes and machines, unlike ``hash()``) into
``dimensions`` buckets. A document's vector is ``(1 + log tf) * idf``, L2-normalized, so a
dot product with a unit-length centroid is a cosine similarity.

The IDF weights are learned on a training corpus and shipped inside the artifact
(:class:`TextSpec`), so the router computes exactly the vectors the trainer clustered.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable

import msgspec
import numpy as np

DEFAULT_MAX_CHARS = 2000
TOKEN_PATTERN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")
# TOKEN_PATTERN with the one-character tokens grouped into runs, expanded afterwards: text
# written without spaces (Chinese, Japanese) is then a handful of matches instead of one per
# character (10× faster); the tokens are the same (asserted in the tests).
_RUN_PATTERN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]+")
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_BIGRAM_MULTIPLIER = 0x9E3779B1
_CACHE_LIMIT = 200_000


class TextSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How prompt text becomes a vector; part of the artifact's feature schema."""

    method: str = "hashed-tfidf"
    hash: str = "crc32"
    dimensions: int = 2048
    ngrams: int = 2
    # Only the first max_chars characters feed the text features (lengths count the whole
    # prompt): routing time is bounded whatever the prompt's length. Artifacts record it.
    max_chars: int = DEFAULT_MAX_CHARS
    idf: list[float] = []


class HashedTfidf:
    """Sparse hashed TF-IDF vectors of prompts, per :class:`TextSpec`.

    Example:
        >>> spec = fit_idf(["def f(x): return x", "What is 2 + 2?"], dimensions=64)
        >>> idx, weights = HashedTfidf(spec).sparse("What is 3 + 3?")
        >>> round(float((weights ** 2).sum()), 6)
        1.0
    """

    def __init__(self, spec: TextSpec) -> None:
        if spec.method != "hashed-tfidf" or spec.hash != "crc32":
            raise ValueError(f"unsupported text representation {spec.method}/{spec.hash}")
        self.spec = spec
        self.dimensions = spec.dimensions
        self.idf = np.asarray(spec.idf, dtype=np.float64) if spec.idf else np.ones(spec.dimensions)
        if self.idf.shape != (spec.dimensions,):
            raise ValueError(f"idf has {self.idf.shape[0]} weights for {spec.dimensions} dimensions")
        self._cache: dict[str, int] = {}

    def hashes(self, text: str) -> list[int]:
        """Bucket index of every unigram and bigram of ``text`` (with repeats)."""
        indices: list[int] = self.buckets(text).tolist()
        return indices

    def buckets(self, text: str) -> np.ndarray:
        """:meth:`hashes` as an int64 array: unigrams, then bigrams (see :meth:`buckets_of_tokens`)."""
        return self.buckets_of_tokens(self.tokens(text))

    def tokens(self, text: str) -> list[str]:
        """The tokens of ``text``'s first ``max_chars`` characters, lower-cased (with repeats)."""
        lower = text[: self.spec.max_chars].lower()
        if lower.isascii() or 2 * len(lower.encode("ascii", "ignore")) > len(lower):
            tokens: list[str] = TOKEN_PATTERN.findall(lower)
            return tokens
        tokens = []
        for run in _RUN_PATTERN.findall(lower):
            if run[0] in _WORD_START:
                tokens.append(run)
            else:
                tokens.extend(run)
        return tokens

    def buckets_of_tokens(self, tokens: list[str]) -> np.ndarray:
        """:meth:`buckets` of text already split by :meth:`tokens`.

        The bigram hash ``(a·0x9E3779B1) ^ b`` of two 32-bit CRCs is below 2⁶⁴, so uint64
        arithmetic gives exactly the Python-int values.
        """
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        if not tokens:
            return np.zeros(0, dtype=np.int64)
        for token in set(tokens).difference(cache):
            cache[token] = zlib.crc32(token.encode("utf-8"))
        u = np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        dims = np.uint64(self.dimensions)
        if self.spec.ngrams >= 2 and len(u) > 1:
            u = np.concatenate([u, (u[:-1] * np.uint64(_BIGRAM_MULTIPLIER)) ^ u[1:]])
        return (u % dims).astype(np.int64)

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(bucket indices, unit-norm weights) of ``text``; empty arrays for empty text."""
        return self.sparse_of_tokens(self.tokens(text))

    def sparse_of_tokens(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sparse` of text already split by :meth:`tokens`."""
        buckets = self.buckets_of_tokens(tokens)
        if not buckets.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        counts = np.bincount(buckets, minlength=self.dimensions)  # = np.unique's counts, without a sort
        idx = np.flatnonzero(counts)
        weights = (1.0 + np.log(counts[idx])) * self.idf[idx]
        norm = math.sqrt(float(weights @ weights))
        if norm > 0:
            weights /= norm
        return idx, weights

    def dense(self, texts: Iterable[str]) -> np.ndarray:
        """Rows of unit-norm vectors (float32), one per text."""
        texts = list(texts)
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            idx, weights = self.sparse(text)
            matrix[row, idx] = weights
        return matrix


def fit_idf(
    texts: Iterable[str], *, dimensions: int = 2048, ngrams: int = 2, max_chars: int = DEFAULT_MAX_CHARS
) -> TextSpec:
    """Learn smoothed IDF weights ``log((1 + N) / (1 + df)) + 1`` over a corpus (each text's first ``max_chars``)."""
    blank = HashedTfidf(TextSpec(dimensions=dimensions, ngrams=ngrams, max_chars=max_chars))
    df = np.zeros(dimensions, dtype=np.float64)
    n = 0
    for text in texts:
        n += 1
        df[np.unique(blank.buckets(text))] += 1
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    return TextSpec(dimensions=dimensions, ngrams=ngrams, max_chars=max_chars, idf=[round(float(v), 6) for v in idf])
