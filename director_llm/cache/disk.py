"""L3: diskcache (SQLite + files) at a local directory, survives restarts.

diskcache is synchronous. Reads run inline on the event loop: a point read from SQLite in
WAL mode is a few tens of microseconds (``scripts/bench_cache.py`` measures it), less than
a hop to a thread would cost. Writes take SQLite's write lock and may fsync, so they run
on one dedicated thread: one, because SQLite serializes writers anyway and more threads
would only contend on the lock.

The SQLite busy timeout is short (``_SQLITE_TIMEOUT_S``) because diskcache's default,
60 s, would let another process holding the write lock freeze the event loop.

Only bytes are stored (our envelope), so diskcache never pickles; and ``_NoPickleDisk``
refuses to *unpickle* anything found in the directory, which another program could have
written: such an entry reads as corrupt and is deleted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from director_llm.errors import CacheError, ConfigError

__all__ = ["DiskLayer"]

_SQLITE_TIMEOUT_S = 0.05
#: diskcache's default; entries beyond it are culled least-recently-stored first.
DEFAULT_SIZE_LIMIT_BYTES = 2**30


def _disk_class() -> type:
    import diskcache

    class _NoPickleDisk(diskcache.Disk):  # type: ignore[misc]
        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                return b""  # not our envelope: reads as corrupt
            return super().fetch(mode, filename, value, read)

    return _NoPickleDisk


class DiskLayer:
    """``key -> blob`` in a diskcache directory; reads inline, writes on a worker thread."""

    def __init__(self, path: str | Path, *, size_limit_bytes: int = DEFAULT_SIZE_LIMIT_BYTES) -> None:
        import diskcache

        self.path = Path(path).expanduser()
        try:
            self._cache = diskcache.Cache(
                str(self.path),
                timeout=_SQLITE_TIMEOUT_S,
                disk=_disk_class(),
                size_limit=size_limit_bytes,
                eviction_policy="least-recently-stored",  # no write per read, unlike LRU
                tag_index=True,  # clear() evicts one namespace by tag
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"[caching] disk_cache_path {str(self.path)!r} is not usable ({exc}); "
                "point it at a writable directory or remove it to turn the disk layer off",
                key="caching.disk_cache_path",
            ) from exc
        self._errors: tuple[type[BaseException], ...] = (OSError, sqlite3.Error, diskcache.Timeout)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="director-cache-disk")
        self._closed = False

    def get(self, key: str) -> bytes | None:
        """Read ``key`` (inline; see module doc). ``CacheError`` if the store failed."""
        try:
            value = self._cache.get(key, default=None, retry=False)
        except self._errors as exc:
            raise CacheError(f"disk cache read failed: {type(exc).__name__}: {exc}") from exc
        if value is None or isinstance(value, bytes):
            return value
        return b""  # a str/int someone else stored: not our envelope, reads as corrupt

    async def set(self, key: str, blob: bytes, ttl_s: float, tag: str) -> None:
        """Store ``blob`` for ``ttl_s`` seconds on the writer thread."""
        await self._in_writer(self._cache.set, key, blob, expire=ttl_s, tag=tag, retry=True)

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        await self._in_writer(self._cache.delete, key, retry=True)

    async def clear(self, tag: str) -> int:
        """Remove every entry stored with ``tag`` (one namespace); return the count."""
        return int(await self._in_writer(self._cache.evict, tag, retry=True))

    def count(self, tag: str) -> int:
        """Entries stored with ``tag`` (one namespace), expired ones not yet culled included."""
        try:
            ((n,),) = self._cache._sql("SELECT COUNT(*) FROM Cache WHERE tag = ?", (tag,)).fetchall()
        except self._errors as exc:
            raise CacheError(f"disk cache count failed: {type(exc).__name__}: {exc}") from exc
        return int(n)

    def __len__(self) -> int:
        return len(self._cache)

    async def _in_writer(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise CacheError("disk cache is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))
        except self._errors as exc:
            raise CacheError(f"disk cache write failed: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Wait for queued writes, then close the SQLite connections."""
        self._closed = True
        self._writer.shutdown(wait=True)
        self._cache.close()
