"""Rate limits the engine enforces: requests and tokens per minute, requests in flight.

Each LLM deployment may have ``rpm``, ``tpm`` and ``max_parallel_requests`` (its
``[providers.<name>.overrides.<model>]``), and ``[llm.rate_limits]`` the same three over
all deployments together (scope ``"global"``). Before each upstream call the engine asks
``RateLimiter.acquire`` for a ``Permit`` under every limit that applies; after the call
``finish`` gives the in-flight slot back and corrects the token count to the usage.

* **rpm, tpm: a sliding log.** Each admitted call is an entry ``(time, tokens)`` in its
  scope's log; an entry counts for 60 s. A call is admitted when the entries of the last
  60 s plus itself stay within ``rpm`` (count) and ``tpm`` (sum of tokens), so no 60 s
  interval ever holds more than ``rpm`` calls, whatever their timing (a fixed window lets
  through twice the limit around its boundary). Tokens: the prompt's count at admission
  (``director_llm.tokens``), corrected to prompt + completion tokens when the call ends.
* **max_parallel_requests: leases.** An admitted call holds a lease until ``finish``, or
  until the lease expires (the request deadline plus a margin), so a process killed in the
  middle of a call cannot hold a slot for ever.
* **All or nothing.** The limits of the deployment and the global ones are checked and
  taken together (one Lua script, or one synchronous step in memory): a call refused by
  one limit leaves no trace in the others.
* **Refusals say when.** ``LimitReached`` names the scope, the limit, and ``retry_after``:
  the seconds until the call would fit (exact for rpm and tpm, an upper bound for
  ``max_parallel_requests``, which frees as soon as a call in flight ends; None when it
  never will, a prompt larger than ``tpm``).

Where counts live: in Redis when the Director has a state Redis (``[llm] state_redis_url``
or ``[caching] redis_url``), through the one client factory (``redis_clients``), so every
process and host on that Redis shares them; in memory otherwise. A Redis outage never
stops traffic: while Redis is down (the factory's outage state) each process counts in its
own memory, so N processes may together send up to N times a limit until Redis is back.
Redis times entries with its own clock (``TIME``), so hosts need no synchronised clocks.

Why not the ``limits`` library: its strategies take one limit per call (no all-or-nothing
over deployment and global limits), it cannot give tokens back (the tpm correction), has no
concurrency limit, and its async Redis storage builds its own client from a URL instead of
the project's per-event-loop client with one outage state. The script below is ~50 lines.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from director_llm.config.models import DirectorConfig
    from director_llm.providers import DeploymentInfo
    from director_llm.redis_clients import RedisClients

__all__ = ["GLOBAL", "LimitReached", "Limits", "Permit", "RateLimiter"]

GLOBAL = "global"
"""The scope of ``[llm.rate_limits]`` (deployment names always hold a ``/``)."""
WINDOW_S = 60.0
DEFAULT_PREFIX = "director:limits:"
REDIS_TIMEOUT_S = 0.5
"""Redis is on the request path here: a slower answer counts as an outage (memory counts)."""
_MS = 1000.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one scope (None: no limit)."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel_requests: int | None = None

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_parallel_requests)

    @property
    def logged(self) -> bool:
        """Whether calls are logged (rpm or tpm set)."""
        return bool(self.rpm or self.tpm)

    def as_dict(self) -> dict[str, int | None]:
        return {"rpm": self.rpm, "tpm": self.tpm, "max_parallel_requests": self.max_parallel_requests}


class LimitReached(Exception):
    """A call did not fit a limit. Internal: the engine skips the deployment (and may wait);
    the caller sees ``errors.RateLimitedError``."""

    def __init__(self, scope: str, limit: str, value: int, retry_after: float | None) -> None:
        self.scope = scope
        self.limit = limit
        self.value = value
        self.retry_after = retry_after
        """Seconds until the call fits (an upper bound for max_parallel_requests; None: never)."""
        super().__init__(self.describe())

    @property
    def exact(self) -> bool:
        """Whether ``retry_after`` is when it frees (rpm, tpm), not a bound (in flight)."""
        return self.limit != "max_parallel_requests"

    def describe(self) -> str:
        where = "[llm.rate_limits]" if self.scope == GLOBAL else self.scope
        what = {
            "rpm": f"rpm limit of {where} ({self.value} requests per minute) reached",
            "tpm": f"tpm limit of {where} ({self.value} tokens per minute) reached",
            "max_parallel_requests": f"max_parallel_requests of {where} ({self.value} in flight) reached",
        }.get(self.limit, f"{self.limit} limit of {where} reached")
        if self.retry_after is None:
            return f"{what}: this request alone is larger than the limit"
        if self.exact:
            return f"{what}; frees up in {self.retry_after:.1f}s"
        return f"{what}; frees up when a request in flight ends (at the latest in {self.retry_after:.1f}s)"


@dataclass(slots=True)
class Permit:
    """One admitted call: give it back with ``RateLimiter.finish``."""

    id: str
    scopes: tuple[str, ...]
    tokens: int
    shared: bool
    """Counted in Redis (else in this process's memory)."""
    done: bool = False


# ------------------------------------------------------------------------------ memory
class _Log:
    """One scope's calls of the last window: entries ``[time, id, tokens]`` oldest first, by
    id, and their token sum (kept up to date, so a check is O(1) amortised)."""

    __slots__ = ("by_id", "entries", "tokens")

    def __init__(self) -> None:
        self.entries: deque[list[Any]] = deque()
        self.by_id: dict[str, list[Any]] = {}
        self.tokens = 0

    def expire(self, cutoff: float) -> None:
        while self.entries and self.entries[0][0] <= cutoff:
            entry = self.entries.popleft()
            self.by_id.pop(entry[1], None)
            self.tokens -= entry[2]


class _MemoryCounts:
    """One process's counts; the same arithmetic as the Lua script."""

    def __init__(self, clock: Callable[[], float], window_s: float) -> None:
        self._clock = clock
        self._window = window_s
        self._logs: dict[str, _Log] = {}
        self._leases: dict[str, dict[str, float]] = {}  # scope -> {id: expiry}

    def acquire(
        self, checks: Sequence[tuple[str, Limits]], pid: str, tokens: int, lease_s: float
    ) -> LimitReached | None:
        now = self._clock()
        for scope, lim in checks:
            log = self._logs.get(scope)
            if log is None:
                log = self._logs[scope] = _Log()
            log.expire(now - self._window)
            entries = log.entries
            if lim.rpm and len(entries) + 1 > lim.rpm:
                return LimitReached(scope, "rpm", lim.rpm, entries[len(entries) - lim.rpm][0] + self._window - now)
            if lim.tpm:
                if tokens > lim.tpm:
                    return LimitReached(scope, "tpm", lim.tpm, None)
                excess = log.tokens + tokens - lim.tpm
                if excess > 0:
                    for entry in entries:
                        excess -= entry[2]
                        if excess <= 0:
                            return LimitReached(scope, "tpm", lim.tpm, entry[0] + self._window - now)
                    return LimitReached(scope, "tpm", lim.tpm, self._window)
            if lim.max_parallel_requests:
                leases = self._leases.setdefault(scope, {})
                for lid in [k for k, exp in leases.items() if exp <= now]:
                    del leases[lid]
                if len(leases) >= lim.max_parallel_requests:
                    return LimitReached(
                        scope, "max_parallel_requests", lim.max_parallel_requests, min(leases.values()) - now
                    )
        for scope, lim in checks:
            if lim.logged:
                log = self._logs[scope]
                entry = [now, pid, tokens]
                log.entries.append(entry)
                log.by_id[pid] = entry
                log.tokens += tokens
            if lim.max_parallel_requests:
                self._leases[scope][pid] = now + lease_s
        return None

    def finish(self, permit: Permit, tokens: int | None) -> None:
        for scope in permit.scopes:
            self._leases.get(scope, {}).pop(permit.id, None)
            log = self._logs.get(scope)
            entry = log.by_id.get(permit.id) if log is not None and tokens is not None else None
            if log is not None and entry is not None and tokens is not None:
                log.tokens += tokens - entry[2]
                entry[2] = tokens


# ------------------------------------------------------------------------------- Redis
# KEYS: per scope i, its log (3i-2), its leases (3i-1) and its token sum (3i).
# ARGV: window_ms, id, tokens, lease_ms, scopes, then per scope: rpm, tpm, parallel (0: none).
# Log members are "<id>:<tokens>" scored by admission time (ms, Redis's clock), and the sum
# key holds their tokens (updated as entries come, leave and are corrected, so a check reads
# one number); leases are "<id>" scored by expiry. Answers {1} (admitted) or
# {0, scope index, limit, wait_ms} (wait_ms -1: never).
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local function tokens_of(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end
for i = 1, n do
  local log, leases, sum = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local rpm, tpm, par = tonumber(ARGV[3 + 3 * i]), tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i])
  if rpm > 0 or tpm > 0 then
    local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
    if #old > 0 then
      local gone = 0
      for j = 1, #old do
        gone = gone + tokens_of(old[j])
      end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
      redis.call('DECRBY', sum, gone)
    end
  end
  if rpm > 0 then
    local count = redis.call('ZCARD', log)
    if count + 1 > rpm then
      local e = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
      return {0, i, 'rpm', math.ceil(tonumber(e[2]) + window - now)}
    end
  end
  if tpm > 0 then
    if tokens > tpm then
      return {0, i, 'tpm', -1}
    end
    local total = math.max(0, tonumber(redis.call('GET', sum) or '0'))
    local excess = total + tokens - tpm
    if excess > 0 then
      local start = 0
      while true do
        local batch = redis.call('ZRANGE', log, start, start + 99, 'WITHSCORES')
        if #batch == 0 then
          return {0, i, 'tpm', window}
        end
        for j = 1, #batch, 2 do
          excess = excess - tokens_of(batch[j])
          if excess <= 0 then
            return {0, i, 'tpm', math.ceil(tonumber(batch[j + 1]) + window - now)}
          end
        end
        start = start + 100
      end
    end
  end
  if par > 0 then
    redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
    if redis.call('ZCARD', leases) >= par then
      local e = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
      return {0, i, 'max_parallel_requests', math.ceil(tonumber(e[2]) - now)}
    end
  end
