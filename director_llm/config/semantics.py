"""Checks that need the whole config: what LiteLLM finds only at run time, or never.

``check_semantics`` returns ``Problem``s; errors make ``load_config`` fail, warnings are shown
by ``check-config`` (and ``--strict`` turns them into errors).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from director_llm.config.models import LOCAL_ESCALATE_BELOW, TIERS, DirectorConfig
from director_llm.config.problems import Problem
from director_llm.config.runtime_checks import check_flows, check_something_answers, check_timeouts

if TYPE_CHECKING:
    from director_llm.providers import DeploymentInfo

LLM_TIERS = tuple(t for t in TIERS if t != "local")
_LOCAL_ONLY_FIELDS = ("training_file", "features", "cache_dir", "confidence_threshold")


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_fallbacks(config: DirectorConfig, deployment_names: list[str], tiers: list[str]) -> dict[str, list[str]]:
    """The fallback graph the Router gets: derived from tiers (each LLM tier -> stronger tiers,
    then weaker ones) unless disabled, with explicit ``llm.fallbacks`` entries taking precedence."""
    graph: dict[str, list[str]] = {}
    llm_tiers = [t for t in tiers if t in LLM_TIERS]
    if config.llm.derive_fallbacks:
        for i, tier in enumerate(llm_tiers):
            chain = llm_tiers[i + 1 :] + list(reversed(llm_tiers[:i]))
            if chain:
                graph[tier] = chain
    graph.update({k: list(v) for k, v in config.llm.fallbacks.items()})
    return graph


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the explicit fallback graph, as the path that closes it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def check_semantics(config: DirectorConfig, *, base_dir: Path | None = None) -> list[Problem]:
    """Every cross-field problem of ``config``. ``base_dir`` is the config file's folder:
    relative paths in it (``training_file``) are found there or in the working directory."""
    from director_llm.config.secrets import name_field_problems
    from director_llm.providers import build_deployments, override_lines, tiers_in_use, under_budget

    problems: list[Problem] = _check_providers(config, base_dir) + name_field_problems(config)
    if any(p.level == "error" for p in problems):
        return problems  # deployments cannot be built from a broken provider section
    problems += check_something_answers(config)
    deployments = build_deployments(config)
    names = [d.name for d in deployments]
    tiers = tiers_in_use(deployments)
    problems += _check_fallbacks(config, names, tiers)
    problems += _check_caching(config)
    problems += _check_intents(config, tiers)
    problems += check_flows(config)
    problems += check_timeouts(config, deployments)
    partial_pools: set[str] = set()
    for d in deployments:
        key = f"providers.{d.provider}"
        unset = [n for n, state in d.key_statuses().items() if state == "missing"]
        if len(d.api_key_envs) > 1 and unset and len(unset) < len(d.api_key_envs) and d.provider not in partial_pools:
            partial_pools.add(d.provider)
            listed = ", ".join(f"${n}" for n in unset)
            problems.append(
                Problem(
                    "warning",
                    f"{key}.api_key_envs",
                    f"{listed} {'is' if len(unset) == 1 else 'are'} not set: the key pool serves with "
                    f"{len(d.api_key_envs) - len(unset)} of its {len(d.api_key_envs)} keys",
                )
            )
        if d.needs_key and d.key_status() == "missing":
            if len(d.api_key_envs) > 1:
                listed = ", ".join(f"${n}" for n in d.api_key_envs)
                problems.append(
                    Problem(
                        "warning", f"{key}.api_key_envs", f"none of {listed} is set: {d.name} is skipped at run time"
                    )
                )
            else:
                problems.append(
                    Problem(
                        "warning", f"{key}.api_key_env", f"${d.api_key_env} is not set: {d.name} is skipped at run time"
                    )
                )
        if d.price.assumed or not d.price.known:
            message = unknown_price_message(d, budgeted=under_budget(config, d.provider))
            lines = override_lines(config, d, deployments)
            problems.append(Problem("warning", f"{key}.overrides.{d.model}", f"{message}. Add:\n" + _indent(lines)))
    return problems


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def unknown_price_message(d: DeploymentInfo, *, budgeted: bool) -> str:
    """What really happens to a deployment with no known price (said the same everywhere)."""
    what = f"the price of {d.name} is unknown (not in LiteLLM's cost map, no full override)"
    if not budgeted:
        return f"{what}: no budget limits it, but its spend is reported as $0"
    if d.price.assumed:
        pin, pout = d.price.per_million()
        return (
            f"{what}: a budget limits it, so it is never free: it is budgeted and booked at "
            f"${pin:g} input / ${pout:g} output per 1M tokens (the most expensive configured)"
        )
    return f"{what}: a budget limits it and no deployment has a price to assume for it, so it is refused"


def _check_providers(config: DirectorConfig, base_dir: Path | None = None) -> list[Problem]:
    out: list[Problem] = []
    for name, p in config.providers.items():
        key = f"providers.{name}"
        for model in p.overrides:
            if model not in p.models and not (p.kind == "local" and not p.models and model == "intent"):
                out.append(
                    Problem(
                        "error",
                        f"{key}.overrides.{model}",
                        f"model '{model}' is not listed in {key}.models{_did_you_mean(model, p.models)}",
                    )
                )
        if p.use_openai_compatibility and p.kind != "gemini":
            out.append(Problem("error", f"{key}.use_openai_compatibility", 'only valid for kind = "gemini"'))
        if p.kind in ("openai_compatible", "litellm_proxy") and not p.base_url:
            example = "http://localhost:8080/v1" if p.kind == "openai_compatible" else "http://localhost:4000"
            out.append(
                Problem(
                    "error",
                    f"{key}.base_url",
                    f'required for kind = "{p.kind}" (e.g. "{example}")',
                )
            )
        if p.kind != "local":
            for f in _LOCAL_ONLY_FIELDS:
                if getattr(p, f) is not None:
                    out.append(Problem("error", f"{key}.{f}", 'only valid for kind = "local"'))
        if p.enabled and not p.models and p.kind != "local":
            out.append(Problem("error", f"{key}.models", "an enabled provider needs at least one model"))
        if len(set(p.models)) != len(p.models):
            out.append(Problem("error", f"{key}.models", "lists a model twice"))
        if p.kind == "local" and p.training_file:
            candidates = [Path(p.training_file)]
            if base_dir is not None and not candidates[0].is_absolute():
                candidates.append(base_dir / p.training_file)
            if not any(c.exists() for c in candidates):
                where = " or ".join(str(c) for c in candidates)
                out.append(Problem("error", f"{key}.training_file", f"file not found: {where}"))
    return out


def _check_fallbacks(config: DirectorConfig, names: list[str], tiers: list[str]) -> list[Problem]:
    out: list[Problem] = []
    known = [t for t in tiers if t in LLM_TIERS] + names
    for source, targets in config.llm.fallbacks.items():
        key = f"llm.fallbacks.{source}"
        if source not in known:
            what = "a tier with no deployment" if source in TIERS else "not a tier or deployment"
            out.append(
                Problem(
                    "error",
                    key,
                    f"'{source}' is {what}{_did_you_mean(source, known)}; known: {', '.join(known) or 'none'}",
                )
            )
        for t in targets:
            if t not in known:
                what = "is a tier with no deployment" if t in TIERS else "does not exist"
                out.append(
                    Problem(
                        "error",
                        key,
                        f"fallback target '{t}' {what}{_did_you_mean(t, known)}; known: {', '.join(known) or 'none'}",
                    )
                )
            if t == source:
                out.append(Problem("error", key, f"'{source}' falls back to itself"))
    cycle = find_cycle({k: [t for t in v if t != k] for k, v in config.llm.fallbacks.items()})
    if cycle:
        out.append(Problem("error", "llm.fallbacks", "fallback cycle: " + " -> ".join(cycle)))
    return out


def _check_caching(config: DirectorConfig) -> list[Problem]:
    c = config.caching
    out: list[Problem] = []
    if not c.enabled:
        return out
    if c.disk_cache_path is not None:
        path = Path(c.disk_cache_path).expanduser()
        if path.exists() and not path.is_dir():
            out.append(Problem("error", "caching.disk_cache_path", f"{path} exists and is not a directory"))
        else:
            parent = next((q for q in [path, *path.parents] if q.exists()), None)
            if parent is not None and not os.access(parent, os.W_OK):
                out.append(Problem("error", "caching.disk_cache_path", f"{parent} is not writable"))
    if not c.memory_size_mb and c.redis_url is None and c.disk_cache_path is None:
        out.append(
            Problem(
                "warning",
                "caching",
                "caching is enabled but every layer is off (set memory_size_mb, redis_url or disk_cache_path)",
            )
        )
    return out


def _check_intents(config: DirectorConfig, tiers: list[str]) -> list[Problem]:
    i = config.intents
    out: list[Problem] = []
    if i.flows is not None and not i.flows:
        out.append(
            Problem(
                "error",
                "intents.flows",
                "define at least one flow, or remove [intents.flows] to use the built-in flows",
            )
        )
    for tier in i.tier_thresholds:
        if tier not in tiers and tier != "local":
            out.append(Problem("warning", f"intents.tier_thresholds.{tier}", f"tier '{tier}' has no deployment"))
    escalate = i.tier_thresholds.get("local", LOCAL_ESCALATE_BELOW)
    local = next((p for p in config.providers.values() if p.kind == "local" and p.enabled), None)
    answer_from = (
        local.confidence_threshold
        if local is not None and local.confidence_threshold is not None
        else i.confidence_threshold
    )
    if local is not None and any(t != "local" for t in tiers) and escalate < answer_from:
        out.append(
            Problem(
                "warning",
                "intents.tier_thresholds.local",
                f"the local tier escalates to an LLM tier below {escalate:g} but answers the fallback flow below "
                f"{answer_from:g}: a local confidence in between becomes the fallback flow without any LLM being "
                f"asked. Set tier_thresholds.local to at least {answer_from:g}",
            )
        )
    return out
