"""The Redis budget ledger: one store shared by every process and host on that Redis.

Crash safety (``RedisLedger``): each reservation is a field ``r:<id>`` of the window's
hash (its amount, also summed in the ``reserved`` field) and a member of the window's
sorted set scored by its expiry time (now + ``reservation_ttl_s``). Every script that
reads a window first removes the expired members and subtracts their amounts, so a
process killed between reserve and settle holds budget for at most the TTL. A call that
runs longer than the TTL loses its hold (its later settle still books the true cost),
so set the TTL above your longest request timeout. Reservation expiry is scored with the
ledger's clock: hosts sharing a Redis need synchronised clocks (NTP); skew between hosts
shifts a reservation's expiry by the same amount.

Key lifetime never depends on two clocks agreeing. Window hashes, reservation sets, usage
counters and settled ids are expired with a *relative* ``PEXPIRE``: the time left until the
window's ``keep_until`` measured on the ledger's clock (the same clock that named the
window), at least ``_MIN_KEY_TTL_MS``. An absolute ``PEXPIREAT`` computed from the app's
clock would be compared with Redis's clock: an app host whose clock runs behind Redis's by
more than the keep margin (a stale VM, a restored snapshot) would create every key already
expired, and the budget would silently stop limiting.
See ``director_llm.budget.lua`` for the key layout and the scripts. The same TTL covers a
reserve that was cancelled (or timed out) after Redis granted it: the hold is orphaned,
not leaked. Limits travel with each call, so processes with different configs share the
counters and each enforces its own limits.

Lost replies (``RedisLedger``): a connection can drop after Redis ran a script but before
its answer arrived. Every script is idempotent (keyed by the reservation id; see
``director_llm.budget.lua``), so ``RedisLedger`` retries a failed call on a fresh
connection (settle/release: three times within 0.25 s, also after a timeout; reserve and
reads, which sit on the request path: once, at once, and never after a timeout, so a hung
Redis fails the request after one ``timeout_s``), and a settlement is booked exactly once.

Event loops: an asyncio Redis connection belongs to the loop that opened it. LiteLLM may
run a settlement callback on a later loop than the one that reserved (its logging worker
carries pending callbacks over when the loop changes), so ``RedisLedger`` keeps one client
per running loop, created lazily in that loop.

Round trips: reserve = 1 EVALSHA, settle = 1 EVALSHA, release = 1 EVALSHA,
``can_afford``/``remaining`` = 1 EVALSHA, ``snapshot`` = 2 (plus retries after a dropped
connection, and one SCRIPT LOAD per script and client).
"""

from __future__ import annotations

import asyncio
import importlib
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from director_llm.budget.ledger import (
    _REQUEST_PATH_RETRY_DELAYS_S,
    _RETRY_DELAYS_S,
    DEFAULT_REDIS_PREFIX,
    DEFAULT_REDIS_TIMEOUT_S,
    DEFAULT_RESERVATION_TTL_S,
    BudgetBackendError,
    BudgetLimits,
    LedgerBase,
    Reservation,
    Window,
)
from director_llm.config.urls import is_cluster_url
from director_llm.redis_clients import CLUSTER_INIT_TIMEOUT_S

if TYPE_CHECKING:  # redis is imported lazily: importing director_llm must stay cheap
    from redis.asyncio import Redis

    from director_llm.redis_clients import RedisClients

__all__ = ["RedisLedger"]

# A key written for a window that is already over (a settlement arriving late) still lives
# this long, so the write is not lost at once and reports can see it.
_MIN_KEY_TTL_MS = 60_000


