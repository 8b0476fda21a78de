"""``director-llm classify``: one text (pretty, ``--json`` or ``--stream``) or a batch file.

The text is the argument, or stdin when the argument is ``-`` or absent with stdin piped.
Exit codes: 0 success; 2 config or input error (empty text, too long, unreadable file);
1 every provider failed (one line on stderr naming each deployment and why). With ``--json``
an error is ``{"error": {"type", "message"}}`` on stdout, same exit codes. In a batch a
failed line is recorded on that line and the batch goes on; the exit code is then 1 and
stderr names the failed lines (2 when every line failed on its input, 1 otherwise).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail, out
from director_llm.cli.render import esc
from director_llm.errors import DirectorError, InputError, ProviderError

DEFAULT_CONCURRENCY = 4
_BAR_WIDTH = 20
_STRATEGIES = ("cost", "latency", "quality", "adaptive")

TextArg = Annotated[
    str | None,
    typer.Argument(
        help="Text to classify; '-' (or nothing, with stdin piped) reads it from stdin.", show_default=False
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Classify every line of a .txt file (one text per line) or .jsonl file "
        '({"text": ..., "history": [...]} per line).',
        show_default=False,
    ),
]
StreamOpt = Annotated[bool, typer.Option("--stream", help="Show the partial flow and confidence as they arrive.")]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-n", min=1, max=256, help="Batch: classifications in flight at once.")
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Batch: write JSONL results here (default: stdout).", show_default=False),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the response cache.")]
StrategyOpt = Annotated[
    str | None,
    typer.Option("--strategy", help="cost, latency, quality or adaptive (default: the config's).", show_default=False),
]
TierOpt = Annotated[
    str | None,
    typer.Option(
        "--tier",
        help="Ask this tier (local, small, balanced, strong) instead of the strategy's choice.",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Ask this deployment (e.g. openai/gpt-4o-mini) or tier.", show_default=False),
]


@dataclass(frozen=True)
class Pick:
    """How the caller wants a classification routed."""

    strategy: str | None = None
    tier: str | None = None
    model: str | None = None
    """A deployment or tier (``--model``); with ``tier`` None, the strategy decides."""

    @property
    def target(self) -> str | None:
        return self.model if self.model is not None else self.tier


@app.command("classify")
def classify(
    text: TextArg = None,
    file: FileOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    stream: StreamOpt = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    output: OutputOpt = None,
    strategy: StrategyOpt = None,
    tier: TierOpt = None,
    model: ModelOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Classify a text (or every line of --file, or stdin) into one of the configured flows."""
    try:
        text = _text_from(text, file)
        pick = _pick(strategy, tier, model)
        director = _director(config)
        if pick.target is not None:
            _check_target(director, pick.target)
        if no_cache:
            director.cache.disable()
        if file is not None:
            code = asyncio.run(_batch(director, file, concurrency, output, pick))
            raise typer.Exit(code)
        if stream:
            asyncio.run(_stream(director, text or "", as_json, pick))
        else:
            result = asyncio.run(_single(director, text or "", pick))
            if as_json:
                print(result.model_dump_json())
            else:
                render_result(result)
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None


def _text_from(text: str | None, file: Path | None) -> str | None:
    """The text argument, or stdin for ``-`` / no argument with stdin piped."""
    if file is not None:
        if text is not None:
            raise InputError('give either a text ("director-llm classify \\"oi\\"") or --file, not both')
        return None
    if text == "-" or (text is None and not sys.stdin.isatty()):
        return sys.stdin.read().rstrip("\n")
    if text is None:
        raise InputError('give a text ("director-llm classify \\"oi\\""), "-" to read stdin, or --file')
    return text


def _pick(strategy: str | None, tier: str | None, model: str | None) -> Pick:
    if strategy is not None and strategy not in _STRATEGIES:
        raise InputError(f"--strategy must be cost, latency, quality or adaptive, got {strategy!r}")
    if tier is not None and model is not None:
        raise InputError("give --tier or --model, not both")
    pick = Pick(strategy, tier, model)
    if pick.target is not None and strategy is not None:
        raise InputError("--strategy chooses a tier; it cannot be combined with --tier or --model")
    return pick


