"""``director.health()``: each deployment's state from the breaker and the metrics.

States: ``healthy`` (breaker closed, no recent consecutive failures), ``degraded`` (closed but
failing: the last attempts failed, the breaker may open soon), ``cooling down`` (open, its
cool-down running: requests skip it), ``half-open`` (cool-down over: the next request is a
trial). An optional active probe sends each deployment a one-token request (it costs a
fraction of a cent on paid providers, which is why it is opt-in).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from director_llm.errors import redact

if TYPE_CHECKING:
    from director_llm.observability import Metrics
    from director_llm.resilience.breaker import CircuitBreaker

__all__ = ["PROBE_MESSAGES", "deployment_health"]

_STATE_NAMES = {"closed": "healthy", "open": "cooling down", "half_open": "half-open"}
PROBE_MESSAGES = [{"role": "user", "content": "ping"}]

Probe = Callable[[str, float], Awaitable[None]]


async def deployment_health(
    names: Sequence[str],
    *,
    breaker: CircuitBreaker,
    metrics: Metrics,
    probe: Probe | None = None,
    probe_timeout: float = 5.0,
) -> dict[str, Any]:
    """JSON-friendly health of each deployment in ``names``; ``probe(name, timeout)`` (when
    given) sends each a tiny request first."""
    probes: dict[str, dict[str, Any]] = {}
    if probe is not None and names:
        results = await asyncio.gather(*(_probe(probe, n, probe_timeout) for n in names))
        probes = dict(zip(names, results, strict=True))
    if breaker.shared:
        await breaker.refresh()
    report: dict[str, Any] = {}
    for name in names:
        stats = metrics.deployments.get(name)
        s = stats.as_dict() if stats is not None else {}
        state_info = breaker.describe(name)
        state = _STATE_NAMES[state_info["state"]]
        if state == "healthy" and s.get("consecutive_failures"):
            state = "degraded"
        entry = {
            "state": state,
            "breaker": state_info,
            "requests": s.get("requests", 0),
            "error_rate": s.get("error_rate", 0.0),
            "p50_latency_ms": s.get("p50_latency_ms"),
            "last_error": redact(s["last_error"]) if s.get("last_error") else None,
        }
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