class RedisLedger(LedgerBase):
    """Ledger shared by every process and host using the same Redis and ``prefix``.
    Each operation is one idempotent Lua script (see ``director_llm.budget.lua``), so
    concurrent reservations can never jointly exceed a limit and a retried settlement is
    booked once."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        prefix: str = DEFAULT_REDIS_PREFIX,
        limits: BudgetLimits,
        clock: Callable[[], datetime] | None = None,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        client: Redis | None = None,
        redis: RedisClients | None = None,
        timeout_s: float = DEFAULT_REDIS_TIMEOUT_S,
    ) -> None:
        super().__init__(limits=limits, clock=clock, reservation_ttl_s=reservation_ttl_s)
        if sum(x is not None for x in (redis_url, client, redis)) != 1:
            raise ValueError("pass exactly one of redis_url, client or redis")
        self._hub = redis
        """The Director's shared client factory (one pool per loop, one outage state)."""
        importlib.import_module("redis.asyncio")  # now, not on the first (timed) reservation

        self._url = redis_url
        self._timeout_s = timeout_s
        self._given = client
        # Our own clients, one per event loop (a connection cannot move between loops).
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Client] = weakref.WeakKeyDictionary()
        self._closed = False
        self._cluster = redis.cluster if redis is not None else is_cluster_url(redis_url or "")
        # The hash tag keeps all keys in one Cluster slot, as multi-key scripts require;
        # keys still start with ``prefix`` so ``SCAN prefix*`` finds them all.
        self._tag = prefix + "{budget}"
        self.retries = 0
        """Calls retried after a dropped connection or timeout (tests and benchmarks read it)."""
        self.last_reply = 0.0
        """``time.monotonic()`` of the last reply from Redis: a timeout soon after one is a busy
        moment (a burst, a starved event loop), not an outage."""

    def _client(self) -> _Client:
        if self._given is not None:
            # A caller-supplied client is used as is, on whatever loop the caller runs it.
            if not self._clients:
                self._clients[_GIVEN] = _Client(self._given)
            return self._clients[_GIVEN]
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._new_client()
            if not self._closed:  # after aclose() each late call uses (and closes) its own
                self._clients[loop] = client
        return client

    def _new_client(self) -> _Client:
        if self._hub is not None:
            return _Client(self._hub.client())
        if self._cluster:
            from director_llm.redis_clients import DEFAULT_MAX_CONNECTIONS, new_cluster_client

            return _Client(
                new_cluster_client(
                    self._url or "", max_connections=DEFAULT_MAX_CONNECTIONS, socket_timeout_s=self._timeout_s
                )
            )
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A bounded timeout: a hung Redis must fail the reservation, not hang the request.
        # redis-py's own retries are off: only our idempotent scripts may be re-sent.
        return _Client(
            aioredis.Redis.from_url(
                self._url or "",
                decode_responses=True,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
        )

    @property
    def _redis(self) -> Redis:
        """The client for the running loop (tooling and tests use it for raw commands)."""
        return self._client().redis

    def _keys(self, windows: Sequence[Window]) -> list[str]:
        keys = []
        for w in windows:
            keys += [f"{self._tag}:w:{w.name}:{w.period}", f"{self._tag}:x:{w.name}:{w.period}"]
        return keys

    def stats_key(self, hour: str) -> str:
        """The Redis key of one hour's usage counters (for tooling and tests)."""
        return f"{self._tag}:s:{hour}"

    def done_key(self, hour: str) -> str:
        """The Redis key of the ids settled or released among one hour's reservations."""
        return f"{self._tag}:d:{hour}"

    async def _call(self, name: str, keys: list[str], args: list[Any], *, background: bool = False) -> Any:
        """Run one script; ``background`` (settle/release, off the request path) retries
        longer and after timeouts too."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        import director_llm.budget.lua as budget_lua

        retryable: tuple[type[BaseException], ...] = (RedisConnectionError,)
        delays: tuple[float, ...] = _REQUEST_PATH_RETRY_DELAYS_S
        if background:
            retryable += (RedisTimeoutError,)
            delays = _RETRY_DELAYS_S
        client = self._client()
        attempt = 0
        # A hard cap on top of the socket timeouts: a hung Redis fails the call. With the shared
        # factory's blocking pool, waiting for a free connection (a burst) comes on top.
        cap = self._timeout_s * 1.5 + (self._hub.pool_timeout_s if self._hub is not None else 0.0)
        try:
            while True:
                try:
                    if self._cluster:  # once per client, outside the call's own timeout
                        async with asyncio.timeout(CLUSTER_INIT_TIMEOUT_S):
                            await client.redis.initialize()
                    async with asyncio.timeout(cap):
                        reply = await client.script(name, getattr(budget_lua, name))(keys=keys, args=args)
                    self.last_reply = time.monotonic()
                    if self._hub is not None:
                        self._hub.mark_up()
                    return reply
                except TimeoutError as exc:
                    if self._hub is not None:
                        self._hub.mark_down(exc, user="budget ledger")
                    if not background or attempt >= len(delays):
                        raise _backend_error(exc) from exc
                    attempt += 1
                    self.retries += 1
                except retryable as exc:
                    if self._hub is not None:
                        self._hub.mark_down(exc, user="budget ledger")
                    # The script may have run before the connection dropped; it is idempotent,
                    # so sending it again on a fresh connection cannot book anything twice.
                    if attempt >= len(delays):
                        raise _backend_error(exc) from exc
                    delay = delays[attempt]
                    attempt += 1
                    self.retries += 1
                    if delay:
                        await asyncio.sleep(delay)
                except RedisError as exc:
                    raise _backend_error(exc) from exc
        finally:
            await self._done_with(client)

    async def _done_with(self, client: _Client) -> None:
        if self._hub is not None:
            return  # the factory's clients live as long as the Director
        if client.redis is not self._given and all(c is not client for c in self._clients.values()):
            await client.redis.aclose()  # a one-off client of a late call after aclose()

    async def _hold(
        self, res: Reservation, windows: Sequence[Window], amount: int, now: datetime
    ) -> tuple[int, int, int] | None:
        args: list[Any] = [_ms(now), _ms(res.expires_at), res.id, amount]
        for w in windows:
            args += ["" if w.limit is None else w.limit, _ttl_ms(w.keep_until, now)]
        reply = await self._call("RESERVE", self._keys(windows), args)
        if int(reply[0]) == 1:
            return None
        return int(reply[1]) - 1, int(reply[2]), int(reply[3])

    async def _book(
        self,
        res: Reservation,
        windows: Sequence[Window],
        actual: int,
        stats: list[tuple[str, int]],
        stats_keep: datetime,
        kind: str,
    ) -> bool:
        keys = [*self._keys(windows), self.stats_key(res.hour), self.done_key(res.hour)]
        now = self.now_utc()
        args: list[Any] = [res.id, actual, len(windows)]
        args += [_ttl_ms(w.keep_until, now) for w in windows] + [_ttl_ms(stats_keep, now), kind]
        for name, incr in stats:
            args += [name, incr]
        reply = await self._call("SETTLE", keys, args, background=True)
        return bool(int(reply[0]))

    async def _read_windows(self, windows: Sequence[Window], now: datetime) -> list[tuple[int, int]]:
        reply = await self._call("STATUS", self._keys(windows), [_ms(now)])
        return [(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]

    async def _read_stats(self, hours: Sequence[str]) -> list[dict[str, int]]:
        from redis.exceptions import RedisError

        client = self._client()
        try:
            async with client.redis.pipeline(transaction=False) as pipe:
                for h in hours:
                    pipe.hgetall(self.stats_key(h))
                replies = await pipe.execute()
        except RedisError as exc:
            raise _backend_error(exc) from exc
        finally:
            await self._done_with(client)
        # A caller-supplied client may not decode responses.
        return [{_text(k): int(v) for k, v in r.items()} for r in replies]

    async def aclose(self) -> None:
        """Close the clients this ledger opened (not a caller-supplied one)."""
        self._closed = True
        clients, self._clients = list(self._clients.items()), weakref.WeakKeyDictionary()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, client in clients:
            if client.redis is self._given or self._hub is not None:
                continue
            if loop is running:
                await client.redis.aclose()
            # A client of another (usually finished) loop cannot be awaited from here; its
            # sockets are dropped with it.

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _GivenKey:
    """Weak-referenceable key for the caller-supplied client in ``RedisLedger._clients``."""


_GIVEN: Any = _GivenKey()


class _Client:
    """One redis-py client and the scripts registered on it."""

    __slots__ = ("_scripts", "redis")

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts: dict[str, Any] = {}

    def script(self, name: str, source: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(source)
        return script


def _backend_error(exc: BaseException) -> BudgetBackendError:
    return BudgetBackendError(
        f"budget store unavailable ({type(exc).__name__}: {exc}); spend cannot be checked, so "
        "only zero-cost tiers can be served until Redis is back"
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _ttl_ms(keep_until: datetime, now: datetime) -> int:
    """A key's remaining lifetime, measured on the ledger's own clock (the one that named
    the window), sent as a relative ``PEXPIRE``: Redis's clock never enters into it."""
    return max(_MIN_KEY_TTL_MS, int((keep_until - now).total_seconds() * 1000))
