"""A director config as a LiteLLM Proxy config (``director-llm export litellm-proxy``).

``litellm_proxy_config(config)`` returns the proxy's ``config.yaml`` as a dict:

* ``model_list``: every LLM deployment twice, as its tier group (``balanced``) and under its
  own name (``openai/gpt-4o``), the two names Director's callers use; ``litellm_params`` with
  the LiteLLM model, ``api_base``, the key as an ``os.environ/NAME`` reference (one entry per
  key of a key pool), the attempt and first-token timeouts, prices per token and rpm/tpm;
* ``router_settings``: routing strategy, Redis (password as a reference), fallback chains,
  retries, timeouts, and cooldowns mapped from the circuit breaker; per-provider budgets
  where a LiteLLM provider is one config section;
* ``litellm_settings``: the response cache (Redis, else disk, else memory) and the global
  budget (``max_budget`` / ``budget_duration``).

Secrets never leave the environment: keys and the Redis password are ``os.environ/NAME``
references the proxy resolves at start. What the proxy cannot express (the local tier, the
strategy's per-request tier choice, Director's reservation-based budgets...) is returned by
``unexpressed(config)`` and written as the comment header of ``litellm_proxy_yaml``.
This module reads the config and the provider table only: it does not import LiteLLM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from director_llm.cache.identity import provider_key_envs
from director_llm.config.models import DirectorConfig
from director_llm.config.urls import url_secrets
from director_llm.providers import DeploymentInfo, build_deployments
from director_llm.selection.topology import Topology

__all__ = [
    "REDIS_PASSWORD_ENV",
    "litellm_proxy_config",
    "litellm_proxy_yaml",
    "required_env",
    "unexpressed",
]

REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
"""The variable the exported config names for a Redis password found in a URL."""

# Director strategy -> the proxy's routing strategy *within* a model group. Choosing the tier
# per request (complexity x budget x health) has no proxy equivalent: callers name a group.
_ROUTING = {
    "cost": "cost-based-routing",
    "latency": "latency-based-routing",
    "quality": "simple-shuffle",
    "adaptive": "simple-shuffle",
}


def _env_ref(name: str) -> str:
    return f"os.environ/{name}"


def _llm_deployments(config: DirectorConfig) -> list[DeploymentInfo]:
    # Every enabled deployment, keys present here or not: the proxy has its own environment.
    return [d for d in build_deployments(config) if d.kind != "local"]


def _key_envs(config: DirectorConfig, d: DeploymentInfo) -> list[str]:
    section = config.providers[d.provider]
    pool = getattr(section, "api_key_envs", None)
    if pool:
        return [str(n) for n in pool]
    return [d.api_key_env] if d.api_key_env else provider_key_envs(section)


def base_url_env(provider: str) -> str:
    """The variable the exported config reads a provider's ``base_url`` from when the URL holds
    credentials (``https://user:pw@host``, ``?api_key=...``): never written into the file."""
    return "DIRECTOR_" + re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_BASE_URL"


def _params(config: DirectorConfig, d: DeploymentInfo, key_env: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"model": d.litellm_model}
    if d.base_url:
        params["api_base"] = _env_ref(base_url_env(d.provider)) if url_secrets(d.base_url) else d.base_url
    if key_env:
        params["api_key"] = _env_ref(key_env)
    elif d.kind in ("openai_compatible", "litellm_proxy"):
        params["api_key"] = "not-needed"  # OpenAI clients insist on some key (not a secret)
    params["timeout"] = d.timeout_seconds
    params["stream_timeout"] = config.llm.first_token_timeout_seconds
    params["input_cost_per_token"] = d.price.input_per_token if d.price.known else 0.0
    params["output_cost_per_token"] = d.price.output_per_token if d.price.known else 0.0
    for k in ("rpm", "tpm", "max_tokens"):
        v = getattr(d, k)
        if v is not None:
            params[k] = v
    return params


def _model_list(config: DirectorConfig, deployments: list[DeploymentInfo]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for d in deployments:
        envs: list[str | None] = list(_key_envs(config, d)) or [None]
        for i, env in enumerate(envs):
            params = _params(config, d, env)
            info: dict[str, Any] = {"director_deployment": d.name, "director_tier": d.tier}
            if d.context_window:
                info["max_input_tokens"] = d.context_window
            suffix = f"#key{i + 1}" if len(envs) > 1 else ""
            for group in (d.tier, d.name):
                entries.append(
                    {
                        "model_name": group,
                        "litellm_params": dict(params),
                        "model_info": {**info, "id": f"{group}|{d.name}{suffix}"},
                    }
                )
    return entries


def _redis_parts(url: str) -> dict[str, Any]:
    u = urlparse(url)
    parts: dict[str, Any] = {"host": u.hostname or "localhost", "port": u.port or 6379}
    if u.password:
        parts["password"] = _env_ref(REDIS_PASSWORD_ENV)
    return parts


def _is_cluster(url: str) -> bool:
    from director_llm.config.urls import is_cluster_url

    return is_cluster_url(url)


def _fallbacks(config: DirectorConfig, deployments: list[DeploymentInfo]) -> list[dict[str, list[str]]]:
    topology = Topology.build(config, deployments)
    return [{group: list(chain)} for group, chain in topology.fallbacks.items() if chain]


def _litellm_provider(d: DeploymentInfo) -> str:
    return d.litellm_model.split("/", 1)[0]


def _provider_budgets(config: DirectorConfig, deployments: list[DeploymentInfo]) -> dict[str, Any]:
    """``provider_budget_config``: the proxy budgets LiteLLM providers (``openai``), not config
    sections, so only a section that is alone on its LiteLLM provider can be expressed."""
    sections_of: dict[str, set[str]] = {}
    for d in deployments:
        sections_of.setdefault(_litellm_provider(d), set()).add(d.provider)
    out: dict[str, Any] = {}
    for provider, sections in sections_of.items():
        if len(sections) != 1:
            continue
        p = config.providers[next(iter(sections))]
        budget = _one_budget(p.budget_per_hour, p.budget_per_day)
        if budget is not None:
            out[provider] = budget
    return out


def _one_budget(per_hour: float | None, per_day: float | None) -> dict[str, Any] | None:
    # The proxy has one window per budget: the day's when set, else the hour's.
    if per_day is not None:
        return {"max_budget": per_day, "budget_duration": "1d"}
    if per_hour is not None:
        return {"max_budget": per_hour, "budget_duration": "1h"}
    return None


def litellm_proxy_config(config: DirectorConfig) -> dict[str, Any]:
    """The LiteLLM Proxy ``config.yaml`` equivalent to ``config``, as a dict (secrets only as
    ``os.environ/NAME`` references). ``unexpressed(config)`` lists what it leaves out."""
    llm = config.llm
    deployments = _llm_deployments(config)
    router: dict[str, Any] = {
        "routing_strategy": _ROUTING[llm.default_strategy],
        "num_retries": llm.num_retries,
        "timeout": llm.attempt_timeout_seconds,
        "stream_timeout": llm.first_token_timeout_seconds,
        # LiteLLM cools a deployment down when its failures in a minute exceed allowed_fails.
        "allowed_fails": llm.circuit_breaker.failure_threshold - 1,
        "cooldown_time": llm.circuit_breaker.cooldown_seconds,
        "retry_after": 0,
    }
    fallbacks = _fallbacks(config, deployments)
    if fallbacks:
        router["fallbacks"] = fallbacks
    state_url = config.redis_state_url
    if state_url and not _is_cluster(state_url):  # the Router takes one Redis host, not a cluster
        router.update({f"redis_{k}": v for k, v in _redis_parts(state_url).items()})
    budgets = _provider_budgets(config, deployments)
    if budgets:
        router["provider_budget_config"] = budgets

    settings: dict[str, Any] = {"request_timeout": llm.timeout_seconds}
    caching = config.caching
    cache_params: dict[str, Any] | None = None
    if caching.enabled and caching.redis_url and _is_cluster(caching.redis_url):
        parts = _redis_parts(caching.redis_url)
        node = {"host": parts.pop("host"), "port": parts.pop("port")}
        cache_params = {"type": "redis", "redis_startup_nodes": [node], **parts}
    elif caching.enabled and caching.redis_url:
        cache_params = {"type": "redis", **_redis_parts(caching.redis_url)}
    elif caching.enabled and caching.disk_cache_path:
        cache_params = {"type": "disk", "disk_cache_dir": caching.disk_cache_path}
    elif caching.enabled and caching.memory_size_mb:
        cache_params = {"type": "local"}
    if cache_params is not None:
        cache_params["ttl"] = caching.ttl_seconds
        settings["cache"] = True
        settings["cache_params"] = cache_params
    budget = _one_budget(llm.budget_per_hour, llm.budget_per_day)
    if budget is not None:
        settings.update(budget)
    return {"model_list": _model_list(config, deployments), "router_settings": router, "litellm_settings": settings}


def required_env(config: DirectorConfig) -> list[str]:
    """The environment variables the exported config refers to (names only)."""
    names: list[str] = []
    for d in _llm_deployments(config):
        names.extend(_key_envs(config, d))
        if d.base_url and url_secrets(d.base_url):
            names.append(base_url_env(d.provider))
    urls = [config.redis_state_url, config.caching.redis_url if config.caching.enabled else None]
    if any(u and urlparse(u).password for u in urls):
        names.append(REDIS_PASSWORD_ENV)
    return list(dict.fromkeys(names))


def unexpressed(config: DirectorConfig) -> list[str]:
    """What of ``config`` the LiteLLM Proxy config cannot express, one sentence each."""
    llm = config.llm
    out: list[str] = []
    for name, p in config.providers.items():
        if p.base_url and url_secrets(p.base_url):
            out.append(
                f"providers.{name}.base_url holds credentials: the file reads it from ${base_url_env(name)} "
                "(set it to the full URL)"
            )
    local = [n for n, p in config.providers.items() if p.kind == "local" and p.enabled]
    if local:
        out.append(
            f"the local tier ([providers.{local[0]}], the embedded classifier) runs in process: "
            "the proxy has no equivalent, and neither has intent classification or its cascade"
        )
    out.append(
        f"strategy '{llm.default_strategy}' picks a tier per request (complexity x remaining budget x "
        f"health); the proxy routes within the model group a client names (tier or deployment), with "
        f"routing_strategy '{_ROUTING[llm.default_strategy]}'"
    )
    out.append(
        "budgets: Director reserves the worst case before each call and settles it after (a request "
        "that would overspend is never sent); the proxy checks spend already booked, so concurrent "
        "requests can overshoot its max_budget"
    )
    if llm.budget_per_hour is not None and llm.budget_per_day is not None:
        out.append("[llm] has an hourly and a daily budget; the proxy has one window: only the daily one is exported")
    dep = _llm_deployments(config)
    kept = set(_provider_budgets(config, dep))
    for name, p in config.providers.items():
        if p.budget_per_hour is None and p.budget_per_day is None:
            continue
        providers = {_litellm_provider(d) for d in dep if d.provider == name}
        if not providers <= kept:
            out.append(
                f"providers.{name} budget: the proxy budgets LiteLLM providers ({', '.join(sorted(providers))}) "
                "and another section shares it"
            )
        elif p.budget_per_hour is not None and p.budget_per_day is not None:
            out.append(f"providers.{name}: hourly and daily budget; only the daily one is exported")
    cb = llm.circuit_breaker
    out.append(
        f"circuit breaker: mapped to allowed_fails={cb.failure_threshold - 1} and cooldown_time="
        f"{cb.cooldown_seconds:g}s; the doubling cooldown (up to {cb.max_cooldown_seconds:g}s), the single "
        "half-open trial and Retry-After are Director's (LiteLLM also skips cooldowns in a group of one)"
    )
    out.append(
        f"one deadline per request ({llm.timeout_seconds:g}s) shared by every attempt and fallback; the "
        "proxy's request_timeout applies to each call"
    )
    if config.caching.enabled:
        out.append(
            "caching: Director caches deterministic chats (temperature 0 or cache=True) in memory -> Redis "
            "-> disk under a config fingerprint; the proxy caches in one layer by request"
        )
    out.append("the stream limits and the response-size cap ([llm] max_stream_seconds, max_response_bytes)")
    if config.redis_state_url and _is_cluster(config.redis_state_url):
        out.append(
            "router_settings Redis on a Redis Cluster: the Router takes one Redis host, so the exported "
            "Router keeps its state per proxy instance"
        )
    for url in (config.redis_state_url, config.caching.redis_url):
        if url:
            u = urlparse(url)
            if (u.path or "/") not in ("/", "/0") or u.scheme.startswith("rediss") or u.username:
                out.append(
                    f"Redis URL details (database number, TLS, user name) of {u.hostname}: set them on the proxy"
                )
                break
    limited = [d.name for d in dep if d.rpm is not None or d.tpm is not None]
    if limited:
        out.append(
            "rpm/tpm count per model_list entry: each deployment is listed twice (its tier and its name), "
            f"so a client using both names can reach twice the limit ({', '.join(limited)})"
        )
    missing = [d.name for d in dep if not d.price.known]
    if missing:
        out.append(f"unknown prices, exported as 0: {', '.join(missing)}")
    return out


def _comment(lines: Iterable[str]) -> str:
    import textwrap

    out: list[str] = []
    for line in lines:
        wrapped = textwrap.wrap(line, 96, subsequent_indent="    ") or [""]
        out.extend(f"# {w}".rstrip() for w in wrapped)
    return "\n".join(out)


def litellm_proxy_yaml(config: DirectorConfig, *, source: str | None = None) -> str:
    """``litellm_proxy_config(config)`` as YAML, with a comment header: how to run it, the
    environment it needs, and what it cannot express."""
    import yaml

    body = yaml.safe_dump(litellm_proxy_config(config), sort_keys=False, allow_unicode=True, width=120)
    env = required_env(config)
    head = [
        f"LiteLLM Proxy config generated by `director-llm export litellm-proxy` from {source or 'a director config'}.",
        "Run: litellm --config config.yaml (pip install 'litellm[proxy]'); clients name a tier"
        " (small, balanced, strong) or a deployment as the model.",
        "Environment it reads (values are never written here): " + (", ".join(env) if env else "none"),
        "",
        "Not expressible in a LiteLLM Proxy config:",
        *[f"- {line}" for line in unexpressed(config)],
    ]
    return _comment(head) + "\n" + body
