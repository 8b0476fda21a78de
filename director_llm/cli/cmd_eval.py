"""``director-llm eval DATASET.jsonl``: accuracy, cost and latency of the local tier, the
cascade or one LLM tier on a labelled set (see ``director_llm.evalrun`` for the method).

Exit codes: 0 done; 2 config or input error (unreadable set, unknown tier, bad spec).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail, out
from director_llm.errors import DirectorError, InputError

DatasetArg = Annotated[
    Path,
    typer.Argument(
        help='Labelled JSONL: {"text": ..., "intent": ...} per line (CLINC\'s "oos" = the config\'s fallback flow).',
        show_default=False,
    ),
]
TrainOpt = Annotated[
    Path | None,
    typer.Option(
        "--train",
        help="JSONL to train the local tier on: added to the config's flow examples when its labels are "
        "the config's flows, otherwise used alone (the flows are rebuilt from it).",
        show_default=False,
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Directory for report.json and accuracy_vs_cost.png.", show_default=False),
]
TierOpt = Annotated[
    str | None,
    typer.Option(
        "--tier",
        help="local, cascade, or an LLM tier / deployment (default: cascade when an LLM tier is usable, else local).",
        show_default=False,
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="local: the out-of-scope threshold; cascade: the escalation threshold (default: the config's).",
        show_default=False,
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N messages.", show_default=False)]
SimulateOpt = Annotated[
    str | None,
    typer.Option(
        "--simulate-remote",
        help="Replace the LLM tiers by simulated ones priced like real models, e.g. "
        "accuracy_mini=0.90,accuracy_4o=0.95[,latency_ms=300]. Results are labelled simulated.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-n", min=1, max=256, help="Remote classifications in flight at once.")
]
ValidationOpt = Annotated[
    float,
    typer.Option(
        "--validation-share",
        min=0.0,
        max=0.9,
        help="Share of the set (per label, chosen by a hash of the text, the same on every machine) used only to "
        "recommend thresholds; every number is reported on the rest. 0: report on everything, recommend nothing.",
    ),
]


@app.command("eval")
def eval_command(
    dataset: DatasetArg,
    train: TrainOpt = None,
    config: ConfigOpt = None,
    report: ReportOpt = None,
    tier: TierOpt = None,
    threshold: ThresholdOpt = None,
    limit: LimitOpt = None,
    simulate_remote: SimulateOpt = None,
    concurrency: ConcurrencyOpt = 8,
    validation_share: ValidationOpt = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Measure the local tier, the cascade or an LLM tier on a labelled JSONL set.

    The set is split in two: thresholds are recommended from the validation part, and every
    number is reported on the held-out part (nothing is tuned on it)."""
    try:
        result = asyncio.run(
            _run(dataset, train, config, tier, threshold, limit, simulate_remote, concurrency, validation_share)
        )
    except DirectorError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        from director_llm.cli.render_eval import render_report

        render_report(out, result)
    if report is not None:
        _write_report(result, report)


def _write_report(result: dict[str, Any], directory: Path) -> None:
    from director_llm.cli.render_eval import plot

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.json").write_text(
            json.dumps(result, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
        )
    except OSError as exc:
        raise fail(InputError(f"cannot write the report to {directory}: {exc}")) from None
    png, why = plot(result, directory / "accuracy_vs_cost.png")
    err.print(f"report: {directory / 'report.json'}" + (f", plot: {png}" if png else ""), highlight=False)
    if why:
        err.print(f"[yellow]note[/]: {why}", highlight=False)


