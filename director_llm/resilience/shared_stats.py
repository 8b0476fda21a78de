"""Recent attempts per deployment, counted in Redis by every process: what ``health`` reads.

Each process adds its attempts (successes, failures, latency) to per-minute counters in
Redis, batched: attempts are summed in memory and written in one pipeline at most every
``flush_s`` (and by ``flush()`` / ``aclose()``), so the request path never waits on Redis.
``read(names)`` sums the last ``window_s`` of every process and returns, per deployment, the
requests, failures, error rate, mean latency, last error (redacted, as the breaker saw it)
and when any process last called it. A deployment with no record is one no process has
called (within a day): ``health`` reports it as ``unknown``.

Keys (``prefix`` is ``director:health:`` or ``<state_prefix>health:``)::

    <prefix><deployment>:m:<unix minute>   hash ok, fail, lat_ms        TTL window + 2 min
    <prefix><deployment>:last              hash seen, error, error_at   TTL 1 day

Redis errors are never raised: the counters are best effort (the breaker decides alone).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from director_llm.errors import redact

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from director_llm.redis_clients import RedisClients

__all__ = ["DEFAULT_WINDOW_S", "RecentStats", "SharedAttemptStats"]

log = logging.getLogger("director_llm.resilience.shared_stats")

DEFAULT_WINDOW_S = 300.0
FLUSH_S = 1.0
REDIS_TIMEOUT_S = 0.5
LAST_TTL_S = 86_400


@dataclass(frozen=True, slots=True)
class RecentStats:
    """One deployment's attempts over the window, all processes together."""

    requests: int
    failures: int
    mean_latency_ms: float | None
    last_error: str | None
    last_error_at: float | None
    last_seen_at: float | None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class SharedAttemptStats:
    """Per-deployment attempt counters shared through Redis (see the module docstring)."""

    def __init__(
        self,
        redis: RedisClients,
        *,
        prefix: str = "director:health:",
        window_s: float = DEFAULT_WINDOW_S,
        flush_s: float = FLUSH_S,
        timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        self._redis = redis
        self.prefix = prefix
        self.window_s = window_s
        self.flush_s = flush_s
        self._timeout = timeout_s
        self._pending: dict[str, list[Any]] = {}  # name -> [ok, fail, lat_ms, last error, error at, seen]
        self._due: asyncio.TimerHandle | None = None
        self._due_loop: asyncio.AbstractEventLoop | None = None  # a closed loop never runs its timer
        self._tasks: set[asyncio.Task[None]] = set()

    # -- writing ---------------------------------------------------------------------------
    def record(self, name: str, ok: bool, latency_s: float, error: str | None = None) -> None:
        """Count one attempt of ``name`` (written at the next flush)."""
        now = time.time()
        row = self._pending.get(name)
        if row is None:
            row = self._pending[name] = [0, 0, 0.0, None, None, now]
        if ok:
            row[0] += 1
            row[2] += latency_s * 1000
        else:
            row[1] += 1
            row[3] = error
            row[4] = now
        row[5] = now
        if self._due is None or self._due_loop is None or self._due_loop.is_closed():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._due, self._due_loop = loop.call_later(self.flush_s, self._spawn_flush), loop

    def _spawn_flush(self) -> None:
        self._due = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Write the attempts counted since the last flush (one pipeline)."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        pending, self._pending = self._pending, {}
        if not pending or self._redis.down:
            return
        minute = int(time.time() // 60)
        bucket_ttl = int(self.window_s) + 120

        async def write(r: Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                for name, (ok, fail, lat_ms, error, error_at, seen) in pending.items():
                    key = f"{self.prefix}{name}:m:{minute}"
                    if ok:
                        pipe.hincrby(key, "ok", ok)
                        pipe.hincrbyfloat(key, "lat_ms", round(lat_ms, 3))
                    if fail:
                        pipe.hincrby(key, "fail", fail)
                    pipe.expire(key, bucket_ttl)
                    last = f"{self.prefix}{name}:last"
                    pipe.hset(last, "seen", repr(seen))
                    if error is not None:
                        pipe.hset(last, "error", redact(error)[:300])
                        pipe.hset(last, "error_at", repr(error_at))
                    pipe.expire(last, LAST_TTL_S)
                await pipe.execute()

        await self._call(write)

    # -- reading ---------------------------------------------------------------------------
    async def read(self, names: Sequence[str]) -> dict[str, RecentStats] | None:
        """Each deployment's ``RecentStats`` (absent: no process called it); None when Redis
        cannot be read."""
        names = list(names)
        if not names:
            return {}
        now_minute = int(time.time() // 60)
        minutes = [now_minute - i for i in range(math.ceil(self.window_s / 60))]

        async def read(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                for name in names:
                    for m in minutes:
                        pipe.hgetall(f"{self.prefix}{name}:m:{m}")
                    pipe.hgetall(f"{self.prefix}{name}:last")
                return await pipe.execute()

        rows = await self._call(read)
        if rows is None:
            return None
        out: dict[str, RecentStats] = {}
        per = len(minutes) + 1
        for i, name in enumerate(names):
            buckets, last = rows[i * per : i * per + len(minutes)], rows[i * per + len(minutes)]
            ok = sum(int(_field(b, "ok") or 0) for b in buckets)
            fail = sum(int(_field(b, "fail") or 0) for b in buckets)
            lat = sum(float(_field(b, "lat_ms") or 0) for b in buckets)
            if not (ok or fail or last):
                continue
            out[name] = RecentStats(
                requests=ok + fail,
                failures=fail,
                mean_latency_ms=round(lat / ok, 2) if ok else None,
                last_error=_field(last, "error"),
                last_error_at=_float(_field(last, "error_at")),
                last_seen_at=_float(_field(last, "seen")),
            )
        return out

    async def _call(self, op: Any) -> Any:
        from redis.exceptions import RedisError

        if self._redis.down:
            return None
        try:
            return await self._redis.call(op, timeout_s=self._timeout, user="health counters")
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("health counters: Redis call failed: %s", exc)
            return None

    async def aclose(self) -> None:
        """Write what is pending and stop."""
        await self.flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)


def _field(row: Any, name: str) -> Any:
    if not row:
        return None
    value = row.get(name)
    if value is None:
        value = row.get(name.encode())
    return value.decode() if isinstance(value, bytes) else value


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
