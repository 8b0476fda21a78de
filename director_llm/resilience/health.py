"""``director.health()``: each deployment's state from the breaker and the recent attempts.

States:

* ``healthy`` - breaker closed, called recently (or probed) without failing;
* ``degraded`` - closed but failing: the last attempts failed, or at least half of the
  recent ones (``DEGRADED_ERROR_RATE`` over ``DEGRADED_MIN_REQUESTS`` or more); the breaker
  may open soon;
* ``cooling down`` - open, its cool-down running: requests skip it;
* ``half-open`` - cool-down over: the next request is a trial;
* ``unknown`` - no process has called it (nor probed it): nothing is known yet. A dead
  server nobody has called is not "healthy"; ``--probe`` finds out.

With Redis (``[llm] state_redis_url`` or ``[caching] redis_url``) the breaker states and the
counts are every process's: the breaker's shared state is re-read, and the attempts come from
the shared counters (``resilience.shared_stats``, last ``window_s``); ``source`` says which.
Without Redis they are this process's alone. The optional active probe sends each deployment
a one-token request (a fraction of a cent on paid providers, which is why it is opt-in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from director_llm.errors import redact

if TYPE_CHECKING:
    from director_llm.observability.stats import Metrics
    from director_llm.resilience.breaker import CircuitBreaker
    from director_llm.resilience.shared_stats import RecentStats, SharedAttemptStats

__all__ = ["DEGRADED_ERROR_RATE", "DEGRADED_MIN_REQUESTS", "PROBE_MESSAGES", "STATES", "deployment_health"]

_STATE_NAMES = {"closed": "healthy", "open": "cooling down", "half_open": "half-open"}
STATES = ("healthy", "degraded", "cooling down", "half-open", "unknown")
PROBE_MESSAGES = [{"role": "user", "content": "ping"}]
DEGRADED_ERROR_RATE = 0.5
DEGRADED_MIN_REQUESTS = 4

Probe = Callable[[str, float], Awaitable[None]]


async def deployment_health(
    names: Sequence[str],
    *,
    breaker: CircuitBreaker,
    metrics: Metrics,
    probe: Probe | None = None,
    probe_timeout: float = 5.0,
    shared: SharedAttemptStats | None = None,
) -> dict[str, Any]:
    """JSON-friendly health of each deployment in ``names``; ``probe(name, timeout)`` (when
    given) sends each a tiny request first; ``shared`` are the cross-process counters."""
    probes: dict[str, dict[str, Any]] = {}
    if probe is not None and names:
        results = await asyncio.gather(*(_probe(probe, n, probe_timeout) for n in names))
        probes = dict(zip(names, results, strict=True))
    recent: dict[str, RecentStats] | None = None
    if shared is not None:
        await shared.flush()  # this process's own attempts first
        recent = await shared.read(names)
    if breaker.shared:
        await breaker.refresh()
    now = time.time()
    report: dict[str, Any] = {}
    for name in names:
        stats = metrics.deployments.get(name)
        local = stats.as_dict() if stats is not None else {}
        state_info = breaker.describe(name)
        r = recent.get(name) if recent is not None else None
        if recent is not None:
            requests = r.requests if r else 0
            error_rate = r.error_rate if r else 0.0
            last_error = r.last_error if r else None
            last_seen = r.last_seen_at if r else None
        else:
            requests = local.get("requests", 0)
            error_rate = local.get("error_rate", 0.0)
            last_error = local.get("last_error")
            last_seen = stats.last_seen_at if stats is not None else None
        state = _STATE_NAMES[state_info["state"]]
        if state == "healthy":
            known = bool(local.get("requests")) or r is not None or name in probes or state_info["opens"] > 0
            failing = bool(local.get("consecutive_failures") or state_info["consecutive_failures"]) or (
                requests >= DEGRADED_MIN_REQUESTS and error_rate >= DEGRADED_ERROR_RATE
            )
            if failing:
                state = "degraded"
            elif not known:
                state = "unknown"
        entry: dict[str, Any] = {
            "state": state,
            "breaker": state_info,
            "requests": requests,
            "error_rate": round(error_rate, 4),
            "p50_latency_ms": local.get("p50_latency_ms"),
            "mean_latency_ms": r.mean_latency_ms if r else None,
            "last_error": redact(last_error) if last_error else None,
            "last_called_s_ago": round(now - last_seen, 1) if last_seen else None,
            "source": "shared" if recent is not None else "process",
        }
        if recent is not None and shared is not None:
            entry["window_s"] = shared.window_s
        if name in probes:
            entry["probe"] = probes[name]
        report[name] = entry
    return report


async def _probe(probe: Probe, name: str, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await probe(name, timeout)
        return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {timeout:g}s"}
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        message = redact(str(exc)).splitlines()[0][:200] if str(exc) else ""
        return {"ok": False, "error": f"{getattr(exc, 'error_class', type(exc).__name__)}: {message}"}
