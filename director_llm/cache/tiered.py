"""The multi-layer cache: memory -> Redis -> disk, single-flight, never fails a request.

Reading a key tries each enabled layer top-down; a hit in a lower layer is copied to the
layers above it (with its remaining lifetime, not a fresh TTL). Writing stores into
memory at once and into Redis and disk on background tasks, so a caller never waits on
I/O to *store* an answer; ``flush()``/``aclose()`` wait for those writes.

Every layer failure becomes a miss: a dead Redis, a locked SQLite file and an entry that
does not decode all give ``None`` (corrupt entries are deleted), and are counted in
``stats()``. Only a misconfiguration at construction raises (``ConfigError``); a corrupt
disk database is moved aside and rebuilt (``cache.disk``).

What a layer returns is not trusted: anyone who can write to Redis or the disk directory
can plant bytes. An entry is used only if its envelope is intact (and, with a
``signing_key``, validly signed for its key: ``cache.codec``) and the codec accepts it; a
codec may validate (the classification codec checks flows, confidence and bounds). Anything
else is a miss, deleted from that layer (so the next answer overwrites it), counted as
``corrupt`` and reported by a warning at most once a minute per layer.

Keys are namespaced ``director:v1:<namespace>:<key>`` in every layer; the caller derives
``namespace`` from a fingerprint of the config (``keys.fingerprint``), so a config change
starts from an empty cache instead of serving answers of the old config.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from director_llm.cache.codec import Codec, EnvelopeError, JsonCodec, pack, unpack
from director_llm.cache.memory import MemoryLayer
from director_llm.cache.stats import CacheStats, LayerCounters, LayerName, LayerStats
from director_llm.errors import CacheError, ConfigError

__all__ = ["KEY_PREFIX", "CacheHit", "TieredCache"]

T = TypeVar("T")

#: Bump the version when the envelope or key scheme changes: old entries are then ignored.
KEY_PREFIX = "director:v1:"
DEFAULT_REDIS_TIMEOUT_S = 0.1
DEFAULT_REDIS_BACKOFF_S = 5.0
#: Background writes allowed in flight; beyond this, writes to Redis/disk are dropped
#: (counted) rather than queued without bound while a layer is slow.
MAX_PENDING_WRITES = 10_000
_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_DISK_WARN_EVERY_S = 60.0
_CORRUPT_WARN_EVERY_S = 60.0


class _Corrupt:
    """A payload the codec refused, and why (for the warning)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CacheHit(Generic[T]):
    """A value found in the cache and the layer that served it."""

    value: T
    layer: LayerName


