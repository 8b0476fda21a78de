"""A circuit breaker per deployment, in memory or shared by every process through Redis.

States (``BreakerSnapshot.state``)::

    closed ──(failure_threshold consecutive failures)──> open
    open ──(cool-down elapsed)──> half_open: ONE trial request is let through
    half_open ──trial succeeds──> closed
    half_open ──trial fails──> open, cool-down doubled (capped at max_cooldown_seconds)
    open ──a straggler attempt fails──> open, the cool-down restarts from now

Between closed and open, a deployment with at least one failure and no success since is
*failing*: the engine's ``admit`` lets ONE attempt at a time into it (a claim, in Redis when
shared, so across every process and host), and every other request tries its other
deployments first and comes back to this one only when they all failed (``busy``). So a
deployment that dies is sent the attempts already in flight when it died plus at most
``failure_threshold`` more, one after the other, in total over all workers, instead of every
concurrent request of every worker until the breaker opens. One success closes it again.

What counts as a failure (``failure_kind``): connection errors, timeouts, 5xx, 429, and
broken bodies (malformed JSON, empty choices, bad UTF-8) count; 401/403 open the breaker at
once (a dead or unauthorised key does not heal by retrying, and every request sent there is
a wasted round trip); 400/404/413/422 (context too long, bad parameters) are the request's
fault, not the deployment's, and are ignored: they neither count nor reset the count.

Why not LiteLLM's cooldowns: they are a TTL with no half-open trial, single-deployment groups
are exempt, and connection errors never cool a deployment down. So ``routing`` builds the
Router with ``disable_cooldowns=True`` and this module decides alone.

Cost on the request path: planning reads a local view of the states (a dict lookup per
deployment, no I/O). With Redis the view is refreshed in the background at most every
``refresh_interval`` seconds and updated at once by this process's own failures, so an open
breaker costs microseconds; and ``admit`` (``allow``), just before each attempt to a
deployment the view shows closed, reads that deployment's shared state (one HMGET, ~0.1-0.3 ms
on loopback), so no process admits a new attempt to a deployment another one has already
opened; a failing or half-open one costs one more command (the claim's SET NX). Attempts
admitted before the first failure was recorded still run and fail; after it, the failing
state's single claim bounds the rest (``scripts/load_serve.py``, docs/serving.md). Redis
errors never fail a request: the breaker falls back to its in-memory state and tries Redis
again after ``REDIS_RETRY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from director_llm.resilience.retry_after import retry_after_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from director_llm.config.models import DirectorConfig
    from director_llm.redis_clients import RedisClients

log = logging.getLogger("director_llm.resilience.breaker")

State = Literal["closed", "open", "half_open"]
FailureKind = Literal["trip", "trip_now", "ignore"]
Verdict = Literal["go", "probe", "busy", "open"]

DEFAULT_PREFIX = "director:breaker:"
REFRESH_INTERVAL_SECONDS = 0.2
REDIS_TIMEOUT_SECONDS = 0.5
REDIS_RETRY_SECONDS = 5.0
DEFAULT_MAX_COOLDOWN_SECONDS = 300.0
"""The longest a breaker stays open, whatever the cool-down doubling or a Retry-After says."""
STATE_TTL_SECONDS = 86_400  # forgotten after a quiet day; a dead provider keeps refreshing it
_IGNORED_STATUSES = frozenset({400, 404, 413, 422})
_IMMEDIATE_STATUSES = frozenset({401, 403})


class FirstTokenTimeoutError(Exception):
    """A streamed attempt sent nothing within ``llm.first_token_timeout_seconds``."""


def failure_kind(error: BaseException | None) -> FailureKind:
    """How an attempt's error feeds the breaker: ``trip`` (counts), ``trip_now`` (opens at
    once) or ``ignore`` (the request's or the caller's fault). An error classified by the
    dispatcher (``kind``: provider, credential, caller, request, local) says it directly."""
    kind = getattr(error, "kind", None)
    if kind == "provider":
        return "trip"
    if kind == "credential":
        return "trip_now"
    if kind in ("caller", "request", "local"):
        return "ignore"
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        if status in _IMMEDIATE_STATUSES:
            return "trip_now"
        if status in _IGNORED_STATUSES:
            # LiteLLM maps some transport failures onto 400-class errors only via explicit
            # classes; a plain 400 from the provider is about the request.
            return "ignore"
    return "trip"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One deployment's breaker. ``opens`` > 0 means open (or half-open once ``open_until``
    has passed); it counts consecutive openings, which double the cool-down."""

    failures: int = 0
    opens: int = 0
    open_until: float = 0.0

    def state(self, now: float) -> State:
        if self.opens == 0:
            return "closed"
        return "open" if now < self.open_until else "half_open"


