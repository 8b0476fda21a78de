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

A corrupt database (truncated, overwritten: SQLite's "file is not a database", "database
disk image is malformed", or "disk I/O error" for a short read) must not stop the requests
the cache serves. Whether it is found when the layer opens or on a later read or write,
the layer moves ``cache.db`` (and its ``-wal``/``-shm`` files) aside, renamed
``cache.db.corrupt-<UTC time>-<pid>`` so it can be inspected, logs ONE warning naming both
files, and starts an empty database in its place; the failed call is a miss. At most one
rebuild per ``_REBUILD_EVERY_S``: a disk that keeps corrupting what is written stays a
series of misses, not a loop of renames. Value files diskcache keeps beside a large
entry's row are left where they are (orphans, never read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from director_llm.errors import CacheError, ConfigError

__all__ = ["DiskLayer", "is_corruption"]

_SQLITE_TIMEOUT_S = 0.05
#: diskcache's default; entries beyond it are culled least-recently-stored first.
DEFAULT_SIZE_LIMIT_BYTES = 2**30
_DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")
_REBUILD_EVERY_S = 60.0
#: OperationalError messages that mean a damaged or foreign database, not a busy or missing
#: one. "disk I/O error" is also what SQLite reports for a truncated file (a short read).
_CORRUPT_HINTS = ("malformed", "not a database", "no such table", "no such column", "disk i/o error")


def is_corruption(exc: BaseException) -> bool:
    """Whether a SQLite error means the database file itself is damaged (or not diskcache's),
    as opposed to a lock, a permission or a full disk."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if not isinstance(exc, sqlite3.OperationalError):
        return True  # "file is not a database", "database disk image is malformed"
    return any(hint in str(exc).lower() for hint in _CORRUPT_HINTS)


def _disk_class() -> type:
    import diskcache

    class _NoPickleDisk(diskcache.Disk):
        def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
            if mode == diskcache.core.MODE_PICKLE:
                return b""  # not our envelope: reads as corrupt
            return super().fetch(mode, filename, value, read)

    return _NoPickleDisk


class DiskLayer:
    """``key -> blob`` in a diskcache directory; reads inline, writes on a worker thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        size_limit_bytes: int = DEFAULT_SIZE_LIMIT_BYTES,
        logger: logging.Logger | None = None,
    ) -> None:
        import diskcache

        self.path = Path(path).expanduser()
        self._size_limit = size_limit_bytes
        self._log = logger or logging.getLogger("director_llm.cache")
        self._errors: tuple[type[BaseException], ...] = (OSError, sqlite3.Error, diskcache.Timeout)
        self._rebuilt_at = -_REBUILD_EVERY_S
        self.quarantined: list[Path] = []
        """Corrupt database files this layer moved aside (newest last)."""
        try:
            try:
                self._cache = self._connect()
            except sqlite3.Error as exc:
                if not is_corruption(exc):
                    raise
                self._rebuilt_at = time.monotonic()
                self._quarantine(exc)
                self._cache = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"[caching] disk_cache_path {str(self.path)!r} is not usable ({exc}); "
                "point it at a writable directory or remove it to turn the disk layer off",
                key="caching.disk_cache_path",
            ) from exc
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="director-cache-disk")
        self._closed = False

    def _connect(self) -> Any:
        import diskcache

        return diskcache.Cache(
            str(self.path),
            timeout=_SQLITE_TIMEOUT_S,
            disk=_disk_class(),
            size_limit=self._size_limit,
            eviction_policy="least-recently-stored",  # no write per read, unlike LRU
            tag_index=True,  # clear() evicts one namespace by tag
        )

    def _quarantine(self, exc: BaseException) -> None:
        """Move the database files aside (module doc) and log the one warning."""
        suffix = f".corrupt-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}"
        moved: list[Path] = []
        for name in _DB_FILES:
            src = self.path / name
            dst = self.path / (name + suffix)
            try:
                src.rename(dst)
            except FileNotFoundError:
                continue  # another process moved it first, or no WAL file
            except OSError as err:
                self._log.debug("cache: could not move %s aside: %s", src, err)
                continue
            moved.append(dst)
        self.quarantined.extend(moved)
        where = moved[0] if moved else "(nothing moved)"
        self._log.warning(
            "cache: the disk cache database %s is corrupt (%s: %s); moved it aside to %s and started an empty one",
            self.path / _DB_FILES[0],
            type(exc).__name__,
            exc,
            where,
        )

    def _rebuild(self, exc: BaseException) -> bool:
        """Replace a database found corrupt while running (at most once per interval);
        False when it was not the time to."""
        now = time.monotonic()
        if self._closed or now - self._rebuilt_at < _REBUILD_EVERY_S:
            return False
        self._rebuilt_at = now
        old = self._cache
        with contextlib.suppress(Exception):  # this thread's connection to the damaged file
            old.close()
        with contextlib.suppress(RuntimeError):  # the writer thread's (after queued writes)
            self._writer.submit(_close_quietly, old)
        self._quarantine(exc)
        try:
            self._cache = self._connect()
        except (OSError, sqlite3.Error) as err:
            self._log.warning(
                "cache: could not start a new disk cache database in %s (%s); the disk layer keeps missing",
                self.path,
                err,
            )
        return True

    def _failed(self, what: str, exc: BaseException) -> CacheError:
        error = CacheError(f"disk cache {what} failed: {type(exc).__name__}: {exc}")
        # A rebuild logs its own warning; the tiered cache need not add a second one.
        error.logged = is_corruption(exc) and self._rebuild(exc)  # type: ignore[attr-defined]
        return error

    def get(self, key: str) -> bytes | None:
        """Read ``key`` (inline; see module doc). ``CacheError`` if the store failed."""
        try:
            value = self._cache.get(key, default=None, retry=False)
        except self._errors as exc:
            raise self._failed("read", exc) from exc
        if value is None or isinstance(value, bytes):
            return value
        return b""  # a str/int someone else stored: not our envelope, reads as corrupt

    async def set(self, key: str, blob: bytes, ttl_s: float, tag: str) -> None:
        """Store ``blob`` for ``ttl_s`` seconds on the writer thread."""
        await self._in_writer("set", key, blob, expire=ttl_s, tag=tag, retry=True)

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        await self._in_writer("delete", key, retry=True)

    async def clear(self, tag: str) -> int:
        """Remove every entry stored with ``tag`` (one namespace); return the count."""
        return int(await self._in_writer("evict", tag, retry=True))

    def count(self, tag: str) -> int:
        """Entries stored with ``tag`` (one namespace), expired ones not yet culled included."""
        try:
            ((n,),) = self._cache._sql("SELECT COUNT(*) FROM Cache WHERE tag = ?", (tag,)).fetchall()
        except self._errors as exc:
            raise self._failed("count", exc) from exc
        return int(n)

    def __len__(self) -> int:
        return len(self._cache)

    async def _in_writer(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise CacheError("disk cache is closed")
        loop = asyncio.get_running_loop()
        fn = getattr(self._cache, method)  # looked up now: the store may have been rebuilt
        try:
            return await loop.run_in_executor(self._writer, lambda: fn(*args, **kwargs))
        except self._errors as exc:
            raise self._failed("write", exc) from exc

    def close(self) -> None:
        """Wait for queued writes, then close the SQLite connections."""
        self._closed = True
        self._writer.shutdown(wait=True)
        self._cache.close()


def _close_quietly(cache: Any) -> None:
    with contextlib.suppress(Exception):  # closing a connection to a damaged file may complain
        cache.close()
