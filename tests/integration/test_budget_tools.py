"""Reservations count everything billed: with 20 tool definitions on every request, the
ledger's spend stays within the limit (the issue saw $9.85 spent against $0.50).

The fake server bills like a provider that renders tools as their JSON text plus a tool-use
system prompt (Anthropic documents 346 tokens), and every answer uses its whole
``max_tokens``: the most a provider can bill for these requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import BudgetExceededError
from director_llm.testing import Reply

KEY_ENV = "TEST_OPENAI_KEY"
PRICE = (2.5e-6, 10e-6)
MAX_TOKENS = 100
LIMIT = 0.5
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Look up the weather forecast for a city and a date, in metric or imperial units. " * 3,
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "date": {"type": "string", "description": "ISO date"},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                },
                "required": ["city"],
            },
        },
    }
    for i in range(20)
]
ASK = [
    {"role": "system", "content": "You are a helpful assistant. Use the tools when they help."},
    {"role": "user", "content": "What's the weather in Lisbon tomorrow?"},
]


def _encoding() -> Any:
    # LiteLLM ships tiktoken's files; point tiktoken at them (no download, no LiteLLM import).
    import importlib.util

    import tiktoken

    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"))
    return tiktoken.get_encoding("o200k_base")


def billed(request: Any) -> Reply:
    """Usage as the most generous provider would bill it."""
    enc = _encoding()
    body = request.body
    prompt = len(enc.encode(json.dumps(body["messages"]))) + 346
    if body.get("tools"):
        prompt += len(enc.encode(json.dumps(body["tools"])))
    return Reply(text="It will be sunny.", usage=(prompt, int(body["max_tokens"])))


def config_text(base: str, redis: str) -> str:
    return textwrap.dedent(f"""
        [llm]
        budget_per_hour = {LIMIT}
        default_max_tokens = {MAX_TOKENS}
        state_redis_url = "{redis}"
        attempt_timeout_seconds = 20
        timeout_seconds = 60
        [providers.openai]
        models = ["gpt-4o"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.gpt-4o]
        input_price_per_million = {PRICE[0] * 1e6}
        output_price_per_million = {PRICE[1] * 1e6}
    """)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-tools-0123456789")


@pytest.fixture
def provider(fake_provider):  # type: ignore[no-untyped-def]
    fake_provider.set_default(billed)
    return fake_provider


async def ledger_spent(base: str, redis: str, prefix: str) -> tuple[float, float, int]:
    async with Director(parse_config_text(config_text(base, redis)), state_prefix=prefix) as d:
        report = await d.spend()
    return report.windows["hour"].spent_usd, report.windows["hour"].reserved_usd, report.total.requests


def billed_total(provider) -> float:  # type: ignore[no-untyped-def]
    total = 0.0
    for r in provider.requests_for("gpt-4o"):
        reply = billed(r)
        assert reply.usage is not None
        total += reply.usage[0] * PRICE[0] + reply.usage[1] * PRICE[1]
    return total


async def test_tools_are_reserved_so_four_ledgers_stay_within_the_limit(
    provider, redis_url: str, redis_prefix: str
) -> None:
    cfg = parse_config_text(config_text(provider.base_url, redis_url))
    directors = [Director(cfg, state_prefix=redis_prefix) for _ in range(4)]  # four processes' ledgers

    async def one(d: Director) -> str:
        try:
            await d.acompletion(ASK, tools=TOOLS)
            return "ok"
        except BudgetExceededError:
            return "over budget"

    try:
        results = await asyncio.gather(*(one(d) for d in directors for _ in range(50)))
    finally:
        for d in directors:
            await d.aclose()
    served = results.count("ok")
    assert served + results.count("over budget") == 200
    assert served == len(provider.requests_for("gpt-4o")) > 20
    spent, held, requests = await ledger_spent(provider.base_url, redis_url, redis_prefix)
    assert spent == pytest.approx(billed_total(provider), abs=1e-9) and requests == served
    assert spent <= LIMIT and held == 0


WORKER = textwrap.dedent("""
    import asyncio, json, os, sys
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from director_llm.director import Director

    async def main(path, prefix, n, tools):
        ask = json.loads(os.environ["ASK"])
        async with Director.from_file(path, state_prefix=prefix) as d:
            await d.warmup()
            async def one():
                try:
                    await d.acompletion(ask, tools=tools)
                    return "ok"
                except Exception as exc:
                    return type(exc).__name__
            results = await asyncio.gather(*(one() for _ in range(n)))
            led = d.budget.ledger
            stats = {k: getattr(led, k, 0) for k in ("outages", "busy", "local_reservations", "reconciled", "pending")}
        print(json.dumps(stats), file=sys.stderr)
        print(json.dumps(results))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(os.environ["TOOLS"])))
""")


@pytest.mark.slow  # four processes import LiteLLM
async def test_four_processes_with_twenty_tools_stay_within_the_limit(
    provider, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    cfg_path, script = tmp_path / "director.toml", tmp_path / "worker.py"
    cfg_path.write_text(config_text(provider.base_url, redis_url))
    script.write_text(WORKER)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOOLS": json.dumps(TOOLS), "ASK": json.dumps(ASK)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(cfg_path),
            redis_prefix,
            "50",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=600)
    results: list[str] = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        results += json.loads(out.decode().strip().splitlines()[-1])
        print(err.decode().strip().splitlines()[-1])
    assert set(results) <= {"ok", "AttemptOverBudgetError", "BudgetExceededError"}, set(results)
    served = results.count("ok")
    assert served == len(provider.requests_for("gpt-4o")) > 20
    spent, held, requests = await ledger_spent(provider.base_url, redis_url, redis_prefix)
    assert spent == pytest.approx(billed_total(provider), abs=1e-9) and requests == served
    assert spent <= LIMIT and held == 0
