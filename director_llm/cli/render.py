"""All rich output of the CLI lives here; commands only gather data.

Every value interpolated into a markup string goes through ``esc`` (rich's ``escape``):
config values, names and messages may contain ``[...]`` (``[providers.*]``, an upstream
error body, a model's reasoning) that rich would otherwise swallow or choke on.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def esc(value: object) -> str:
    """``value`` as text that rich prints literally inside a markup string."""
    return escape(str(value))


_TIER_STYLE = {"local": "green", "small": "cyan", "balanced": "yellow", "strong": "magenta"}


def _money(v: float | None) -> str:
    return "?" if v is None else f"${v:,.4f}".rstrip("0").rstrip(".") if v else "$0"


def _rate_limits_line(rl: dict[str, Any]) -> str:
    def limits(v: dict[str, Any]) -> str:
        names = (("rpm", "rpm"), ("tpm", "tpm"), ("max_parallel_requests", "in flight"))
        return ", ".join(f"{label} {v[k]}" for k, label in names if v.get(k))

    scopes = ([f"global {limits(rl['global'])}"] if limits(rl["global"]) else []) + [
        f"{esc(n)}: {limits(v)}" for n, v in rl["deployments"].items()
    ]
    if not scopes:
        return "none"
    return "; ".join(scopes) + f" (wait up to {rl['max_wait_seconds']:g}s, counted in {rl['store']})"


def render_config_report(console: Console, report: dict[str, Any]) -> None:
    """The ``check-config`` view: deployments, budgets, fallbacks, cache, problems."""
    table = Table(title=f"Deployments in {esc(report['source'])}", title_justify="left", expand=False)
    for col in ("deployment", "LiteLLM model", "tier", "type", "$/1M in / out", "price from", "capabilities", "key"):
        table.add_column(col, overflow="fold")
    for d in report["deployments"]:
        p = d["price_per_million"]
        tier = d["tier"]
        key = d["key_status"]
        key_cell = {"set": "[green]set[/]", "missing": "[red]missing[/]"}.get(key, "[dim]-[/]")
        keys = d.get("keys") or {}
        if len(keys) > 1:  # a key pool: how many of its keys are set
            n_set = sum(1 for v in keys.values() if v == "set")
            key_cell = f"[{'green' if n_set == len(keys) else 'yellow' if n_set else 'red'}]{n_set}/{len(keys)} set[/]"
        caps = [
            c for c, v in (("json-schema", d["supports_json_schema"]), ("tools", d["supports_function_calling"])) if v
        ]
        table.add_row(
            esc(d["name"]),
            "[dim]in process[/]" if d["kind"] == "local" else esc(d["litellm_model"]),
            f"[{_TIER_STYLE.get(tier, 'white')}]{esc(tier)}[/]",
            esc(d["provider_type"]),
            f"{_money(p['input'])} / {_money(p['output'])}",
            esc(p["source"]) if p["source"] != "unknown" else "[red]unknown[/]",
            ", ".join(caps) or "-",
            key_cell,
        )
    if not report["deployments"]:
        table.add_row("[dim]none[/]", "", "", "", "", "", "", "")
    console.print(table)
    pools: dict[str, dict[str, str]] = {}
    for d in report["deployments"]:
        if len(d.get("keys") or {}) > 1:
            pools.setdefault(d["provider"], d["keys"])
    for provider, keys in pools.items():  # names and whether each is set, never a value
        listed = ", ".join(
            f"{esc(n)} ({'[green]set[/]' if v == 'set' else '[red]missing[/]'})" for n, v in keys.items()
        )
        console.print(f"[bold]Key pool[/] of {esc(provider)}: {listed}", highlight=False)

    b = report["budgets"]
    console.print(
        f"[bold]Budgets[/]: per hour {_limit(b['per_hour_usd'])}, per day {_limit(b['per_day_usd'])}"
        + "".join(
            f"; {esc(n)}: {_limit(v['per_hour_usd'])}/h {_limit(v['per_day_usd'])}/day"
            for n, v in b["per_provider"].items()
        )
    )
    t = report["timeouts"]
    cb = report["circuit_breaker"]
    console.print(
        f"[bold]Strategy[/]: {esc(report['strategy'])}   "
        f"[bold]Deadline[/]: {t['request_deadline_s']}s per request, "
        f"{t['attempt_s']}s per attempt, {t['num_retries']} retries   [bold]Breaker[/]: opens after "
        f"{cb['failure_threshold']} failures for {cb['cooldown_seconds']}s"
    )
    rl = report.get("rate_limits")
    if rl is not None and (rl["deployments"] or any(rl["global"].values())):
        console.print("[bold]Rate limits[/]: " + _rate_limits_line(rl))
    tiers = report["tiers"]
    console.print("[bold]Tiers[/]: " + (", ".join(f"{esc(k)} ({len(v)})" for k, v in tiers.items()) or "none"))
    fb = report["fallbacks"]
    console.print(
        "[bold]Fallbacks[/]: " + ("; ".join(f"{esc(k)} -> {esc(' -> '.join(v))}" for k, v in fb.items()) or "none")
    )
    c = report["cache"]
    parts = []
    for layer in ("memory", "redis", "disk"):
        info = c[layer]
        if info["enabled"]:
            detail = {"memory": f"{info.get('size_mb')} MB", "redis": info.get("url"), "disk": info.get("path")}[layer]
            parts.append(f"{layer} ({esc(detail)})")
    console.print("[bold]Cache[/]: " + (" -> ".join(parts) + f", ttl {c['ttl_seconds']}s" if parts else "off"))
    i = report["intents"]
    flows = i["flows"]
    listed = ", ".join(flows[:30]) + (f", ... ({len(flows)} in all)" if len(flows) > 30 else "")
    size = i.get("prompt_tokens_estimate")
    console.print(
        f"[bold]Flows[/] ({esc(i['source'])}): {esc(listed)}; fallback {esc(i['fallback_flow'])} "
        f"below {i['confidence_threshold']}"
        + (
            f"; the local tier asks an LLM tier below {i['local_escalates_below']}"
            if i.get("local_escalates_below") is not None
            else ""
        )
        + (f"; classification prompt ~{size:,} tokens (chars/4)" if size else ""),
        highlight=False,
    )
    for p in report["problems"]:
        color = "red" if p["level"] == "error" else "yellow"
        console.print(f"[{color}]{p['level']}[/]: {esc(p['key'])}: {esc(p['message'])}", highlight=False)
    if report["valid"]:
        console.print("[green]config is valid[/]")


def _limit(v: float | None) -> str:
    return "unlimited" if v is None else f"${v:g}"