def _director(config: Path | None) -> Any:
    from director_llm.director import Director

    return Director.from_file(config)


def _check_target(director: Any, target: str) -> None:
    """``InputError`` for a tier or deployment this config cannot serve, decided from the config
    (no Router built): a pinned request must not be answered by some other tier."""
    from director_llm.config.semantics import LLM_TIERS

    usable = director.usable_deployments()
    known = {d.name for d in usable if d.tier in LLM_TIERS} | {d.tier for d in usable if d.tier in LLM_TIERS}
    if director.local_tier is not None:
        known |= {"local", director.local_tier.deployment}
    if target not in known:
        raise InputError(
            f"unknown or unusable tier or deployment {target!r}; this config can use: "
            f"{', '.join(sorted(known)) or 'none'} (see director-llm check-config)"
        )


async def _single(director: Any, text: str, pick: Pick) -> Any:
    async with director:
        return await director.classify_intent(text, **_route_kwargs(pick))


def _route_kwargs(pick: Pick) -> dict[str, Any]:
    if pick.model is not None:
        return {"model": pick.model}
    if pick.tier is not None:
        return {"tier": pick.tier}
    return {"strategy": pick.strategy}


def _bar(confidence: float | None) -> str:
    if confidence is None:
        return "[dim]" + "·" * _BAR_WIDTH + "[/]"
    filled = round(confidence * _BAR_WIDTH)
    return f"[green]{'█' * filled}[/][dim]{'·' * (_BAR_WIDTH - filled)}[/] {confidence:.0%}"


def render_result(result: Any) -> None:
    """Pretty output of one ``IntentClassification``."""
    r = result.route
    out.print(
        f"[bold]flow[/]        {esc(result.flow)}"
        + (f"  [dim](model said {esc(repr(result.raw_flow))})[/]" if result.raw_flow else ""),
        highlight=False,
    )
    out.print(f"[bold]confidence[/]  {_bar(result.confidence)}", highlight=False)
    if result.reasoning:
        out.print(f"[bold]reasoning[/]   {esc(result.reasoning)}", highlight=False)
    if result.entities:
        out.print(f"[bold]entities[/]    {esc(json.dumps(result.entities, ensure_ascii=False))}", highlight=False)
    where = f"cache ({esc(r.cache)})" if r.cache else f"{esc(r.deployment or r.model)} [dim]tier {esc(r.tier)}[/]"
    out.print(
        f"[bold]route[/]       {where}, {r.calls} call(s), {r.latency_ms:.0f} ms"
        + (", repaired" if r.repaired else "")
        + (f", after {esc(', '.join(r.tried))}" if r.tried else ""),
        highlight=False,
    )
    out.print(
        f"[bold]cost[/]        ${r.cost_usd:.6f} ({r.prompt_tokens}+{r.completion_tokens} tokens)", highlight=False
    )


async def _stream(director: Any, text: str, as_json: bool, pick: Pick) -> None:
    from rich.live import Live

    async with director:
        if as_json:  # one JSON object per line: every partial and routing event, the final one last
            async for item in director.stream_intent(text, **_route_kwargs(pick)):
                print(item.model_dump_json(), flush=True)
            return
        final = None
        with Live("[dim]waiting for the model...[/]", console=out, transient=True, refresh_per_second=20) as live:
            async for item in director.stream_intent(text, **_route_kwargs(pick)):
                if item.type == "partial":
                    live.update(
                        f"[bold]{esc(item.partial_flow or '…')}[/]  {_bar(item.confidence)}  "
                        f"[dim]{item.elapsed_ms:.0f} ms[/]"
                    )
                    if item.done:
                        final = item.result
                elif item.type == "tier_chosen":
                    err.print(f"[dim]tier {esc(item.tier)}: {esc(item.reason)}[/]", highlight=False)
                elif item.type == "fallback":
                    err.print(
                        f"[yellow]fallback[/] {esc(item.from_deployment)} -> {esc(item.to or '?')} "
                        f"({esc(item.error_class)})",
                        highlight=False,
                    )
                elif item.type == "cache_hit":
                    err.print(f"[dim]cache hit ({esc(item.layer)})[/]", highlight=False)
        if final is not None:
            render_result(final)


