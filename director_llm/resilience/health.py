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
from typing import TYPE_CHECKING, Any

from director_llm.errors import redact

if TYPE_CHECKING:
    from director_llm.director import Director

_STATE_NAMES = {"closed": "healthy", "open": "cooling down", "half_open": "half-open"}
PROBE_MESSAGES = [{"role": "user", "content": "ping"}]


async def deployment_health(director: Director, *, probe: bool = False, probe_timeout: float | None = None) -> dict[str, Any]:
    """JSON-friendly health of every usable deployment, keyed by deployment name."""
    names = [d.name for d in director.usable_deployments() if d.tier != "local"]
    probes: dict[str, dict[str, Any]] = {}
    if probe and names:
        timeout = probe_timeout or director.config.llm.attempt_timeout_seconds
        results = await asyncio.gather(*(_probe(director, n, timeout) for n in names))
        probes = dict(zip(names, results))
    if director.breaker.shared:
        await director.breaker.refresh()
    report: dict[str, Any] = {}
    for name in names:
        stats = director.metrics.deployments.get(name)
        s = stats.as_dict() if stats is not None else {}
        breaker = director.breaker.describe(name)
        state = _STATE_NAMES[breaker["state"]]
        if state == "healthy" and s.get("consecutive_failures"):
            state = "degraded"
        entry = {
            "state": state, "breaker": breaker, "requests": s.get("requests", 0),
            "error_rate": s.get("error_rate", 0.0), "p50_latency_ms": s.get("p50_latency_ms"),
            "last_error": redact(s["last_error"]) if s.get("last_error") else None,
        }
        if name in probes:
            entry["probe"] = probes[name]
        report[name] = entry
    return report


async def _probe(director: Director, name: str, timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await director.router.acompletion(model=name, messages=PROBE_MESSAGES, max_tokens=1,
                                              fallbacks=[], num_retries=0,
                                              metadata=director._metadata({"group": name, "reason": "health probe"}))
        return {"ok": True, "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {timeout:g}s"}
    except Exception as exc:  # noqa: BLE001 - a probe reports, it never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {redact(str(exc)).splitlines()[0][:200] if str(exc) else ''}"}
