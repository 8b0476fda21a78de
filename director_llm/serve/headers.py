"""The route taken, in response headers (``x-director-*``).

JSON answers carry all four; a stream's headers leave before its body, so they hold only
what is known once the first chunk arrived (the deployment and its tier; ``cache: none``,
streams are never cached); the cost is in the final SSE chunk (``director.route``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["route_headers"]

DEPLOYMENT = "x-director-deployment"
TIER = "x-director-tier"
CACHE = "x-director-cache"
COST = "x-director-cost-usd"


def _clean(value: Any) -> str:
    # Header values are latin-1 without control characters; names here are config names.
    return "".join(ch for ch in str(value) if 32 <= ord(ch) < 127)


def route_headers(route: Any, *, cost: bool = True) -> dict[str, str]:
    """Headers of a ``Route`` (None: none)."""
    if route is None:
        return {}
    headers = {CACHE: _clean(route.cache or "none")}
    if route.deployment:
        headers[DEPLOYMENT] = _clean(route.deployment)
    if route.tier:
        headers[TIER] = _clean(route.tier)
    if cost:
        headers[COST] = f"{route.cost_usd:.10f}".rstrip("0").rstrip(".") or "0"
    return headers
