"""API key pools: several keys per provider, spread, dropped, cooled down and reloaded.

A provider section names its keys with ``api_key_envs = ["OPENAI_KEY_A", "OPENAI_KEY_B"]``
(or one ``api_key_env``: a pool of one). ``KeyPools`` holds one ``KeyPool`` per provider;
the engine takes a key from it for every attempt (``KeyPool.take``) and passes its value to
LiteLLM as ``api_key=``, so the value is read here, at attempt time, and nowhere else:

* **spread**: the available key with the fewest calls in flight, ties broken round robin;
* **401/403**: the key leaves the pool (``drop``) and the attempt is retried at once with
  another key of the same deployment; it comes back when its variable changes and the keys
  are reloaded;
* **429**: the key cools down for that deployment for its ``Retry-After`` (the project's one
  parser, ``resilience.retry_after``; without one ``[llm.circuit_breaker] cooldown_seconds``),
  capped by ``max_cooldown_seconds``, while the others keep serving;
* **the last key** of a deployment is never dropped nor cooled: its failure is the
  deployment's, handled by the circuit breaker exactly as with a single ``api_key_env``;
* **reload** (``director.reload_keys()``, SIGHUP with ``director.install_sighup_handler()``):
  the values are read again from the environment; a key whose value changed (or that was set
  since) is back in the pool, fresh.

Pools are per process (like the in-memory breaker): a key dropped in one process is dropped
in another when that one is answered 401 too. Nothing here ever returns, logs or prints a
value: reports name the variables (``OPENAI_KEY_A``) and their state.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo

__all__ = ["KeyLease", "KeyPool", "KeyPools", "KeyUsage"]


@dataclass
class KeyUsage:
    """Calls answered with one key (by variable name), in this process."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 12),
            "failures": self.failures,
        }


@dataclass
class _Key:
    name: str
    fingerprint: int = field(default=0, repr=False)  # hash of the value, to notice a change on reload
    present: bool = False
    dropped_status: int | None = None
    dropped_at: float | None = None
    rejected_status: int | None = None  # the last key answered 401/403 but was kept (the last one)
    cooling: dict[str, float] = field(default_factory=dict)  # deployment -> monotonic end
    in_flight: int = 0
    usage: KeyUsage = field(default_factory=KeyUsage)


