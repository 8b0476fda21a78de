"""A config's full resolved picture, as data: what ``check-config`` prints and ``--json`` emits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

from director_llm.config.models import LOCAL_ESCALATE_BELOW, DirectorConfig
from director_llm.config.secrets import config_secrets, redact_data
from director_llm.config.semantics import LLM_TIERS, Problem, check_semantics, resolve_fallbacks
from director_llm.config.urls import redacted_url

CHARS_PER_TOKEN = 4
"""Prompt size estimate without a tokenizer (no tokenizer import in check-config): ~4
characters per token, close for English and a little low for Portuguese."""


def prompt_tokens_estimate(config: DirectorConfig) -> int:
    """Tokens of the classification prompt at the longest allowed input: the system prompt
    (instructions, every flow with up to three examples, output format) plus
    ``intents.max_input_chars`` of user text, at ``CHARS_PER_TOKEN``."""
    from director_llm.intents.prompts import flow_set, system_prompt

    chars = len(system_prompt(flow_set(config.intents))) + config.intents.max_input_chars
    return math.ceil(chars / CHARS_PER_TOKEN)


def _prompt_problem(estimate: int, deployments: list[Any]) -> Problem | None:
    windows = [(d.context_window, d.name) for d in deployments if d.tier in LLM_TIERS and d.context_window]
    if not windows:
        return None
    smallest, name = min(windows)
    if estimate <= smallest:
        return None
    return Problem(
        "warning",
        "intents.flows",
        f"the classification prompt is ~{estimate:,} tokens (estimated as characters / "
        f"{CHARS_PER_TOKEN}, at intents.max_input_chars of input) but {name} accepts {smallest:,}: "
        "it will be refused by that deployment. Use fewer flows or shorter descriptions, or set "
        "providers.<name>.overrides.<model>.context_window if the window is larger",
    )


def _rate_limits(config: DirectorConfig, deployments: list[Any]) -> dict[str, Any]:
    rl = config.llm.rate_limits
    return {
        "global": {"rpm": rl.rpm, "tpm": rl.tpm, "max_parallel_requests": rl.max_parallel_requests},
        "deployments": {
            d.name: {"rpm": d.rpm, "tpm": d.tpm, "max_parallel_requests": d.max_parallel_requests}
            for d in deployments
            if d.kind != "local" and (d.rpm or d.tpm or d.max_parallel_requests)
        },
        "max_wait_seconds": rl.max_wait_seconds,
        "store": "redis" if config.redis_state_url else "memory",
    }


def config_report(config: DirectorConfig, *, source: str, strict: bool = False) -> dict[str, Any]:
    """Everything ``check-config`` shows. Holds key *status*, never a key value."""
    from director_llm.providers import build_deployments, tiers_in_use

    deployments = build_deployments(config)
    tiers = tiers_in_use(deployments)
    problems: list[Problem] = check_semantics(config, base_dir=Path(source).parent)
    estimate = prompt_tokens_estimate(config)
    too_big = _prompt_problem(estimate, deployments)
    if too_big is not None:
        problems.append(too_big)
    if strict:
        problems = [Problem("error", p.key, p.message) for p in problems]
    c = config.caching
    layers = {
        "memory": {"enabled": bool(c.enabled and c.memory_size_mb), "size_mb": c.memory_size_mb},
        "redis": {
            "enabled": bool(c.enabled and c.redis_url),
            "url": redacted_url(c.redis_url) if c.redis_url else None,
        },
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
    report = {
        "source": source,
        "valid": not any(p.level == "error" for p in problems),
        "deployments": [d.as_dict() for d in deployments],
        "tiers": {t: [d.name for d in deployments if d.tier == t] for t in tiers},
        "budgets": {
            "per_hour_usd": config.llm.budget_per_hour,
            "per_day_usd": config.llm.budget_per_day,
            "per_provider": {
                n: {"per_hour_usd": p.budget_per_hour, "per_day_usd": p.budget_per_day}
                for n, p in config.providers.items()
                if p.budget_per_hour is not None or p.budget_per_day is not None
            },
        },
        "strategy": config.llm.default_strategy,
        "timeouts": {
            "request_deadline_s": config.llm.timeout_seconds,
            "attempt_s": config.llm.attempt_timeout_seconds,
            "first_token_s": config.llm.first_token_timeout_seconds,
            "num_retries": config.llm.num_retries,
        },
        "circuit_breaker": config.llm.circuit_breaker.model_dump(),
        "rate_limits": _rate_limits(config, deployments),
        "fallbacks": resolve_fallbacks(config, [d.name for d in deployments], tiers),
        "cache": layers,
        "intents": {
            "flows": flow_names,
            "source": flow_source,
            "fallback_flow": intents.fallback_flow,
            "confidence_threshold": intents.confidence_threshold,
            "local_escalates_below": (
                intents.tier_thresholds.get("local", LOCAL_ESCALATE_BELOW)
                if any(d.kind == "local" for d in deployments)
                else None
            ),
            "prompt_tokens_estimate": estimate,
        },
        "problems": [{"level": p.level, "key": p.key, "message": p.message} for p in problems],
    }
    # One pass over everything shown: keys, URL credentials, a key pasted into a name field.
    return cast(dict[str, Any], redact_data(report, config_secrets(config)))