async def _run(
    dataset: Path,
    train: Path | None,
    config_path: Path | None,
    tier: str | None,
    threshold: float | None,
    limit: int | None,
    simulate: str | None,
    concurrency: int,
    validation_share: float = 0.5,
) -> dict[str, Any]:
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.config.semantics import LLM_TIERS
    from director_llm.evalrun import collect, eval_config, load_eval_set, report
    from director_llm.local import load_training_file

    source = resolve_config_path(config_path)
    base = load_config(source)
    fallback = base.intents.fallback_flow
    items = load_eval_set(dataset, oos_label=fallback, limit=limit)
    train_examples = [(t, fallback if i == "oos" else i) for t, i in load_training_file(train)] if train else []
    cfg, note = eval_config(base, {g for _, g in items} | {i for _, i in train_examples}, train_examples)
    notes = [note] if note else []
    sims = None
    if simulate:
        from director_llm.evalsim import SimulatedRemotes, parse_spec
        from director_llm.intents.prompts import flow_set

        sims = SimulatedRemotes(parse_spec(simulate), dict(items), flow_set(cfg.intents).names)
        sims.start()
        cfg = sims.overlay(cfg)
        notes.append(
            "remote tiers are SIMULATED (oracle on 127.0.0.1 with the given accuracy, priced like the real "
            "models from the real prompt size)"
        )
    try:
        return await _evaluate(
            cfg,
            source,
            items,
            train_examples,
            note is not None,
            tier,
            threshold,
            sims,
            concurrency,
            notes,
            LLM_TIERS,
            collect,
            report,
            validation_share,
        )
    finally:
        if sims is not None:
            sims.stop()


async def _evaluate(
    cfg: Any,
    source: Path,
    items: list[tuple[str, str]],
    train_examples: list[tuple[str, str]],
    rebuilt: bool,
    tier: str | None,
    threshold: float | None,
    sims: Any,
    concurrency: int,
    notes: list[str],
    llm_tiers: tuple[str, ...],
    collect: Any,
    report: Any,
    validation_share: float = 0.5,
) -> dict[str, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from director_llm.director import Director
    from director_llm.local_tier import LocalTier

    director = Director(cfg, source=str(source))
    director.cache.disable()
    local = director.local_tier
    if train_examples and local is not None:
        if rebuilt:
            director._local_tier = LocalTier(
                cfg, name=local.name, section=local.section, examples=train_examples, base_dir=local.base_dir
            )
            notes.append(f"local tier trained on the --train file alone ({len(train_examples)} examples)")
        else:
            director._local_tier = LocalTier(
                cfg, name=local.name, section=local.section, extra_examples=train_examples, base_dir=local.base_dir
            )
            notes.append(
                f"local tier trained on the config's flows + the --train file ({len(train_examples)} examples)"
            )
    llm = [d for d in director.usable_deployments() if d.tier in llm_tiers]
    mode = tier or ("cascade" if llm else "local")
    if mode in ("local", "cascade") and director.local_tier is None:
        raise InputError(f'--tier {mode} needs a local tier: add [providers.local] kind = "local" to the config')
    if mode == "local":
        groups: list[str] = []
    elif not llm:
        raise InputError(
            f"--tier {mode} needs an LLM tier: configure one, or simulate them with "
            "--simulate-remote accuracy_mini=0.90,accuracy_4o=0.95"
        )
    elif mode == "cascade":
        groups = sims.groups() if sims is not None else [t for t in llm_tiers if t in director.groups()]
    else:
        if mode not in director.groups():
            raise InputError(f"unknown --tier {mode!r}; use local, cascade or one of: {', '.join(director.groups())}")
        groups = [mode]
    total = len(items) * ((mode in ("local", "cascade")) + len(groups))
    progress = Progress(
        TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    )
    task = progress.add_task("eval", total=total)
    async with director:
        if director.local_tier is not None and mode in ("local", "cascade"):
            with err.status("loading the local tier (trains on first use, then cached)..."):
                await director.local_tier.aload()
        with progress:
            run = await collect(
                director,
                items,
                local=mode in ("local", "cascade"),
                groups=groups,
                tick=lambda: progress.advance(task),
                concurrency=concurrency,
            )
    run.notes = notes
    run.simulated = sims is not None
    from director_llm.evalrun import split_run

    validation, held_out = split_run(run, validation_share)
    if validation is not None:
        notes.append(
            f"thresholds recommended from a validation part of {len(validation.gold)} messages; every number "
            f"is on the other {len(held_out.gold)} (split per label by a hash of the text)"
        )
    if not held_out.gold:
        raise InputError(
            f"nothing left to report on after the validation split (--validation-share "
            f"{validation_share:g}): use a bigger set or --validation-share 0"
        )
    escalate = director.local_tier.escalate_below if director.local_tier is not None else 0.55
    local_th = director.local_tier.confidence_threshold if director.local_tier is not None else None
    at = threshold if mode == "cascade" or threshold is not None else local_th
    return report(
        held_out, mode=mode, threshold=at, default_escalation=escalate, local_threshold=local_th, validation=validation
    )