@dataclass(frozen=True, slots=True)
class Admission:
    """``CircuitBreaker.admit``'s answer for one attempt.

    ``go``: closed, no recent failure. ``probe``: this attempt holds the deployment's single
    claim (the half-open trial, or the one attempt a failing deployment gets at a time); give
    it back with ``release(name, token)`` or ``record_failure(..., token=)``. ``busy``: failing
    and another attempt holds the claim: try other deployments first. ``open``: skip."""

    verdict: Verdict
    token: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict in ("go", "probe")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3
    cooldown_seconds: float = 30.0
    max_cooldown_seconds: float = 300.0

    def cooldown(self, opens: int) -> float:
        return min(
            self.cooldown_seconds * 2 ** max(0, opens - 1), max(self.max_cooldown_seconds, self.cooldown_seconds)
        )


def after_failure(
    s: BreakerSnapshot, now: float, policy: BreakerPolicy, immediate: bool, hold: float | None = None
) -> BreakerSnapshot:
    """The transition on a failure (the Lua script below mirrors it for Redis). ``hold``
    (a Retry-After) opens the breaker for at least that long: the provider said when to return."""
    if hold:
        base = after_failure(s, now, policy, immediate)
        return BreakerSnapshot(base.failures, max(base.opens, 1), max(base.open_until, now + hold))
    failures = s.failures + 1
    if s.opens == 0:
        if failures >= policy.failure_threshold or immediate:
            return BreakerSnapshot(failures, 1, now + policy.cooldown(1))
        return BreakerSnapshot(failures, 0, 0.0)
    if now >= s.open_until:  # the half-open trial failed: back off harder
        opens = s.opens + 1
        return BreakerSnapshot(failures, opens, now + policy.cooldown(opens))
    return BreakerSnapshot(failures, s.opens, max(s.open_until, now + policy.cooldown(s.opens)))


_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FAILURE_LUA = """
local s = redis.call('HMGET', KEYS[1], 'failures', 'opens', 'until')
local failures = (tonumber(s[1]) or 0) + 1
local opens = tonumber(s[2]) or 0
local untl = tonumber(s[3]) or 0
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local immediate = ARGV[5] == '1'
local function cd(n) return math.min(base * 2 ^ math.max(0, n - 1), math.max(cap, base)) end
if opens == 0 then
  if failures >= threshold or immediate then opens = 1; untl = now + cd(1) else untl = 0 end
elseif now >= untl then
  opens = opens + 1; untl = now + cd(opens)
else
  untl = math.max(untl, now + cd(opens))
end
local hold = tonumber(ARGV[7]) or 0
if hold > 0 then
  if opens == 0 then opens = 1 end
  untl = math.max(untl, now + hold)
end
redis.call('HSET', KEYS[1], 'failures', failures, 'opens', opens, 'until', tostring(untl))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
return {failures, opens, tostring(untl)}
"""


