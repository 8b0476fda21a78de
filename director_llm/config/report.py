"""A config's full resolved picture, as data: what ``check-config`` prints and ``--json`` emits."""

from __future__ import annotations

from typing import Any

from director_llm.config.models import DirectorConfig
from director_llm.cache.redis import redacted_url
from director_llm.config.semantics import Problem, check_semantics, resolve_fallbacks


def config_report(config: DirectorConfig, *, source: str, strict: bool = False) -> dict[str, Any]:
    """Everything ``check-config`` shows. Holds key *status*, never a key value."""
    from director_llm.providers import build_deployments, tiers_in_use

    deployments = build_deployments(config)
    tiers = tiers_in_use(deployments)
    from pathlib import Path

    problems: list[Problem] = check_semantics(config, base_dir=Path(source).parent)
    if strict:
        problems = [Problem("error", p.key, p.message) for p in problems]
    c = config.caching
    layers = {
        "memory": {"enabled": bool(c.enabled and c.memory_size_mb), "size_mb": c.memory_size_mb},
        "redis": {"enabled": bool(c.enabled and c.redis_url), "url": redacted_url(c.redis_url) if c.redis_url else None},
        "disk": {"enabled": bool(c.enabled and c.disk_cache_path), "path": c.disk_cache_path},
        "ttl_seconds": c.ttl_seconds,
    }
    intents = config.intents
    flows = intents.flows
    if flows is None:
        from director_llm.intents.builtin_flows import BUILTIN_FLOWS

        flow_names, flow_source = list(BUILTIN_FLOWS), "built-in"
    else:
        flow_names, flow_source = list(flows), "config"
    return {
        "source": source,
        "valid": not any(p.level == "error" for p in problems),
        "deployments": [d.as_dict() for d in deployments],
        "tiers": {t: [d.name for d in deployments if d.tier == t] for t in tiers},
        "budgets": {"per_hour_usd": config.llm.budget_per_hour, "per_day_usd": config.llm.budget_per_day,
                    "per_provider": {n: {"per_hour_usd": p.budget_per_hour, "per_day_usd": p.budget_per_day}
                                     for n, p in config.providers.items()
                                     if p.budget_per_hour is not None or p.budget_per_day is not None}},
        "strategy": config.llm.default_strategy,
        "timeouts": {"request_deadline_s": config.llm.timeout_seconds,
                     "attempt_s": config.llm.attempt_timeout_seconds,
                     "first_token_s": config.llm.first_token_timeout_seconds,
                     "num_retries": config.llm.num_retries},
        "circuit_breaker": config.llm.circuit_breaker.model_dump(),
        "fallbacks": resolve_fallbacks(config, [d.name for d in deployments], tiers),
        "cache": layers,
        "intents": {"flows": flow_names, "source": flow_source, "fallback_flow": intents.fallback_flow,
                    "confidence_threshold": intents.confidence_threshold},
        "problems": [{"level": p.level, "key": p.key, "message": p.message} for p in problems],
    }
