"""``director-llm chat``: a streaming REPL (or ``--once "question"``) showing who answered and the cost."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer

from director_llm.cli.app import ConfigOpt, JsonOpt, app, err, fail
from director_llm.cli.render import esc
from director_llm.errors import DirectorError, InputError, ProviderError

NO_LLM = (
    "no LLM deployment is usable: every provider is disabled, local-only or missing its API key "
    "(see `director-llm check-config`); chat needs an LLM tier: uncomment a provider in the config"
)


async def _ask(director, history: list[dict], *, model: str | None, as_json: bool) -> dict:
    from director_llm.streaming import StreamEnd, TextDelta

    end = None
    async with director.stream_response(history, model=model) as stream:
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                if not as_json:
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
            elif isinstance(chunk, StreamEnd):
                end = chunk
    assert end is not None
    if not as_json:
        sys.stdout.write("\n")
        r = end.route
        hops = f", after {r.fallbacks} fallback(s)" if r.fallbacks else ""
        err.print(
            f"[dim]{esc(r.deployment)} · {end.usage['total_tokens']} tokens · ${end.cost_usd:.6f} · "
            f"first token {r.first_token_s * 1000:.0f} ms{hops}[/]",
            highlight=False,
        )
    return {
        "text": end.text,
        "deployment": end.route.deployment,
        "cost_usd": end.cost_usd,
        "usage": end.usage,
        "first_token_s": end.route.first_token_s,
        "total_s": end.route.total_s,
        "attempts": [a.deployment + ":" + a.outcome for a in end.route.attempts],
    }


@app.command("chat")
def chat(
    once: Annotated[str | None, typer.Option("--once", help="Ask one question, print the answer, exit.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Tier or deployment to use.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Chat with streaming answers; shows which model answered and what it cost."""
    try:
        director = _director(config)
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None

    async def run() -> int:
        async with director:
            history: list[dict] = []
            questions = [once] if once is not None else None
            if questions is None:  # a session that lasts: `kill -HUP <pid>` reloads the API keys
                director.install_sighup_handler()
            while True:
                if questions is not None:
                    if not questions:
                        return 0
                    q = questions.pop()
                else:
                    try:
                        q = await asyncio.to_thread(input, "> ")
                    except EOFError:
                        return 0
                    if q.strip() in ("/exit", "/quit"):
                        return 0
                if not q.strip():
                    if questions is not None:
                        raise InputError("the question is empty")
                    continue
                history.append({"role": "user", "content": q})
                try:
                    result = await _ask(director, history, model=model, as_json=as_json)
                except ProviderError as exc:
                    if questions is not None:
                        raise
                    err.print(f"[yellow]no answer[/]: {esc(exc)}", highlight=False)
                    history.pop()
                    continue
                history.append({"role": "assistant", "content": result["text"]})
                if as_json:
                    import json

                    print(json.dumps(result))

    try:
        code = asyncio.run(run())
    except DirectorError as exc:
        raise fail(exc, as_json=as_json) from None
    raise typer.Exit(code)


def _director(config: Any) -> Any:
    """The Director of ``config``, or ``ProviderError`` at once when no LLM tier could answer.
    Decided from the config alone: building the Director and its Router (importing LiteLLM,
    seconds) only to find that out is what made ``chat`` slow to fail."""
    from director_llm.config.loading import load_config, resolve_config_path
    from director_llm.config.semantics import LLM_TIERS
    from director_llm.providers import build_deployments

    source = resolve_config_path(config)
    cfg = load_config(source)
    if not any(d.tier in LLM_TIERS and d.key_status() != "missing" for d in build_deployments(cfg)):
        raise ProviderError(NO_LLM)
    from director_llm.director import Director

    return Director(cfg, source=str(source))
