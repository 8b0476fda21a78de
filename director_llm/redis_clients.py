"""One Redis client factory: a client per event loop, one bounded pool each, one outage state.

Every part that keeps state in Redis (budget ledger, circuit breaker, cache, limits) gets
its client here, so a Director talks to one Redis through one place:

* **Per event loop.** An asyncio connection belongs to the loop that opened it; a client
  cached across ``asyncio.run`` calls fails with "Event loop is closed". ``client()``
  returns the running loop's client, created on first use.
* **Bounded, blocking pool.** ``max_connections`` per loop; a burst waits (at most
  ``pool_timeout_s``) for a free connection instead of failing with "Too many connections":
  500 concurrent requests queue behind 64 sockets, they do not turn into an outage.
* **One outage state.** ``mark_down(exc)`` after a connection error or timeout: every user
  sees ``down`` (the cache and breaker skip Redis without touching a socket; the ledger
  decides per its failure mode) until ``retry_after_s`` passes, and one warning is logged
  per outage, never one per request. ``mark_up()`` after any success.

**Redis Cluster.** A ``redis+cluster://host:port`` URL (``rediss+cluster://`` for TLS) builds
redis-py's async ``RedisCluster`` instead (same timeouts, no redis-py retries, ``max_connections``
per node; the topology is learned once per client, within ``CLUSTER_INIT_TIMEOUT_S``, outside
the per-call timeouts). Its nodes have no blocking pool: a burst beyond ``max_connections`` to one node fails
that call with ``MaxConnectionsError``, which counts as a busy moment (``busy``), not an outage.
Every multi-key script of the project names keys that share one hash tag (``{budget}``,
``{rl}``), so they land in one slot; the breaker and health counters use single-key commands
(redis-py splits their pipelines by slot). See docs/serving.md, "Redis Cluster".

Timeouts are per call (``asyncio.timeout`` around the command): the cache gives up after
~100 ms, the ledger after ~2 s, on the same connections. redis-py's own retries are off:
only idempotent operations may be re-sent, and their owners decide.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from director_llm.config.urls import is_cluster_url, plain_redis_url, redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisClients", "new_cluster_client", "redacted_url"]

log = logging.getLogger("director_llm.redis")

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_POOL_TIMEOUT_S = 5.0
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_RETRY_AFTER_S = 2.0
#: How long a fresh cluster client may take to learn the topology (``CLUSTER SLOTS`` and
#: ``COMMAND``: ~50 ms idle, far more on a loaded host), outside each call's own timeout.
CLUSTER_INIT_TIMEOUT_S = 5.0


class RedisClients:
    """Clients of one Redis URL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
        socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        decode_responses: bool = True,
    ) -> None:
        self._url = url
        self.url = redacted_url(url)
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s
        self.socket_timeout_s = socket_timeout_s
        self.retry_after_s = retry_after_s
        self._decode = decode_responses
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()
        self._down_until = 0.0
        self._outage_started: float | None = None
        self.outages = 0
        """Outages seen (a connection error or timeout after a success)."""
        self.busy = 0
        """Timeouts that came soon after a reply: busy moments, not outages."""
        self._last_ok = 0.0

    # -- clients ---------------------------------------------------------------------------
    def client(self) -> Redis:
        """The running event loop's client (created on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client()
        return client

    @property
    def cluster(self) -> bool:
        """Whether the URL names a Redis Cluster (``redis+cluster://``)."""
        return is_cluster_url(self._url)

    def _new_client(self) -> Redis:
        if self.cluster:
            return new_cluster_client(
                self._url,
                max_connections=self.max_connections,
                socket_timeout_s=self.socket_timeout_s,
                decode_responses=self._decode,
            )
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self.max_connections,
            timeout=self.pool_timeout_s,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=self._decode,
        )
        return aioredis.Redis(connection_pool=pool)

    # -- outage state ----------------------------------------------------------------------
    @property
    def down(self) -> bool:
        """True during an outage, until the next retry is due."""
        return time.monotonic() < self._down_until

    def mark_down(self, exc: BaseException, *, user: str = "redis") -> None:
        """Record a connection error or timeout: skip Redis for ``retry_after_s``. A timeout (or
        no free pooled connection in time) within ``retry_after_s`` of a reply is a busy moment
        (a burst, a starved event loop), not an outage: it is counted in ``busy`` only."""
        now = time.monotonic()
        if self.is_slow(exc) and now - self._last_ok < self.retry_after_s:
            self.busy += 1
            return
        self._down_until = now + self.retry_after_s
        if self._outage_started is None:
            self._outage_started = now
            self.outages += 1
            log.warning(
                "Redis %s unreachable (%s: %s, seen by the %s); using local state and retrying every %.1f s",
                self.url,
                type(exc).__name__,
                _short(exc),
                user,
                self.retry_after_s,
            )

    def mark_up(self) -> None:
        """Record a success: Redis is back (logs the end of an outage once)."""
        if self._outage_started is not None:
            log.info("Redis %s reachable again after %.1f s", self.url, time.monotonic() - self._outage_started)
            self._outage_started = None
        self._down_until = 0.0
        self._last_ok = time.monotonic()

    @staticmethod
    def is_slow(exc: BaseException) -> bool:
        """A timeout, or no pooled connection free in time: Redis may just be busy."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import MaxConnectionsError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if isinstance(exc, (TimeoutError, RedisTimeoutError, MaxConnectionsError)):
            return True
        return isinstance(exc, RedisConnectionError) and str(exc).startswith("No connection available")

    @staticmethod
    def is_outage(exc: BaseException) -> bool:
        """Whether ``exc`` means "Redis is not there" (as opposed to a bad command)."""
        from redis.exceptions import BusyLoadingError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        return isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError, TimeoutError))

    async def call(self, op: Any, *, timeout_s: float, user: str = "redis") -> Any:
        """Run ``await op(client)`` within ``timeout_s``; outage errors mark Redis down and
        are re-raised, successes mark it up."""
        client = self.client()
        try:
            if self.cluster:  # once per client: learning the topology is not this call's budget
                async with asyncio.timeout(CLUSTER_INIT_TIMEOUT_S):
                    await client.initialize()
            async with asyncio.timeout(timeout_s):
                result = await op(client)
        except Exception as exc:
            if self.is_outage(exc):
                self.mark_down(exc, user=user)
            raise
        self.mark_up()
        return result

    async def aclose(self) -> None:
        """Close the running loop's client (clients of finished loops are dropped with them)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        clients, self._clients = list(self._clients.items()), weakref.WeakKeyDictionary()
        for loop, client in clients:
            if loop is running:
                try:
                    await client.aclose()
                    if not self.cluster:  # a cluster client closes every node's connections
                        await client.connection_pool.disconnect()
                except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                    pass


