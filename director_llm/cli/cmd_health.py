"""``director-llm health``: each deployment's breaker state, error rate, latency, last error."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, fail, out
from director_llm.cli.render import esc
from director_llm.errors import DirectorError


@app.command("health")
def health(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    probe: Annotated[bool, typer.Option("--probe", help="Send each deployment a 1-token request.")] = False,
) -> None:
    """Show each deployment's state (healthy / degraded / cooling down / half-open).

    Exit 1 when --probe is given and no deployment answered.
    """
    from director_llm.director import Director

    async def run() -> dict:
        async with Director.from_file(config) as director:
            return await director.health(probe=probe)

    try:
        report = asyncio.run(run())
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    if as_json:
        print(json.dumps({"deployments": report}, indent=2))
    else:
        from rich.table import Table

        table = Table("deployment", "state", "requests", "error rate", "p50 ms", "probe", "last error")
        for name, h in report.items():
            p = h.get("probe")
            probe_txt = "" if p is None else (f"ok {p['latency_ms']} ms" if p["ok"] else f"failed: {p['error']}")
            table.add_row(
                esc(name),
                esc(h["state"]),
                str(h["requests"]),
                f"{h['error_rate']:.0%}",
                str(h["p50_latency_ms"] or ""),
                esc(probe_txt),
                esc(h["last_error"] or ""),
            )
        out.print(table)
    if probe and report and not any((h.get("probe") or {}).get("ok") for h in report.values()):
        raise typer.Exit(1)