end
for i = 1, n do
  local log, leases, sum = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if tonumber(ARGV[3 + 3 * i]) > 0 or tonumber(ARGV[4 + 3 * i]) > 0 then
    if redis.call('ZCARD', log) == 0 then
      redis.call('SET', sum, 0)
    end
    redis.call('ZADD', log, now, id .. ':' .. tokens)
    redis.call('INCRBY', sum, tokens)
    redis.call('PEXPIRE', log, window + 1000)
    redis.call('PEXPIRE', sum, window + 1000)
  end
  if tonumber(ARGV[5 + 3 * i]) > 0 then
    redis.call('ZADD', leases, now + lease, id)
    if redis.call('PTTL', leases) < lease + 1000 then
      redis.call('PEXPIRE', leases, lease + 1000)
    end
  end
end
return {1}
"""

# KEYS: as above. ARGV: id, tokens admitted, tokens used (-1: no correction).
_FINISH_LUA = """
local id, old, new = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 1, #KEYS / 3 do
  local log, leases, sum = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('ZREM', leases, id)
  if new >= 0 then
    local score = redis.call('ZSCORE', log, id .. ':' .. old)
    if score then
      redis.call('ZREM', log, id .. ':' .. old)
      redis.call('ZADD', log, score, id .. ':' .. new)
      redis.call('INCRBY', sum, new - tonumber(old))
    end
  end
