"""``director-llm cache stats|clear``: inspect or empty this config's cache namespace.

Both commands open the configured layers directly (no Router, no LiteLLM import), so
they are fast. Hit and miss counters live in the process that serves requests
(``director.cache_stats()``); a CLI process can only report what the layers hold.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail, out
from director_llm.cli.render import esc
from director_llm.errors import DirectorError

cache_app = typer.Typer(name="cache", help="Inspect or clear the response cache of a config.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _load(config: Any) -> Any:
    from director_llm.cache.director import DirectorCache
    from director_llm.config.loading import load_config, resolve_config_path

    return DirectorCache(load_config(resolve_config_path(config)))


async def _inspect(cache: Any) -> dict[str, Any]:
    s = cache.settings
    report: dict[str, Any] = {"enabled": cache.enabled, "namespace": cache.namespace, "layers": {}}
    tiered = cache.tiered()
    if tiered is None:
        return report
    try:
        counts = await tiered.count_entries()
        stats = tiered.stats()
    finally:
        await tiered.aclose()
    layers = report["layers"]
    if "memory" in counts:
        layers["memory"] = {
            "max_bytes": stats.memory_max_bytes,
            "entries": counts["memory"],
            "note": "in-process: empty in a new process",
        }
    if "redis" in counts:
        from director_llm.cache.redis import redacted_url

        layers["redis"] = {"url": redacted_url(s.redis_url), "state": stats.redis_state, "entries": counts["redis"]}
    if "disk" in counts:
        layers["disk"] = {"path": s.disk_cache_path, "entries": counts["disk"]}
    report["ttl_seconds"] = s.ttl_seconds
    report["cache_chat"] = s.cache_chat
    return report


@cache_app.command("stats")
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show the cache layers of this config, their state and how many entries they hold."""
    try:
        report = asyncio.run(_inspect(_load(config)))
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    if as_json:
        print(json.dumps(report))
        return
    if not report["enabled"]:
        out.print("cache: [yellow]off[/] (caching.enabled = false, or no layer configured)")
        return
    from rich.table import Table

    table = Table(title=f"cache namespace {esc(report['namespace'])}", title_justify="left")
    for column in ("layer", "where", "state", "entries"):
        table.add_column(column, justify="right" if column == "entries" else "left")
    for name, layer in report["layers"].items():
        where = layer.get("url") or layer.get("path") or f"{layer['max_bytes'] / 2**20:g} MiB in process"
        entries = "?" if layer["entries"] is None else f"{layer['entries']:,}"
        table.add_row(esc(name), esc(where), esc(layer.get("state", "up")), entries)
    out.print(table)
    out.print(
        f"ttl {report['ttl_seconds']:g} s; chat completions cached: {report['cache_chat']}. "
        "Hit rates are per serving process: director.cache_stats().",
        highlight=False,
    )


@cache_app.command("clear")
def clear(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted for scripts; nothing is asked.")] = False,
) -> None:
    """Delete every entry of this config's namespace (other configs' entries are kept)."""
    del yes  # clearing a cache loses no data, so there is no prompt to skip

    async def run(cache: Any) -> dict[str, Any]:
        tiered = cache.tiered()
        if tiered is None:
            return {"enabled": False, "namespace": cache.namespace, "removed": {}}
        try:
            before = await tiered.count_entries()
            await tiered.clear()
            after = await tiered.count_entries()
            state = tiered.stats().redis_state
        finally:
            await tiered.aclose()
        removed = {k: (v - (after.get(k) or 0)) if v is not None else None for k, v in before.items()}
        return {"enabled": True, "namespace": cache.namespace, "removed": removed, "redis_state": state}

    try:
        result = asyncio.run(run(_load(config)))
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    if as_json:
        print(json.dumps(result))
    elif not result["enabled"]:
        out.print("cache: [yellow]off[/]; nothing to clear")
    else:
        parts = ", ".join(f"{k} {'?' if v is None else v}" for k, v in result["removed"].items())
        out.print(f"cleared namespace {esc(result['namespace'])}: {esc(parts)}", highlight=False)
    if result.get("redis_state") == "down":
        err.print("[yellow]warning[/]: Redis was unreachable; its entries were not cleared")
        raise typer.Exit(1)
