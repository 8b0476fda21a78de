"""L2: Redis, shared by every process and host, that must never slow a request down.

A Redis that is down, slow or restarting costs a request at most one timeout
(``timeout_s``, default 100 ms), and only the first request that meets the outage:

* socket connect and read timeouts are short, and redis-py's own retries are off (its
  default retries three times with exponential back-off: seconds of stall);
* on a connection error or timeout the layer goes *down*: every request skips it at once
  (no socket touched) while a background task pings Redis every ``backoff_s``; the first
  successful ping puts it back *up*. Requests never pay for probing;
* one warning when an outage starts and one info when it ends, not one line per request
  (and a Redis that flaps within ``_WARN_EVERY_S`` logs at debug after the first warning).

Errors that are not about reachability (``WRONGTYPE``, ``OOM``...) fail that one call and
leave the layer up. Every failure leaves this module as ``CacheError``; the tiered cache
turns it into a miss.

A Redis Cluster (``redis+cluster://host:port``) gets redis-py's async ``RedisCluster`` with
the same timeouts (a fresh client first learns the topology, once, within
``CLUSTER_INIT_TIMEOUT_S``); entries are single keys spread over the cluster's slots (no hash tag: the
cache should shard), and ``clear``/``count`` SCAN every primary and UNLINK slot by slot.

redis-py is imported when the layer is built, not when ``director_llm`` is imported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from director_llm.config.urls import is_cluster_url, redacted_url
from director_llm.errors import CacheError, ConfigError
from director_llm.redis_clients import CLUSTER_INIT_TIMEOUT_S

__all__ = ["RedisLayer", "RedisState", "redacted_url"]

RedisState = Literal["up", "down"]

#: Concurrent commands in flight. Beyond this a request waits (at most ``timeout_s``) for a
#: slot instead of opening yet another socket: a burst of 10k misses must not become 10k
#: connections.
DEFAULT_MAX_CONNECTIONS = 32
#: How long a *background* write may wait for a free connection. Reads wait at most one
#: timeout (a caller is waiting); writes have no caller, and dropping them because of our
#: own burst (1000 answers stored at once) would only cause misses later.
WRITE_SLOT_WAIT_S = 10.0
#: Keys deleted per UNLINK while clearing a namespace.
_CLEAR_BATCH = 500
#: After a warning, further outages within this many seconds log at debug (flapping).
_WARN_EVERY_S = 60.0


class RedisLayer:
    """Async ``GET``/``SET PX``/``DEL`` against one Redis, with outage handling (see module doc)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        backoff_s: float,
        logger: logging.Logger,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        from redis.exceptions import RedisError
        from redis.maint_notifications import MaintNotificationsConfig

        self._errors = _reachability_errors()
        self._redis_error: type[Exception] = RedisError
        self.url = redacted_url(url)
        self.cluster = is_cluster_url(url)
        self._pool: Any = None
        if self.cluster:
            from director_llm.redis_clients import new_cluster_client

            # One more than our semaphore allows, per node: no node raises MaxConnectionsError.
            self._client: Any = new_cluster_client(
                url,
                max_connections=max_connections + 1,
                socket_timeout_s=timeout_s,
                decode_responses=False,
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
            )
        else:
            self._client = self._plain_client(url, timeout_s, max_connections)
        self._slots = asyncio.Semaphore(max_connections)
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._log = logger
        self.state: RedisState = "up"
        self._down_since = 0.0
        self._warned_at = -_WARN_EVERY_S
        self._outage_warned = False
        self._probe: asyncio.Task[None] | None = None
        self._closed = False

    def _plain_client(self, url: str, timeout_s: float, max_connections: int) -> Any:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.maint_notifications import MaintNotificationsConfig

        try:
            self._pool = aioredis.ConnectionPool.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                # One more than our semaphore allows, so the pool never raises "Too many
                # connections" (which would look like an outage).
                max_connections=max_connections + 1,
                # Cluster-maintenance push notices: a useless extra round trip (and a debug
                # line) on every new connection to a plain Redis.
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
            )
        except ValueError as exc:
            raise ConfigError(
                f"[caching] redis_url {self.url!r} is not a Redis URL ({exc}); "
                "use redis://host:port/db or rediss://...",
                key="caching.redis_url",
            ) from exc
        return aioredis.Redis(connection_pool=self._pool)

    @property
    def available(self) -> bool:
        """False while the layer is down: callers skip it without touching a socket."""
        return self.state == "up"

    async def get(self, key: str) -> bytes | None:
        """``GET key``; ``CacheError`` if Redis failed."""
        return await self._call("GET", key)

    async def set(self, key: str, blob: bytes, ttl_ms: int) -> None:
        """``SET key blob PX ttl_ms``; ``CacheError`` if Redis failed."""
        await self._call("SET", key, blob, "PX", max(1, ttl_ms), slot_wait_s=WRITE_SLOT_WAIT_S)

    async def delete(self, key: str) -> None:
        """``UNLINK key``; ``CacheError`` if Redis failed."""
        await self._call("UNLINK", key, slot_wait_s=WRITE_SLOT_WAIT_S)

    async def clear(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (SCAN + UNLINK, never KEYS); return the count."""
        deleted = 0
        async for keys in self._scan(prefix):
            for start in range(0, len(keys), _CLEAR_BATCH):
                batch = keys[start : start + _CLEAR_BATCH]
                if self.cluster:  # one UNLINK per slot: a cluster refuses keys of several slots
                    deleted += await self._run("UNLINK", _unlink(batch), WRITE_SLOT_WAIT_S)
                else:
                    deleted += await self._call("UNLINK", *batch, slot_wait_s=WRITE_SLOT_WAIT_S)
        return deleted

    async def count(self, prefix: str) -> int:
        """How many keys start with ``prefix`` (SCAN, never KEYS); ``CacheError`` if Redis failed."""
        total = 0
        async for keys in self._scan(prefix):
            total += len(keys)
        return total

    async def _scan(self, prefix: str) -> AsyncIterator[list[Any]]:
        """Batches of the keys starting with ``prefix``: one SCAN, or on a cluster one SCAN per
        primary node (each primary holds its own slots)."""
        if not self.cluster:
            cursor: int | bytes = 0
            while True:
                cursor, keys = await self._call(
                    "SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000, slot_wait_s=WRITE_SLOT_WAIT_S
                )
                yield keys
                if int(cursor) == 0:
                    return
        await self._run("PING", lambda c: c.initialize(), WRITE_SLOT_WAIT_S)  # learn the topology
        for node in self._client.get_primaries():
            at = 0
            while True:
                cursors, keys = await self._run(
                    "SCAN",
                    _scan_node(node, at, prefix + "*"),
                    WRITE_SLOT_WAIT_S,
                )
                yield keys
                at = int(cursors[node.name])
                if at == 0:
                    break

    async def _call(self, *args: Any, slot_wait_s: float | None = None) -> Any:
        return await self._run(str(args[0]), lambda c: c.execute_command(*args), slot_wait_s)

    async def _run(self, name: str, op: Callable[[Any], Awaitable[Any]], slot_wait_s: float | None = None) -> Any:
        """``await op(client)`` within the timeouts, holding a slot; ``CacheError`` if it failed."""
        if self.state != "up":
            raise CacheError(f"Redis layer {self.url} is down; skipped")
        try:
            async with asyncio.timeout(slot_wait_s or self._timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            # Saturated by our own burst, not an outage: fail this call, stay up.
            raise CacheError(f"Redis {name} skipped: all {self.url} connections busy") from None
        try:
            if self.state != "up":  # went down while this call queued for a slot
                raise CacheError(f"Redis layer {self.url} is down; skipped")
            if self.cluster:  # once per client: learning the topology is not this call's budget
                async with asyncio.timeout(CLUSTER_INIT_TIMEOUT_S):
                    await self._client.initialize()
            # Hard cap on top of the socket timeouts (connect + read).
            async with asyncio.timeout(self._timeout_s * 2):
                return await op(self._client)
        except self._errors as exc:
            self._mark_down(exc)
            raise CacheError(f"Redis {name} failed: {type(exc).__name__}: {exc}") from exc
        except self._redis_error as exc:
            raise CacheError(f"Redis {name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._slots.release()

    def _mark_down(self, exc: BaseException) -> None:
        if self.state == "down":
            return
        self.state = "down"
        now = time.monotonic()
        self._down_since = now
        self._outage_warned = now - self._warned_at >= _WARN_EVERY_S
        log = self._log.warning if self._outage_warned else self._log.debug
        if self._outage_warned:
            self._warned_at = now
        log(
            "cache: Redis layer %s unreachable (%s: %s); skipping it and retrying every %.1f s",
            self.url,
            type(exc).__name__,
            exc,
            self._backoff_s,
        )
        if not self._closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_until_up(), name="director-cache-redis-probe"
            )

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self._backoff_s)
            try:
                # Connections from before the outage point at a dead socket (or a
                # restarted server): start afresh instead of failing on each stale one.
                await self._disconnect()
                if self.cluster:
                    async with asyncio.timeout(CLUSTER_INIT_TIMEOUT_S):
                        await self._client.initialize()
                async with asyncio.timeout(self._timeout_s * 3):
                    await self._client.execute_command("PING")
            except Exception as exc:  # noqa: BLE001 - whatever it is, the probe must live on, or the layer stays down for good
                self._log.debug("cache: Redis %s still unreachable: %s", self.url, exc)
                continue
            self.state = "up"
            outage = time.monotonic() - self._down_since
            log = self._log.info if self._outage_warned else self._log.debug
            log("cache: Redis layer %s reachable again after %.1f s", self.url, outage)
            return

    async def aclose(self) -> None:
        """Stop probing and close every connection."""
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            try:
                await self._probe
            except asyncio.CancelledError:
                pass
            self._probe = None
        await self._client.aclose()
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()
        else:  # a cluster client: closing drops every node's connections; the next call reconnects
            await self._client.aclose()


def _unlink(keys: list[Any]) -> Callable[[Any], Awaitable[Any]]:
    return lambda client: client.unlink(*keys)  # redis-py splits the keys by slot


def _scan_node(node: Any, cursor: int, match: str) -> Callable[[Any], Awaitable[Any]]:
    return lambda client: client.scan(cursor, match=match, count=1000, target_nodes=node)


def _reachability_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "Redis is not there right now" (as opposed to a bad command)."""
    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    # BusyLoadingError: a restarted Redis loading its dataset answers nothing useful yet.
    return (ConnectionError, TimeoutError, BusyLoadingError, OSError, asyncio.TimeoutError)