end
return 1
"""


class RateLimiter:
    """Admits calls under the limits of each deployment and the global ones (module doc).

    ``deployments`` maps a deployment name to its ``Limits``; a deployment not in it (the
    local tier) is never limited. ``window_s`` is 60 (per minute); tests may shorten it.
    ``clock`` times the memory counts (monotonic seconds)."""

    def __init__(
        self,
        deployments: Mapping[str, Limits],
        global_limits: Limits | None = None,
        *,
        redis: RedisClients | None = None,
        prefix: str = DEFAULT_PREFIX,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        redis_timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        self.global_limits = global_limits or Limits()
        self.deployments = {n: lim for n, lim in deployments.items()}
        self.window_s = window_s
        self.prefix = prefix
        self._redis = redis
        self._redis_timeout = redis_timeout_s
        self._memory = _MemoryCounts(clock, window_s)
        self._scripts: dict[int, tuple[Any, Any]] = {}
        self._checks: dict[str, list[tuple[str, Limits]]] = {}
        for name, lim in self.deployments.items():
            checks = [(name, lim)] if lim.any else []
            if self.global_limits.any:
                checks.append((GLOBAL, self.global_limits))
            if checks:
                self._checks[name] = checks

    @classmethod
    def from_config(
        cls,
        config: DirectorConfig,
        deployments: Iterable[DeploymentInfo],
        *,
        redis: RedisClients | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> RateLimiter:
        """The limits of ``config`` over ``deployments`` (the local tier is never limited)."""
        rl = config.llm.rate_limits
        return cls(
            {d.name: Limits(d.rpm, d.tpm, d.max_parallel_requests) for d in deployments if d.kind != "local"},
            Limits(rl.rpm, rl.tpm, rl.max_parallel_requests),
            redis=redis,
            prefix=prefix,
        )

    def adopt_counts(self, previous: RateLimiter) -> None:
        """Keep counting where ``previous`` left off (a config reload): its in-memory windows
        and in-flight leases become this limiter's, so a reload never resets a limit. Counts
        in Redis carry over by themselves (same keys)."""
        self._memory = previous._memory

    # -- reading -----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """Whether any limit applies to any deployment."""
        return bool(self._checks)

    @property
    def shared(self) -> bool:
        """Whether counts are in Redis now (shared by every process on it)."""
        return self._redis is not None and not self._redis.down

    def applies(self, name: str) -> bool:
        """Whether any limit applies to deployment ``name``."""
        return name in self._checks

    def counts_tokens(self, name: str) -> bool:
        """Whether a tpm limit applies to ``name`` (then a call's prompt must be counted)."""
        return any(lim.tpm for _, lim in self._checks.get(name, ()))

    def describe(self) -> dict[str, Any]:
        """JSON-friendly limits (``check-config``): global, per deployment, the store."""
        return {
            "global": self.global_limits.as_dict(),
            "deployments": {n: lim.as_dict() for n, lim in self.deployments.items() if lim.any},
            "store": "redis" if self._redis is not None else "memory",
        }

    # -- the request path ---------------------------------------------------------------------
    async def acquire(self, name: str, *, tokens: int = 0, lease_s: float = 60.0) -> Permit | None:
        """Admit one call to ``name`` carrying ``tokens`` prompt tokens, holding its in-flight
        slot for at most ``lease_s``. None when no limit applies; raises ``LimitReached``."""
        checks = self._checks.get(name)
        if not checks:
            return None
        tokens = max(0, int(tokens))
        pid = secrets.token_hex(8)
        scopes = tuple(s for s, _ in checks)
        if self.shared:
            answer = await self._redis_call(lambda r: self._acquire_redis(r, checks, pid, tokens, lease_s))
            if answer is not None:
                if int(answer[0]) == 1:
                    return Permit(pid, scopes, tokens, shared=True)
                scope, lim = checks[int(answer[1]) - 1]
                limit = _text(answer[2])
                wait_ms = int(answer[3])
                raise LimitReached(scope, limit, _value(lim, limit), None if wait_ms < 0 else max(0.0, wait_ms / _MS))
        denied = self._memory.acquire(checks, pid, tokens, lease_s)
        if denied is not None:
            if denied.retry_after is not None:
                denied.retry_after = max(0.0, denied.retry_after)
            raise denied
        return Permit(pid, scopes, tokens, shared=False)

    async def finish(self, permit: Permit | None, *, tokens: int | None = None) -> None:
        """The call of ``permit`` ended: free its in-flight slot and, with ``tokens`` (prompt +
        completion used), correct its entry in the token count. Never raises; safe twice."""
        if permit is None or permit.done:
            return
        permit.done = True
        used = None if tokens is None else max(0, int(tokens))
        if not permit.shared:
            self._memory.finish(permit, used)
            return
        keys = [k for s in permit.scopes for k in self._keys(s)]
        args = [permit.id, permit.tokens, -1 if used is None else used]
        # Redis down: the lease expires on its own and the admitted count stands.
        await self._redis_call(lambda r: self._script(r)[1](keys=keys, args=args))

    # -- Redis ----------------------------------------------------------------------------------
    def _keys(self, scope: str) -> tuple[str, str, str]:
        base = f"{self.prefix}{{rl}}:{scope}"
        return f"{base}:log", f"{base}:inflight", f"{base}:tokens"

    def _script(self, client: Redis) -> tuple[Any, Any]:
        scripts = self._scripts.get(id(client))
        if scripts is None:
            scripts = self._scripts[id(client)] = (
                client.register_script(_ACQUIRE_LUA),
                client.register_script(_FINISH_LUA),
            )
        return scripts

    async def _acquire_redis(
        self, client: Redis, checks: Sequence[tuple[str, Limits]], pid: str, tokens: int, lease_s: float
    ) -> Any:
        keys = [k for s, _ in checks for k in self._keys(s)]
        args: list[Any] = [int(self.window_s * _MS), pid, tokens, max(1, math.ceil(lease_s * _MS)), len(checks)]
        for _, lim in checks:
            args += [lim.rpm or 0, lim.tpm or 0, lim.max_parallel_requests or 0]
        return await self._script(client)[0](keys=keys, args=args)

    async def _redis_call(self, op: Any) -> Any:
        """``op(client)``'s answer; None when Redis is down or failed (memory counts then)."""
        from redis.exceptions import RedisError

        if self._redis is None or self._redis.down:
            return None
        try:
            return await self._redis.call(op, timeout_s=self._redis_timeout, user="rate limiter")
        except (RedisError, OSError, TimeoutError):
            return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _value(lim: Limits, limit: str) -> int:
    return int(getattr(lim, limit, 0) or 0)