class CircuitBreaker:
    """Breakers of every deployment of one Director (or of a group of processes via Redis).

    It is a hooks ``Filter`` (``await breaker.filter(group, deployments, kwargs)``) and a hooks
    ``Observer`` (``attempt_succeeded`` / ``attempt_failed``); ``streaming`` also calls
    ``allow`` / ``record_*`` directly for failures LiteLLM never sees (first-token timeouts).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_seconds: float = 30.0,
        max_cooldown_seconds: float | None = None,
        redis_url: str | None = None,
        redis: RedisClients | None = None,
        prefix: str = DEFAULT_PREFIX,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        redis_timeout: float = REDIS_TIMEOUT_SECONDS,
        trial_ttl_seconds: float = 30.0,
    ) -> None:
        self.policy = BreakerPolicy(
            failure_threshold,
            cooldown_seconds,
            max_cooldown_seconds if max_cooldown_seconds is not None else DEFAULT_MAX_COOLDOWN_SECONDS,
        )
        self.prefix = prefix
        self.refresh_interval = refresh_interval
        self.trial_ttl_seconds = trial_ttl_seconds
        self._view: dict[str, BreakerSnapshot] = {}
        self._trials: dict[str, tuple[float, str]] = {}  # in-memory claims: name -> (expiry, token)
        if redis is None and redis_url is not None:
            from director_llm.redis_clients import RedisClients

            redis = RedisClients(redis_url, retry_after_s=REDIS_RETRY_SECONDS)
        self._redis = redis
        self._redis_timeout = redis_timeout
        self._scripts: dict[tuple[int, str], Any] = {}  # (id(client), script) -> registered script
        self._refreshed_at = 0.0
        self._refresh_task: asyncio.Task[None] | None = None
        self._known: set[str] = set()

    @classmethod
    def from_config(
        cls, config: DirectorConfig, *, prefix: str = DEFAULT_PREFIX, redis: RedisClients | None = None
    ) -> CircuitBreaker:
        cb = config.llm.circuit_breaker
        return cls(
            failure_threshold=cb.failure_threshold,
            cooldown_seconds=cb.cooldown_seconds,
            max_cooldown_seconds=cb.max_cooldown_seconds,
            redis_url=config.redis_state_url if redis is None else None,
            redis=redis,
            prefix=prefix,
            trial_ttl_seconds=max(config.llm.attempt_timeout_seconds, 1.0),
        )

    def configure(self, config: DirectorConfig) -> None:
        """Take a reloaded config's thresholds; every deployment's state (failures, open,
        cooldown) is kept by name."""
        cb = config.llm.circuit_breaker
        self.policy = BreakerPolicy(cb.failure_threshold, cb.cooldown_seconds, cb.max_cooldown_seconds)
        self.trial_ttl_seconds = max(config.llm.attempt_timeout_seconds, 1.0)

    @property
    def shared(self) -> bool:
        """Whether state is shared through Redis (and Redis is currently answering)."""
        return self._redis is not None and not self._redis.down

    def watch(self, names: Iterable[str]) -> None:
        """Deployments whose shared state this process follows (refreshed from Redis), also
        before it called them: what another process learned counts here too."""
        self._known.update(names)

    # -- reading (no I/O) ---------------------------------------------------------------------
    def snapshot_of(self, name: str) -> BreakerSnapshot:
        return self._view.get(name) or BreakerSnapshot()

    def state(self, name: str) -> State:
        """``closed``, ``open`` or ``half_open`` (as this process currently sees it)."""
        return self.snapshot_of(name).state(time.time())

    def is_open(self, name: str) -> bool:
        """True while the deployment must be skipped (open, cool-down not elapsed)."""
        s = self._view.get(name)
        return s is not None and s.opens > 0 and time.time() < s.open_until

    def describe(self, name: str) -> dict[str, Any]:
        """JSON-friendly state of one deployment (for ``director.health()``)."""
        now = time.time()
        s = self.snapshot_of(name)
        return {
            "state": s.state(now),
            "consecutive_failures": s.failures,
            "opens": s.opens,
            "retry_in_s": round(max(0.0, s.open_until - now), 3) if s.opens else None,
        }

    # -- the request path ---------------------------------------------------------------------
    async def allow(self, name: str) -> bool:
        """May an attempt go to ``name`` now? Claims the single half-open trial if due.
        Shared: ``name``'s state is read from Redis first (one HMGET), so a deployment that
        another process has just opened is skipped here too, not after the next refresh."""
        self._known.add(name)
        self._maybe_refresh()
        s = self._view.get(name)
        if self.shared and (s is None or s.opens == 0 or time.time() >= s.open_until):
            s = await self._read(name)
        if s is None or s.opens == 0:
            return True
        now = time.time()
        if now < s.open_until:
            return False
        return await self._claim(name, now, "") is not None

    async def admit(self, name: str) -> Admission:
        """The engine's check before each attempt: like ``allow``, and a *failing* deployment
        (failures recorded, not yet open) admits one attempt at a time (``probe``); the
        others get ``busy`` and try their other deployments first. Shared: one HMGET, plus
        one SET NX while the deployment is failing or half-open."""
        self._known.add(name)
        self._maybe_refresh()
        s = self._view.get(name)
        if self.shared and (s is None or s.opens == 0 or time.time() >= s.open_until):
            s = await self._read(name)
        if s is None or (s.failures == 0 and s.opens == 0):
            return Admission("go")
        now = time.time()
        if s.opens and now < s.open_until:
            return Admission("open")
        token = await self._claim(name, now, uuid.uuid4().hex)
        if token is not None:
            return Admission("probe", token)
        return Admission("busy" if s.opens == 0 else "open")

    async def release(self, name: str, token: str) -> None:
        """Give back a ``probe`` claim (a no-op when it was already given back or expired)."""
        held = self._trials.get(name)
        if held is not None and held[1] == token:
            del self._trials[name]
        if self.shared:
            key = self._key(name) + ":trial"
            await self._redis_call(lambda r: self._script(r, _RELEASE_LUA)(keys=[key], args=[token]))

    async def filter(self, group: str, deployments: list[dict], request_kwargs: dict) -> list[dict]:
        """Hooks filter: drop deployments whose breaker is open. Returning [] lets LiteLLM's
        fallback chain run without any HTTP call."""
        self._maybe_refresh()
        if not self._view:
            self._known.update(n for n in map(_name, deployments) if n is not None)
            return deployments
        kept = []
        for d in deployments:
            name = _name(d)
            if name is None or await self.allow(name):
                kept.append(d)
        return kept

    # -- feeding ------------------------------------------------------------------------------
    async def attempt_succeeded(self, deployment: str, kwargs: dict, response: Any, latency_s: float) -> None:
        await self.record_success(deployment)

    async def attempt_failed(
        self, deployment: str, kwargs: dict, error: BaseException | None, latency_s: float
    ) -> None:
        await self.record_failure(deployment, error)

    async def record_success(self, name: str) -> None:
        self._known.add(name)
        self._trials.pop(name, None)
        previous = self._view.pop(name, None)
        if previous is not None and previous.opens:
            log.info("circuit closed for %s", name)
        if self.shared and previous is not None:
            await self._redis_call(lambda r: r.delete(self._key(name), self._key(name) + ":trial"))

    async def record_failure(self, name: str, error: BaseException | None = None, *, token: str | None = None) -> None:
        """Count a failed attempt. ``token``: the attempt's ``probe`` claim, given back right
        after the count (so the next probe sees it). A failure without a token (``allow``'s
        half-open trial, a straggler) gives back only an untokened claim."""
        kind = failure_kind(error)
        if kind == "ignore":
            if token is not None:
                await self.release(name, token)
            return
        self._known.add(name)
        now = time.time()
        held = self._trials.get(name)
        if held is not None and held[1] in ("", token):
            del self._trials[name]
        before = self.snapshot_of(name)
        after: BreakerSnapshot | None = None
        hold = getattr(error, "retry_after", None)
        if hold is None:
            hold = retry_after_of(error)
        if hold is not None:
            hold = min(hold, self.policy.max_cooldown_seconds)
        if self.shared:
            p = self.policy
            reply = await self._redis_call(
                lambda r: self._script(r, _FAILURE_LUA)(
                    keys=[self._key(name)],
                    args=[
                        now,
                        p.failure_threshold,
                        p.cooldown_seconds,
                        p.max_cooldown_seconds,
                        "1" if kind == "trip_now" else "0",
                        STATE_TTL_SECONDS,
                        hold or 0,
                    ],
                )
            )
            if reply is not None:
                after = BreakerSnapshot(int(reply[0]), int(reply[1]), float(reply[2]))
                # After the count, so the next probe sees it; a second key, so not inside the
                # script (a Redis Cluster may hold the two keys on different nodes).
                await self._redis_call(
                    lambda r: self._script(r, _RELEASE_LUA)(keys=[self._key(name) + ":trial"], args=[token or ""])
                )
        if after is None:
            after = after_failure(before, now, self.policy, kind == "trip_now", hold)
        self._view[name] = after
        if after.opens and after.opens != before.opens:
            log.warning(
                "circuit open for %s for %.1fs after %d failure(s) (%s)",
                name,
                after.open_until - now,
                after.failures,
                type(error).__name__ if error else "error",
            )

    # -- the single claim (half-open trial, failing probe) ------------------------------------
    async def _claim(self, name: str, now: float, token: str) -> str | None:
        """Take ``name``'s single claim for ``trial_ttl_seconds``: the token, or None when
        another attempt holds it. ``token`` "" is ``allow``'s anonymous claim."""
        if self.shared:

            async def claim(r: Redis) -> str:
                # SET NX answers None when someone else holds the claim; None here means "Redis down".
                key = self._key(name) + ":trial"
                done = await r.set(key, token, nx=True, px=int(self.trial_ttl_seconds * 1000))
                return "won" if done else "lost"

            outcome = await self._redis_call(claim)
            if outcome is not None:
                return token if outcome == "won" else None
        held = self._trials.get(name)
        if held is not None and held[0] > now:
            return None
        self._trials[name] = (now + self.trial_ttl_seconds, token)
        return token

    # -- Redis ----------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _script(self, client: Redis, source: str) -> Any:
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[(id(client), source)] = client.register_script(source)
        return script

    async def _redis_call(self, op: Any) -> Any:
        """Run ``op(client)``; None when Redis is down (then memory state is used)."""
        from redis.exceptions import RedisError

        if self._redis is None or self._redis.down:
            return None
        try:
            return await self._redis.call(op, timeout_s=self._redis_timeout, user="circuit breaker")
        except (RedisError, OSError, TimeoutError):
            return None

    async def _read(self, name: str) -> BreakerSnapshot | None:
        """``name``'s shared state now (the view is updated); the view's when Redis is down."""
        row = await self._redis_call(lambda r: r.hmget(self._key(name), "failures", "opens", "until"))
        if row is None:
            return self._view.get(name)
        failures, opens, until = row
        if failures is None:
            self._view.pop(name, None)
            return None
        snapshot = BreakerSnapshot(int(failures), int(opens or 0), float(until or 0))
        self._view[name] = snapshot
        return snapshot

    def _view_may_be_stale(self) -> bool:
        return time.monotonic() - self._refreshed_at > self.refresh_interval

    def _maybe_refresh(self) -> None:
        """Start a background refresh of the view from Redis when it is older than
        ``refresh_interval``; the request never waits for it."""
        if not self.shared or not self._view_may_be_stale() or not self._known:
            return
        if self._refresh_task is not None and not self._refresh_task.done():
            return
        self._refreshed_at = time.monotonic()
        try:
            self._refresh_task = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:
            pass

    async def refresh(self) -> None:
        """Reload every known deployment's state from Redis (one round trip)."""
        if not self.shared:
            return
        names = sorted(self._known)

        async def read(r: Redis) -> list[Any]:
            async with r.pipeline(transaction=False) as pipe:
                for n in names:
                    pipe.hmget(self._key(n), "failures", "opens", "until")
                return await pipe.execute()

        rows = await self._redis_call(read)
        self._refreshed_at = time.monotonic()
        if rows is None:
            return
        for n, (failures, opens, until) in zip(names, rows, strict=False):
            if failures is None:
                self._view.pop(n, None)
            else:
                self._view[n] = BreakerSnapshot(int(failures), int(opens or 0), float(until or 0))

    async def aclose(self) -> None:
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_task.cancel()
        self._scripts.clear()


def _name(deployment: dict) -> str | None:
    return (deployment.get("model_info") or {}).get("director_deployment")