class KeyLease:
    """One key taken for one attempt: ``name`` may be shown, ``value`` goes to LiteLLM only."""

    __slots__ = ("_pool", "_released", "deployment", "name", "value")

    def __init__(self, pool: KeyPool, name: str, value: str, deployment: str) -> None:
        self._pool = pool
        self.name = name
        self.value = value
        self.deployment = deployment
        self._released = False

    def settle(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """The call was answered (or abandoned after the provider worked): book its usage on
        the key and release it."""
        if not self._released:
            self._pool.record(self, prompt_tokens, completion_tokens, cost_usd)
        self.release()

    def release(self) -> None:
        """The attempt is over (answered, failed or abandoned)."""
        if not self._released:
            self._released = True
            self._pool._done(self.name)

    def __repr__(self) -> str:
        return f"KeyLease({self.name!r}, deployment={self.deployment!r})"


class KeyPool:
    """The keys of one provider section (see the module docstring)."""

    def __init__(
        self,
        provider: str,
        names: Iterable[str],
        *,
        environ: Mapping[str, str] | None = None,
        default_cooldown_s: float = 30.0,
        max_cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._keys = {n: _Key(n) for n in names}
        self._values: dict[str, str] = {}
        self._turn = itertools.count()
        self.default_cooldown_s = default_cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self.reload(environ)

    @property
    def names(self) -> list[str]:
        return list(self._keys)

    def reload(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Read the values again; ``{name: "unchanged" | "changed" | "added" | "removed" |
        "missing"}``. A key whose value changed (or appeared) is back in the pool, fresh."""
        env = os.environ if environ is None else environ
        out: dict[str, str] = {}
        for name, key in self._keys.items():
            value = env.get(name) or ""
            fingerprint = hash(value) if value else 0
            if not value:
                out[name] = "removed" if key.present else "missing"
                self._values.pop(name, None)
                key.present = False
                key.fingerprint = 0
                continue
            if key.present and fingerprint == key.fingerprint:
                out[name] = "unchanged"
                continue
            out[name] = "changed" if key.present else "added"
            self._values[name] = value
            key.present = True
            key.fingerprint = fingerprint
            key.dropped_status = key.dropped_at = key.rejected_status = None
            key.cooling.clear()
        return out

    def _usable(self, deployment: str, now: float) -> list[_Key]:
        return [
            k
            for k in self._keys.values()
            if k.present and k.dropped_status is None and k.cooling.get(deployment, 0.0) <= now
        ]

    def available(self, deployment: str) -> int:
        """How many keys could serve ``deployment`` now."""
        return len(self._usable(deployment, self._clock()))

    def free_in(self, deployment: str) -> float | None:
        """Seconds until a cooling key of ``deployment`` is free again (None: none is cooling)."""
        now = self._clock()
        ends = [
            k.cooling[deployment]
            for k in self._keys.values()
            if k.present and k.dropped_status is None and k.cooling.get(deployment, 0.0) > now
        ]
        return max(0.0, min(ends) - now) if ends else None

    def take(self, deployment: str, *, name: str | None = None) -> KeyLease | None:
        """The key for the next attempt on ``deployment``: fewest calls in flight, then round
        robin (None when no key is set, or every one is dropped or cooling down); ``name``
        asks for that key (a probe of each key)."""
        usable = self._usable(deployment, self._clock())
        if name is not None:
            usable = [k for k in usable if k.name == name]
        if not usable:
            return None
        start = next(self._turn) % len(usable)
        rotated = usable[start:] + usable[:start]
        key = min(rotated, key=lambda k: k.in_flight)
        key.in_flight += 1
        return KeyLease(self, key.name, self._values[key.name], deployment)

    def _done(self, name: str) -> None:
        key = self._keys.get(name)
        if key is not None and key.in_flight > 0:
            key.in_flight -= 1

    def drop(self, lease: KeyLease, status: int | None) -> bool:
        """The provider refused ``lease``'s key (401/403): take it out of the pool, unless it is
        the last key that could serve the deployment (then False: the breaker decides)."""
        key = self._keys[lease.name]
        key.usage.failures += 1
        others = [k for k in self._usable(lease.deployment, self._clock()) if k.name != lease.name]
        if not others:
            key.rejected_status = status
            return False
        key.dropped_status = status or 401
        key.dropped_at = time.time()
        return True

    def cool(self, lease: KeyLease, retry_after: float | None) -> bool:
        """The provider rate-limited ``lease``'s key (429): rest it for ``retry_after`` seconds
        on that deployment, unless it is the last key that could serve it (then False)."""
        key = self._keys[lease.name]
        key.usage.failures += 1
        now = self._clock()
        others = [k for k in self._usable(lease.deployment, now) if k.name != lease.name]
        if not others:
            return False
        seconds = retry_after if retry_after is not None and retry_after > 0 else self.default_cooldown_s
        key.cooling[lease.deployment] = now + min(seconds, self.max_cooldown_s)
        return True

    def record(self, lease: KeyLease, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """Book an answered call's usage on its key."""
        usage = self._keys[lease.name].usage
        usage.requests += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        usage.cost_usd += cost_usd
        key = self._keys[lease.name]
        key.rejected_status = None

    def usage(self) -> dict[str, KeyUsage]:
        return {n: k.usage for n, k in self._keys.items()}

    def states(self) -> dict[str, dict[str, Any]]:
        """``describe`` without the counters: ``{name: {"state", "status"?, "cooling_s"?}}``."""
        keep = ("state", "status", "cooling_s")
        return {n: {k: v for k, v in d.items() if k in keep} for n, d in self.describe().items()}

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{name: {"state", "in_flight", ...}}``; states: ``ok``, ``missing`` (not set),
        ``dropped`` (answered 401/403), ``rejected`` (the last key, answered 401/403, kept),
        ``cooling`` (answered 429; ``cooling_s`` per deployment)."""
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        for name, k in self._keys.items():
            cooling = {d: round(end - now, 1) for d, end in k.cooling.items() if end > now}
            if not k.present:
                state = "missing"
            elif k.dropped_status is not None:
                state = "dropped"
            elif k.rejected_status is not None:
                state = "rejected"
            elif cooling:
                state = "cooling"
            else:
                state = "ok"
            entry: dict[str, Any] = {"state": state, "in_flight": k.in_flight, **k.usage.as_dict()}
            if k.dropped_status is not None:
                entry["status"] = k.dropped_status
            elif k.rejected_status is not None:
                entry["status"] = k.rejected_status
            if cooling:
                entry["cooling_s"] = cooling
            out[name] = entry
        return out

    def __repr__(self) -> str:
        return f"KeyPool({self.provider!r}, keys={self.names})"


class KeyPools:
    """One ``KeyPool`` per provider section that needs a key."""

    def __init__(
        self,
        deployments: Iterable[DeploymentInfo],
        *,
        environ: Mapping[str, str] | None = None,
        default_cooldown_s: float = 30.0,
        max_cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pools: dict[str, KeyPool] = {}
        for d in deployments:
            if d.api_key_envs and d.provider not in self._pools:
                self._pools[d.provider] = KeyPool(
                    d.provider,
                    d.api_key_envs,
                    environ=environ,
                    default_cooldown_s=default_cooldown_s,
                    max_cooldown_s=max_cooldown_s,
                    clock=clock,
                )

    def adopt(self, previous: KeyPools) -> None:
        """Keep ``previous``'s pool (states, cool-downs, usage) for each provider whose key
        variables are unchanged (a config reload)."""
        for provider, pool in list(self._pools.items()):
            old = previous._pools.get(provider)
            if old is not None and list(old._keys) == list(pool._keys):
                old.default_cooldown_s, old.max_cooldown_s = pool.default_cooldown_s, pool.max_cooldown_s
                self._pools[provider] = old

    def pool_for(self, deployment: DeploymentInfo) -> KeyPool | None:
        """The pool of ``deployment``'s provider (None: it needs no key)."""
        return self._pools.get(deployment.provider)

    @property
    def pools(self) -> dict[str, KeyPool]:
        return dict(self._pools)

    def reload(self, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
        """Re-read every pool's values (``KeyPool.reload``), by provider."""
        return {name: pool.reload(environ) for name, pool in self._pools.items()}

    def usage(self) -> dict[str, KeyUsage]:
        """Usage by key variable name, summed over the providers that share a variable."""
        out: dict[str, KeyUsage] = {}
        for pool in self._pools.values():
            for name, u in pool.usage().items():
                total = out.setdefault(name, KeyUsage())
                total.requests += u.requests
                total.prompt_tokens += u.prompt_tokens
                total.completion_tokens += u.completion_tokens
                total.cost_usd += u.cost_usd
                total.failures += u.failures
        return out

    def describe(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every pool's keys and states, by provider (names only)."""
        return {name: pool.describe() for name, pool in self._pools.items()}

    def __repr__(self) -> str:
        return f"KeyPools({list(self._pools)})"
