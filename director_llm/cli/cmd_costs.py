"""``director-llm costs``: spend per budget window, provider, model or hour, from the ledger.

Reads the shared ledger directly (no Router, no LiteLLM import): with ``[llm]
state_redis_url`` (or ``[caching] redis_url``) it shows what every process spent; without
Redis the ledger lives in each process's memory, so the command shows its own process's
numbers (nothing: it made no call) and says so (``scope: "process"`` and a ``note`` in
``--json``). An application reads its own with ``director.spend()``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail, out
from director_llm.cli.render import esc
from director_llm.errors import DirectorError, InputError

PER_PROCESS_NOTE = (
    "no Redis in this config, so spend is kept per process: these are this command's own numbers "
    "(it made no call). Each application process sees its own with director.spend(); set [llm] "
    "state_redis_url (or [caching] redis_url) to share the ledger and see every process's spend here."
)

ByOpt = Annotated[str | None, typer.Option("--by", help="Group usage by provider, model or hour.", show_default=False)]
PrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--state-prefix",
        envvar="DIRECTOR_STATE_PREFIX",
        show_default=False,
        help="Redis key prefix of the shared state, if the application sets one (Director(state_prefix=...)).",
    ),
]


async def _report(config: Any, by: str | None, prefix: str | None) -> dict[str, Any]:
    from director_llm.budget.guard import ledger_from_config

    ledger = ledger_from_config(config, prefix=prefix)
    try:
        report = (await ledger.snapshot(by=by)).to_dict()  # type: ignore[arg-type]
    finally:
        await ledger.aclose()
    report["shared"] = bool(config.redis_state_url)
    report["scope"] = "shared" if report["shared"] else "process"
    if not report["shared"]:
        report["note"] = PER_PROCESS_NOTE
    if by != "hour":
        report.pop("hourly", None)  # 24 rows of mostly zeros: only with --by hour
    return report


@app.command("costs")
def costs(config: ConfigOpt = None, as_json: JsonOpt = False, by: ByOpt = None, state_prefix: PrefixOpt = None) -> None:
    """Show spend and remaining budget per window (hour, day, per provider) and usage."""
    from director_llm.config.loading import load_config, resolve_config_path

    try:
        if by not in (None, "provider", "model", "hour"):
            raise InputError(f"--by must be provider, model or hour, got {by!r}")
        cfg = load_config(resolve_config_path(config))
        report = asyncio.run(_report(cfg, by, state_prefix))
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    if not report["shared"]:
        err.print(f"note: {PER_PROCESS_NOTE}", highlight=False)
    _render(report)


def _money(v: float | None) -> str:
    return "unlimited" if v is None else f"${v:.6f}"


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    windows = Table(title="Budget windows (UTC)")
    for col in ("window", "period", "limit", "spent", "held", "remaining", "resets at"):
        windows.add_column(col)
    for w in report["windows"].values():
        windows.add_row(
            esc(w["window"]),
            esc(w["period"]),
            _money(w["limit_usd"]),
            _money(w["spent_usd"]),
            _money(w["reserved_usd"]),
            _money(w["remaining_usd"]),
            esc(w["resets_at"]),
        )
    out.print(windows)
    total = report["total"]
    out.print(
        f"last 24 h: {total['requests']} requests, {total['prompt_tokens']} prompt + "
        f"{total['completion_tokens']} completion tokens, {_money(total['cost_usd'])}"
    )
    if report.get("usage"):
        usage = Table(title=f"Usage by {esc(report['by'])} (last 24 h)")
        for col in (report["by"], "requests", "prompt tokens", "completion tokens", "cost"):
            usage.add_column(esc(col))
        for key, u in report["usage"].items():
            usage.add_row(
                esc(key),
                str(u["requests"]),
                str(u["prompt_tokens"]),
                str(u["completion_tokens"]),
                _money(u["cost_usd"]),
            )
        out.print(usage)
