"""L1: bounded by bytes, least recently used evicted first, per-entry expiry."""

from __future__ import annotations

import gc
import tracemalloc

from director_llm.cache.memory import ENTRY_OVERHEAD, MemoryLayer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_eviction_keeps_total_bytes_under_the_limit() -> None:
    entry = len("k00") + 1000 + ENTRY_OVERHEAD
    layer = MemoryLayer(10 * entry)
    for i in range(50):
        assert layer.set(f"k{i:02d}", bytes(1000), expires_at=2e9)
        assert layer.bytes_used <= 10 * entry
    assert len(layer) == 10
    assert layer.get("k00") is None and layer.get("k49") is not None


def test_big_values_count_for_more_than_small_ones() -> None:
    layer = MemoryLayer(20_000)
    for i in range(100):
        layer.set(f"small{i}", bytes(10), expires_at=2e9)
    small_entries = len(layer)
    assert small_entries > 50  # ~337 bytes each
    layer.set("big", bytes(15_000), expires_at=2e9)
    assert layer.get("big") is not None
    assert layer.bytes_used <= 20_000
    assert len(layer) < 20  # the big entry pushed most small ones out


def test_recently_read_entries_survive_eviction() -> None:
    entry = len("k0") + 100 + ENTRY_OVERHEAD
    layer = MemoryLayer(3 * entry)
    for key in ("k0", "k1", "k2"):
        layer.set(key, bytes(100), expires_at=2e9)
    assert layer.get("k0") is not None  # k0 is now the most recently used
    layer.set("k3", bytes(100), expires_at=2e9)
    assert layer.get("k0") is not None
    assert layer.get("k1") is None


def test_entries_expire_and_free_their_bytes() -> None:
    clock = Clock()
    layer = MemoryLayer(10_000, clock=clock)
    layer.set("a", b"x" * 10, expires_at=clock.now + 1)
    assert layer.get("a") == (b"x" * 10, clock.now + 1)
    clock.now += 1.0
    assert layer.get("a") is None
    assert layer.bytes_used == 0 and len(layer) == 0


def test_a_value_larger_than_the_budget_is_refused_and_replaces_nothing_stale() -> None:
    layer = MemoryLayer(1000)
    layer.set("k", b"old", expires_at=2e9)
    assert layer.set("k", bytes(5000), expires_at=2e9) is False
    assert layer.get("k") is None  # the old value must not outlive a newer write


def test_entry_overhead_matches_measured_python_memory() -> None:
    # The byte budget is only honest if ENTRY_OVERHEAD is close to what CPython really
    # spends per entry beyond the key and value bytes.
    n = 5000
    keys = [f"director:v1:ns:{i:032x}" for i in range(n)]
    blobs = [bytes(100) + i.to_bytes(4, "big") for i in range(n)]
    layer = MemoryLayer(10**9)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, blob in zip(keys, blobs, strict=False):
            layer.set(key, blob, expires_at=2e9)
        structures = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    # str and bytes object headers (~49 + ~33 bytes) were allocated before measuring.
    real = structures + 49 + 33
    assert 0.6 * ENTRY_OVERHEAD <= real <= 1.2 * ENTRY_OVERHEAD, real