class TieredCache:
    """Memory (bytes-bounded LRU) -> Redis -> disk cache with per-entry TTL.

    A layer whose argument is None (or ``memory_bytes`` 0) is off. ``codec`` turns values
    into bytes (JSON by default; ``PydanticCodec(Model)`` to get models back); every
    method takes a per-call ``codec`` too. Use one instance per event loop.
    """

    def __init__(
        self,
        *,
        memory_bytes: int | None,
        redis_url: str | None,
        disk_path: str | Path | None,
        ttl_seconds: float,
        namespace: str,
        redis_timeout_s: float = DEFAULT_REDIS_TIMEOUT_S,
        redis_backoff_s: float = DEFAULT_REDIS_BACKOFF_S,
        codec: Codec[Any] | None = None,
        disk_size_limit_bytes: int | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        signing_key: bytes | None = None,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(
                f"cache namespace {namespace!r} must be 1-100 characters of A-Z a-z 0-9 _ . - "
                "(use keys.fingerprint(...) to derive one)"
            )
        if not ttl_seconds > 0:
            raise ConfigError(f"[caching] ttl_seconds must be > 0, got {ttl_seconds}", key="caching.ttl_seconds")
        self.namespace = namespace
        self.ttl_seconds = float(ttl_seconds)
        self._prefix = f"{KEY_PREFIX}{namespace}:"
        self._codec: Codec[Any] = codec or JsonCodec()
        self._signing_key = signing_key
        self._clock = clock
        self._log = logger or logging.getLogger("director_llm.cache")
        self._memory = MemoryLayer(memory_bytes, clock=clock) if memory_bytes else None
        self._redis = None
        if redis_url:
            from director_llm.cache.redis import RedisLayer

            self._redis = RedisLayer(redis_url, timeout_s=redis_timeout_s, backoff_s=redis_backoff_s, logger=self._log)
        self._disk = None
        if disk_path:
            from director_llm.cache.disk import DEFAULT_SIZE_LIMIT_BYTES, DiskLayer

            self._disk = DiskLayer(
                disk_path, size_limit_bytes=disk_size_limit_bytes or DEFAULT_SIZE_LIMIT_BYTES, logger=self._log
            )
        self._counters: dict[LayerName, LayerCounters] = {
            "memory": LayerCounters(),
            "redis": LayerCounters(),
            "disk": LayerCounters(),
        }
        self._lookups = self._hits = self._computes = self._coalesced = 0
        self._dropped_writes = self._encode_errors = 0
        self._disk_warned_at = -_DISK_WARN_EVERY_S
        self._corrupt_warned_at: dict[LayerName, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[str, asyncio.Task[tuple[Any, bytes | None, LayerName | None]]] = {}

    # ----------------------------------------------------------------- reading
    async def get(self, key: str, *, codec: Codec[Any] | None = None) -> CacheHit[Any] | None:
        """Return the value under ``key`` and the layer that had it, or None on a miss."""
        codec = codec or self._codec
        self._lookups += 1
        full = self._prefix + key
        hit = self._get_memory(full, codec)
        if hit is None:
            hit = await self._get_lower(full, codec)
        if hit is not None:
            self._hits += 1
            return CacheHit(hit[0], hit[2])
        return None

    def _get_memory(self, full: str, codec: Codec[Any]) -> tuple[Any, bytes, LayerName] | None:
        if self._memory is None:
            return None
        counters = self._counters["memory"]
        found = self._memory.get(full)
        if found is None:
            counters.misses += 1
            return None
        value = self._decode(codec, found[0])
        if isinstance(value, _Corrupt):  # e.g. read with another codec, or refused by a validating one
            self._memory.delete(full)
            counters.corrupt += 1
            counters.misses += 1
            self._warn_corrupt("memory", full, value.reason)
            return None
        counters.hits += 1
        return value, found[0], "memory"

    async def _get_lower(self, full: str, codec: Codec[Any]) -> tuple[Any, bytes, LayerName] | None:
        redis, disk = self._redis, self._disk
        if redis is not None:
            counters = self._counters["redis"]
            if not redis.available:
                counters.skipped += 1
            else:
                try:
                    blob = await redis.get(full)
                except CacheError:
                    counters.errors += 1
                    blob = None
                found = self._open(full, blob, codec, "redis")
                if found is not None:
                    value, payload, expires_at = found
                    self._promote_memory(full, payload, expires_at)
                    return value, payload, "redis"
        if disk is not None:
            counters = self._counters["disk"]
            try:
                blob = disk.get(full)
            except CacheError as exc:
                counters.errors += 1
                self._warn_disk(exc)
                blob = None
            found = self._open(full, blob, codec, "disk")
            if found is not None:
                value, payload, expires_at = found
                self._promote_memory(full, payload, expires_at)
                if redis is not None and redis.available:
                    self._spawn(self._write_redis(full, self._pack(full, payload, expires_at), expires_at))
                return value, payload, "disk"
        return None

    def _open(
        self, full: str, blob: bytes | None, codec: Codec[Any], layer: LayerName
    ) -> tuple[Any, bytes, float] | None:
        """Envelope + decode ``blob`` from ``layer``; count the outcome; drop it if corrupt."""
        counters = self._counters[layer]
        if blob is None:
            counters.misses += 1
            return None
        try:
            expires_at, payload = unpack(blob, key=full, signing_key=self._signing_key)
        except EnvelopeError as exc:
            value: Any = _Corrupt(str(exc))
        else:
            if expires_at <= self._clock():
                counters.misses += 1  # the layer's own TTL lags a little; ours is authoritative
                return None
            value = self._decode(codec, payload)
        if isinstance(value, _Corrupt):
            counters.corrupt += 1
            counters.misses += 1
            self._warn_corrupt(layer, full, value.reason)
            self._spawn(self._delete_in(layer, full))
            return None
        counters.hits += 1
        return value, payload, expires_at

    @staticmethod
    def _decode(codec: Codec[Any], payload: bytes) -> Any:
        try:
            return codec.loads(payload)
        except Exception as exc:  # noqa: BLE001 - codecs are pluggable: any failure to decode means "corrupt"
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            return _Corrupt(f"{type(exc).__name__}: {first_line[:200]}")

    def _pack(self, full: str, payload: bytes, expires_at: float) -> bytes:
        return pack(payload, expires_at, key=full, signing_key=self._signing_key)

    def _warn_corrupt(self, layer: LayerName, full: str, reason: str) -> None:
        # A warning, not debug: an invalid entry in a shared store may be an attack. At most
        # one per layer per interval, so a flood of planted entries cannot flood the log.
        now = time.monotonic()
        if now - self._corrupt_warned_at.get(layer, -_CORRUPT_WARN_EVERY_S) >= _CORRUPT_WARN_EVERY_S:
            self._corrupt_warned_at[layer] = now
            self._log.warning(
                "cache: ignoring and deleting an invalid %s entry %s (%s); treated as a miss", layer, full, reason
            )
        else:
            self._log.debug("cache: dropping invalid %s entry %s (%s)", layer, full, reason)

    def _promote_memory(self, full: str, payload: bytes, expires_at: float) -> None:
        if self._memory is not None:
            self._memory.set(full, payload, expires_at)

    # ----------------------------------------------------------------- writing
    async def set(
        self, key: str, value: Any, *, ttl_seconds: float | None = None, codec: Codec[Any] | None = None
    ) -> None:
        """Store ``value`` in every enabled layer: memory now, Redis and disk in the background.

        A value the codec cannot encode is logged and not stored (never raised).
        """
        codec = codec or self._codec
        try:
            payload = codec.dumps(value)
        except Exception as exc:  # noqa: BLE001 - pluggable codec; an unencodable answer must not fail the request
            self._encode_errors += 1
            self._log.warning("cache: cannot encode %s for key %s: %s", type(value).__name__, key, exc)
            return
        self._store(self._prefix + key, payload, ttl_seconds or self.ttl_seconds)

    def _store(self, full: str, payload: bytes, ttl: float) -> None:
        expires_at = self._clock() + ttl
        if self._memory is not None:
            self._memory.set(full, payload, expires_at)
        if self._redis is None and self._disk is None:
            return
        blob = self._pack(full, payload, expires_at)
        if self._redis is not None and self._redis.available:
            self._spawn(self._write_redis(full, blob, expires_at))
        if self._disk is not None:
            self._spawn(self._write_disk(full, blob, ttl))

    async def _write_redis(self, full: str, blob: bytes, expires_at: float) -> None:
        assert self._redis is not None
        ttl_ms = int((expires_at - self._clock()) * 1000)
        if ttl_ms <= 0:
            return
        try:
            await self._redis.set(full, blob, ttl_ms)
        except CacheError:
            self._counters["redis"].errors += 1

    async def _write_disk(self, full: str, blob: bytes, ttl: float) -> None:
        assert self._disk is not None
        try:
            await self._disk.set(full, blob, ttl, tag=self.namespace)
        except CacheError as exc:
            self._counters["disk"].errors += 1
            self._warn_disk(exc)

    async def _delete_in(self, layer: LayerName, full: str) -> None:
        try:
            if layer == "memory" and self._memory is not None:
                self._memory.delete(full)
            elif layer == "redis" and self._redis is not None and self._redis.available:
                await self._redis.delete(full)
            elif layer == "disk" and self._disk is not None:
                await self._disk.delete(full)
        except CacheError:
            self._counters[layer].errors += 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= MAX_PENDING_WRITES:
            coro.close()
            self._dropped_writes += 1
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _warn_disk(self, exc: BaseException) -> None:
        if getattr(exc, "logged", False):
            return  # the disk layer rebuilt a corrupt database and said so
        now = time.monotonic()
        if now - self._disk_warned_at >= _DISK_WARN_EVERY_S:
            self._disk_warned_at = now
            self._log.warning("cache: disk layer failing (%s); treating as misses", exc)

    # ----------------------------------------------------------- single flight
    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl_seconds: float | None = None,
        codec: Codec[Any] | None = None,
    ) -> tuple[T, LayerName | None]:
        """Return ``(value, layer)`` from the cache, or ``(compute(), None)`` and store it.

        Concurrent calls for the same missing key in this process share one lookup and one
        ``compute()`` call (single flight); each caller gets its own decoded copy. If
        ``compute`` raises, every waiting caller gets the exception and nothing is stored.
        Cancelling one caller does not cancel the computation the others wait for.
        """
        codec = codec or self._codec
        self._lookups += 1
        full = self._prefix + key
        hit = self._get_memory(full, codec)
        if hit is not None:
            self._hits += 1
            return hit[0], "memory"
        flight = self._inflight.get(full)
        leader = flight is None
        if flight is None:
            flight = asyncio.get_running_loop().create_task(
                self._fly(full, compute, codec, ttl_seconds or self.ttl_seconds)
            )
            self._inflight[full] = flight
            flight.add_done_callback(lambda t: self._end_flight(full, t))
        else:
            self._coalesced += 1
        value, payload, layer = await asyncio.shield(flight)
        if layer is not None:
            self._hits += 1
        if not leader and payload is not None:
            value = codec.loads(payload)  # a private copy: callers may mutate what they get
        return value, layer

    async def _fly(
        self, full: str, compute: Callable[[], Awaitable[Any]], codec: Codec[Any], ttl: float
    ) -> tuple[Any, bytes | None, LayerName | None]:
        hit = await self._get_lower(full, codec)
        if hit is not None:
            return hit
        self._computes += 1
        value = await compute()
        try:
            payload: bytes | None = codec.dumps(value)
        except Exception as exc:  # noqa: BLE001 - still return the answer; just do not cache it
            self._encode_errors += 1
            self._log.warning("cache: cannot encode %s: %s", type(value).__name__, exc)
            return value, None, None
        self._store(full, payload, ttl)  # type: ignore[arg-type]  # bytes: dumps returned
        return value, payload, None

    def _end_flight(self, full: str, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(full) is task:
            del self._inflight[full]
        if not task.cancelled():
            task.exception()  # mark retrieved: if every waiter was cancelled, no "never retrieved" noise

    # ------------------------------------------------------------- management
    async def delete(self, key: str) -> None:
        """Remove ``key`` from every layer (after pending writes, so none resurrects it)."""
        full = self._prefix + key
        await self.flush()
        for layer in ("memory", "redis", "disk"):
            await self._delete_in(layer, full)

    async def clear(self) -> None:
        """Remove every entry of this namespace from every layer (other namespaces are kept)."""
        await self.flush()
        if self._memory is not None:
            self._memory.clear()
        if self._redis is not None and self._redis.available:
            try:
                await self._redis.clear(self._prefix)
            except CacheError:
                self._counters["redis"].errors += 1
        if self._disk is not None:
            try:
                await self._disk.clear(self.namespace)
            except CacheError:
                self._counters["disk"].errors += 1

    async def count_entries(self) -> dict[str, int | None]:
        """Entries of this namespace per enabled layer (None: that layer failed to answer).

        Redis is counted with SCAN (O(keys in the database)): for a CLI, not a request path.
        """
        await self.flush()
        counts: dict[str, int | None] = {}
        if self._memory is not None:
            counts["memory"] = len(self._memory)
        if self._redis is not None:
            try:
                counts["redis"] = await self._redis.count(self._prefix) if self._redis.available else None
            except CacheError:
                counts["redis"] = None
        if self._disk is not None:
            try:
                counts["disk"] = self._disk.count(self.namespace)
            except CacheError:
                counts["disk"] = None
        return counts

    async def flush(self) -> None:
        """Wait until every background write started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stats(self) -> CacheStats:
        """A snapshot of the counters (see ``CacheStats``)."""
        layers: dict[str, LayerStats] = {}
        if self._memory is not None:
            layers["memory"] = self._counters["memory"].freeze(entries=len(self._memory), state="up")
        if self._redis is not None:
            layers["redis"] = self._counters["redis"].freeze(entries=None, state=self._redis.state)
        if self._disk is not None:
            try:
                entries: int | None = len(self._disk)
            except Exception:  # noqa: BLE001 - stats must never raise; a broken store has no count
                entries = None
            layers["disk"] = self._counters["disk"].freeze(entries=entries, state="up")
        return CacheStats(
            namespace=self.namespace,
            layers=layers,
            lookups=self._lookups,
            hits=self._hits,
            memory_bytes=self._memory.bytes_used if self._memory is not None else 0,
            memory_max_bytes=self._memory.max_bytes if self._memory is not None else 0,
            computes=self._computes,
            coalesced=self._coalesced,
            pending_writes=len(self._tasks),
            dropped_writes=self._dropped_writes,
            encode_errors=self._encode_errors,
        )

    async def aclose(self) -> None:
        """Finish background writes, then close Redis connections and the disk store."""
        await self.flush()
        if self._redis is not None:
            await self._redis.aclose()
        if self._disk is not None:
            # Inline: flush() emptied the writer queue, and SQLite connections are per
            # thread, so closing here closes the one this loop's reads used.
            self._disk.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