# -- batch ----------------------------------------------------------------------------------
def read_inputs(path: Path) -> list[tuple[int, str, Any]]:
    """``(line number, text, history)`` per input line; blank lines are skipped. An unreadable
    line's history is ``{"__error__": why}``, recorded as that line's error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    items: list[tuple[int, str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                items.append((n, line, {"__error__": f"invalid JSON: {exc.msg}"}))  # recorded on that line
                continue
            if isinstance(obj, str):
                items.append((n, obj, None))
            elif isinstance(obj, dict) and isinstance(obj.get("text"), str):
                items.append((n, obj["text"], obj.get("history")))
            else:
                items.append((n, line, {"__error__": 'expected a JSON string or {"text": ...}'}))
        else:
            items.append((n, line, None))
    return items


async def _batch(director: Any, path: Path, concurrency: int, output: Path | None, pick: Pick) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    items = read_inputs(path)
    results: list[dict[str, Any] | None] = [None] * len(items)
    spent = 0.0
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(concurrency)
    progress = Progress(
        TextColumn("classifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[spend]}"),
        console=err,
        transient=False,
    )
    task = progress.add_task("classify", total=len(items), rate="0.0/s", spend="$0.000000")

    async def one(i: int, line: int, text: str, history: Any) -> None:
        nonlocal spent
        record: dict[str, Any] = {"line": line, "text": text}
        async with semaphore:
            try:
                if isinstance(history, dict) and "__error__" in history:
                    raise InputError(history["__error__"])
                result = await director.classify_intent(text, history, **_route_kwargs(pick))
                record["result"] = result.model_dump(mode="json")
                spent += result.route.cost_usd
            except DirectorError as exc:
                record["error"] = {"type": type(exc).__name__, "message": str(exc)}
                spent += float((getattr(exc, "usage", None) or {}).get("cost_usd") or 0.0)
        results[i] = record
        done = sum(r is not None for r in results)
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress.update(task, advance=1, rate=f"{rate:.1f}/s", spend=f"${spent:.6f}")

    async with director:
        with progress:
            await asyncio.gather(*(one(i, *item) for i, item in enumerate(items)))
    lines = [json.dumps(r, ensure_ascii=False) for r in results if r is not None]
    if output is not None:
        output.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    else:
        sys.stdout.write("\n".join(lines) + ("\n" if lines else ""))
    return _summary(results, spent, output)


def _lines(numbers: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def _summary(results: list[dict[str, Any] | None], spent: float, output: Path | None) -> int:
    """Print the batch summary on stderr (the failed lines by error type); exit code 0 when
    every line was classified, else 1."""
    done = [r for r in results if r is not None]
    ok = sum(1 for r in done if "result" in r)
    failed = [r for r in done if "error" in r]
    err.print(
        f"{ok} classified, {len(failed)} failed, ${spent:.6f} spent"
        + (f"; results in {esc(output)}" if output else ""),
        highlight=False,
    )
    if not failed:
        return 0
    by_type: dict[str, list[int]] = {}
    for r in failed:
        by_type.setdefault(r["error"]["type"], []).append(r["line"])
    for kind, numbers in by_type.items():
        err.print(
            f"[red]failed[/] ({esc(kind)}): line{'s' if len(numbers) > 1 else ''} {_lines(numbers)}", highlight=False
        )
    provider_failures = [r for r in failed if r["error"]["type"] in (ProviderError.__name__, "ClassificationError")]
    if ok == 0 and provider_failures:
        err.print(
            f"[red]error[/]: every provider failed: {esc(provider_failures[0]['error']['message'])}", highlight=False
        )
    return 1
