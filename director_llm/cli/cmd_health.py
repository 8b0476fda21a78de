"""``director-llm health``: each deployment's breaker state, error rate, latency, last error."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail, out
from director_llm.cli.cmd_costs import PrefixOpt
from director_llm.cli.render import esc
from director_llm.errors import DirectorError


@app.command("health")
def health(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    probe: Annotated[bool, typer.Option("--probe", help="Send each deployment a 1-token request.")] = False,
    probe_timeout: Annotated[
        float | None,
        typer.Option(
            "--probe-timeout",
            min=0.1,
            show_default=False,
            help="Seconds each probe may take (default: min(5, [llm] attempt_timeout_seconds)).",
        ),
    ] = None,
    state_prefix: PrefixOpt = None,
) -> None:
    """Show each deployment's state (healthy / degraded / cooling down / half-open / unknown).

    With Redis in the config, the states and counts are every process's; without it, this
    process's alone (a fresh process knows nothing: "unknown", unless --probe).
    Exit 1 when --probe is given and no deployment answered.
    """
    from director_llm.director import Director

    async def run() -> dict:
        async with Director.from_file(config, state_prefix=state_prefix) as director:
            return await director.health(probe=probe, probe_timeout=probe_timeout)

    try:
        report = asyncio.run(run())
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    if as_json:
        print(json.dumps({"deployments": report}, indent=2))
    else:
        from rich.table import Table

        table = Table("deployment", "state", "requests", "error rate", "latency ms", "probe", "last error")
        for name, h in report.items():
            p = h.get("probe")
            probe_txt = "" if p is None else (f"ok {p['latency_ms']} ms" if p["ok"] else f"failed: {p['error']}")
            latency = h["p50_latency_ms"] if h["p50_latency_ms"] is not None else h.get("mean_latency_ms")
            table.add_row(
                esc(name),
                esc(h["state"]),
                str(h["requests"]),
                f"{h['error_rate']:.0%}",
                "" if latency is None else str(latency),
                esc(probe_txt),
                esc(h["last_error"] or ""),
            )
        out.print(table)
        pools: dict[str, dict[str, dict]] = {}
        for name, h in report.items():
            if len(h.get("keys") or {}) > 1:
                pools.setdefault(name.split("/", 1)[0], h["keys"])
        for provider, keys in pools.items():  # variable names and states, never a value
            listed = ", ".join(f"{esc(k)} {esc(_key_state(v))}" for k, v in keys.items())
            out.print(f"keys of {esc(provider)}: {listed}", highlight=False)
        if not probe and report and all(h.get("source") == "process" for h in report.values()):
            err.print(
                "note: no Redis in this config, so these are this process's numbers alone "
                "(a new process has called nothing yet); use --probe to check each deployment now",
                highlight=False,
            )
    if probe and report and not any((h.get("probe") or {}).get("ok") for h in report.values()):
        raise typer.Exit(1)


def _key_state(key: dict) -> str:
    state = str(key.get("state", ""))
    if key.get("status"):
        return f"{state} ({key['status']})"
    if key.get("cooling_s"):
        return f"{state} ({max(key['cooling_s'].values()):g}s)"
    return state
