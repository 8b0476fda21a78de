"""Nearest-example memory: a second, similarity-based opinion blended with the classifier.

For each intent, the cosine similarity of the message to its *closest* training example
(USE-m3 space) becomes a logit; an extra "nothing is close" slot with fixed similarity
``oos_similarity`` competes with them. A softmax at ``temperature`` turns these into a
distribution. It is blended with the logistic regression's probabilities because the two
fail differently: the classifier is confident far from the data (it extrapolates a linear
boundary), while the nearest-example view knows when a message resembles nothing it has
seen. Measured on CLINC150 val with 10 examples per intent (3 draws), at out-of-scope
recall 0.90: in-scope accuracy 0.857 without, 0.872 with weight 0.3 (temperature 0.07,
oos similarity 0.65).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExampleMemory"]

# Queries per block when scoring many texts: bounds the (block x n_examples) similarity matrix.
_BLOCK = 256


class ExampleMemory:
    """Training embeddings grouped by label, scored by max cosine similarity per label."""

    def __init__(
        self,
        embeddings: np.ndarray,
        label_index: np.ndarray,
        n_labels: int,
        *,
        oos_index: int | None,
        temperature: float,
        oos_similarity: float,
    ) -> None:
        order = np.argsort(label_index, kind="stable")
        self._emb = np.ascontiguousarray(embeddings[order], dtype=np.float32)
        sorted_labels = label_index[order]
        # Start row of each label's block, for np.maximum.reduceat.
        self._starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        self._block_labels = sorted_labels[self._starts]
        self._n_labels = n_labels
        self._oos_index = oos_index
        self._temperature = temperature
        self._oos_similarity = oos_similarity

    def probabilities(self, queries: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` distribution; when no label is out-of-scope, the mass of the
        "nothing is close" slot is left unassigned (rows then sum to less than 1)."""
        return self.scores(queries)[0]

    def scores(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``probabilities``, the highest cosine similarity to any example, per query)."""
        out = np.empty((len(queries), self._n_labels), dtype=np.float64)
        best = np.empty(len(queries), dtype=np.float64)
        for lo in range(0, len(queries), _BLOCK):
            out[lo : lo + _BLOCK], best[lo : lo + _BLOCK] = self._block(queries[lo : lo + _BLOCK])
        return out, best

    def _block(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = np.asarray(queries, dtype=np.float32) @ self._emb.T
        best = np.maximum.reduceat(sims, self._starts, axis=1)
        logits = np.full((len(queries), self._n_labels + 1), -np.inf)
        logits[:, self._block_labels] = best
        nearest = best.max(axis=1) if best.shape[1] else np.zeros(len(queries))
        none_close = np.full(len(queries), self._oos_similarity)
        if self._oos_index is not None:
            logits[:, self._oos_index] = np.maximum(logits[:, self._oos_index], none_close)
            logits[:, -1] = -np.inf
        else:
            logits[:, -1] = none_close
        logits = logits / self._temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p[:, : self._n_labels], nearest

    # -- storage (plain arrays, see ``store``) --------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The memory's state as arrays (embeddings grouped by label, and their labels)."""
        labels = np.repeat(self._block_labels, np.diff(np.r_[self._starts, len(self._emb)]))
        return {"knn_embeddings": self._emb, "knn_labels": labels.astype(np.int64)}

    @classmethod
    def from_arrays(
        cls,
        arrays: dict[str, np.ndarray],
        n_labels: int,
        *,
        oos_index: int | None,
        temperature: float,
        oos_similarity: float,
    ) -> ExampleMemory:
        emb, labels = arrays["knn_embeddings"], arrays["knn_labels"]
        if (
            emb.ndim != 2
            or labels.shape != (len(emb),)
            or (len(labels) and not 0 <= labels.min() <= labels.max() < n_labels)
        ):
            raise ValueError("example memory arrays are inconsistent")
        return cls(emb, labels, n_labels, oos_index=oos_index, temperature=temperature, oos_similarity=oos_similarity)
