"""L1: an in-process LRU bounded by bytes, with a per-entry expiry.

Bounded by bytes, not by item count, because entries range from a 100-byte intent to a
20 kB chat completion: a count limit is either wasteful or unbounded in memory. An
entry's size is its key plus its stored blob (the serialized value) plus a fixed
``ENTRY_OVERHEAD`` for the Python objects and LRU bookkeeping around them (measured with
tracemalloc on CPython 3.11; see ``tests/unit/test_cache_memory.py``).

The layer stores the *serialized* blob and the cache decodes on each hit: a hit costs a
few microseconds of JSON parsing, and in exchange no caller can mutate an object that
another caller will receive later.

Not thread-safe: it is used from one event loop, where nothing runs between two lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import LRUCache

__all__ = ["ENTRY_OVERHEAD", "MemoryLayer"]

#: Bytes charged per entry beyond key and blob: str and bytes object headers, the entry
#: object, and cachetools' two dicts + LRU order link. Measured ~300; rounded up.
ENTRY_OVERHEAD = 320


class _Entry:
    __slots__ = ("blob", "expires_at", "size")

    def __init__(self, blob: bytes, expires_at: float, size: int) -> None:
        self.blob = blob
        self.expires_at = expires_at
        self.size = size


def _sizeof(entry: _Entry) -> int:
    return entry.size


class MemoryLayer:
    """LRU of ``key -> blob`` holding at most ``max_bytes`` (see module docstring)."""

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.time) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._clock = clock
        self._lru: LRUCache[str, _Entry] = LRUCache(maxsize=max_bytes, getsizeof=_sizeof)

    def get(self, key: str) -> tuple[bytes, float] | None:
        """Return ``(blob, expires_at)`` and mark the entry recently used; None if absent or expired."""
        entry = self._lru.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            # Drop it now so its bytes are free for live entries.
            self._lru.pop(key, None)
            return None
        return entry.blob, entry.expires_at

    def set(self, key: str, blob: bytes, expires_at: float) -> bool:
        """Store ``blob`` until ``expires_at`` (Unix seconds); evict LRU entries to make room.

        Returns False, storing nothing, when the entry alone exceeds the whole budget.
        """
        size = len(key) + len(blob) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            self._lru.pop(key, None)  # never leave an older value behind a newer, uncacheable one
            return False
        self._lru[key] = _Entry(blob, expires_at, size)
        return True

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._lru.pop(key, None)

    def clear(self) -> None:
        """Remove every entry."""
        self._lru.clear()

    @property
    def bytes_used(self) -> int:
        """Bytes charged for the entries currently held (expired ones included until touched)."""
        return int(self._lru.currsize)

    def __len__(self) -> int:
        return len(self._lru)
