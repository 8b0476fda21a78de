"""Counters of the tiered cache, and the frozen snapshot ``TieredCache.stats()`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CacheStats", "LayerName", "LayerStats"]

LayerName = Literal["memory", "redis", "disk"]


@dataclass
class LayerCounters:
    """Mutable per-layer counters (internal; snapshot with ``freeze``)."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    corrupt: int = 0
    skipped: int = 0

    def freeze(self, *, entries: int | None, state: str) -> LayerStats:
        return LayerStats(
            hits=self.hits,
            misses=self.misses,
            errors=self.errors,
            corrupt=self.corrupt,
            skipped=self.skipped,
            entries=entries,
            state=state,
        )


@dataclass(frozen=True)
class LayerStats:
    """One layer's counters since the cache was built.

    ``misses`` counts lookups that reached the layer and found nothing (a lookup served
    by a layer above never reaches it). ``errors`` are failed calls (each also counted as a
    miss), ``corrupt`` undecodable entries (deleted, counted as misses), ``skipped`` lookups
    that bypassed a layer that was down. ``state`` is ``"up"``, ``"down"`` or ``"off"``.
    """

    hits: int
    misses: int
    errors: int
    corrupt: int
    skipped: int
    entries: int | None
    state: str

    @property
    def hit_rate(self) -> float:
        """Hits over lookups that reached this layer (0.0 before any)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True)
class CacheStats:
    """Snapshot of a ``TieredCache``: per-layer counters, totals, memory use, single-flight.

    ``computes`` counts ``compute()`` calls made by ``get_or_compute``; ``coalesced`` the
    calls that joined one already in flight instead. ``dropped_writes`` are background
    writes refused because ``MAX_PENDING_WRITES`` were in flight; ``encode_errors`` values
    the codec could not serialize (returned, not cached).
    """

    namespace: str
    layers: dict[str, LayerStats]
    lookups: int
    hits: int
    memory_bytes: int
    memory_max_bytes: int
    computes: int = 0
    coalesced: int = 0
    pending_writes: int = 0
    dropped_writes: int = 0
    encode_errors: int = 0

    @property
    def misses(self) -> int:
        """Lookups no layer could serve."""
        return self.lookups - self.hits

    @property
    def hit_rate(self) -> float:
        """Lookups served by any layer, over all lookups (0.0 before any)."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def redis_state(self) -> str:
        """``"up"``, ``"down"`` or ``"off"``."""
        layer = self.layers.get("redis")
        return layer.state if layer else "off"