def new_cluster_client(
    url: str, *, max_connections: int, socket_timeout_s: float, decode_responses: bool = True, **kwargs: Any
) -> Any:
    """redis-py's async ``RedisCluster`` for a ``redis+cluster://`` (or ``rediss+cluster://``)
    URL: ``max_connections`` per node, the given socket timeouts, redis-py's retries off (MOVED
    and ASK redirects are still followed)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return _cluster_class().from_url(
        plain_redis_url(url),
        max_connections=max_connections,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode_responses,
        **kwargs,
    )


@functools.cache
def _cluster_class() -> Any:
    """``RedisCluster`` that learns the cluster's topology before its first command. redis-py's
    lazy start races when a fresh client gets concurrent first commands (measured with redis-py
    8.1: 9 of 12 concurrent first SETs failed with "Connection closed by server" or an
    AttributeError); ``initialize()`` takes a lock and returns at once once done. A cluster
    that cannot be reached or serves no slot raises ``ConnectionError``, so every user sees an
    outage (redis-py raises ``RedisClusterException``, which is not even a ``RedisError``)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.exceptions import ClusterDownError, RedisClusterException
    from redis.exceptions import ConnectionError as RedisConnectionError

    class DirectorRedisCluster(RedisCluster):
        async def initialize(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().initialize(*args, **kwargs)
            except RedisClusterException as exc:  # no node reachable: not a RedisError in redis-py
                raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc

        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            await self.initialize()
            try:
                return await super().execute_command(*args, **kwargs)
            except (ClusterDownError, RedisClusterException) as exc:  # CLUSTERDOWN, a slot not served
                raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc

    return DirectorRedisCluster


def _short(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:200]
