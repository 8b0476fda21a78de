"""The budget inside the Router: reserve per attempt, settle to the reported usage, move down
to cheaper tiers, raise BudgetExceededError, share one budget across processes through Redis.

Prices come from config overrides and the fake server reports fixed usage, so every expected
dollar amount is computed here from (requests the server saw) x (usage) x (price).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from director_llm.budget import BudgetExceededError
from director_llm.budget_hooks import BudgetStoreDownError
from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.route import Route
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_OPENAI_KEY"
USAGE = (100, 50)  # what the fake server reports for every call
GPT4O = (2.5e-6, 10e-6)  # USD per input / output token
MINI = (0.15e-6, 0.6e-6)
STRONG_COST = USAGE[0] * GPT4O[0] + USAGE[1] * GPT4O[1]  # 0.00075
MINI_COST = USAGE[0] * MINI[0] + USAGE[1] * MINI[1]
ASK = [{"role": "user", "content": "Explain step by step why TCP and UDP differ, and compare them?"}]


def config_text(
    base: str,
    *,
    per_hour: float | None,
    mini: bool = False,
    ollama: bool = True,
    redis: str | None = None,
    max_tokens: int = 100,
) -> str:
    text = f"""
        [llm]
        num_retries = 0
        default_max_tokens = {max_tokens}
        default_strategy = "quality"
        attempt_timeout_seconds = 5
        {f"budget_per_hour = {per_hour}" if per_hour is not None else ""}
        {f'state_redis_url = "{redis}"' if redis else ""}
        [providers.openai]
        models = ["gpt-4o"{', "gpt-4o-mini"' if mini else ""}]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.gpt-4o]
        tier = "strong"
        input_price_per_million = {GPT4O[0] * 1e6}
        output_price_per_million = {GPT4O[1] * 1e6}
    """
    if mini:
        text += f"""
        [providers.openai.overrides.gpt-4o-mini]
        tier = "balanced"
        input_price_per_million = {MINI[0] * 1e6}
        output_price_per_million = {MINI[1] * 1e6}
        """
    if ollama:
        text += f"""
        [providers.ollama]
        models = ["llama3.2:1b"]
        base_url = "{base}"
        """
    return textwrap.dedent(text)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-budget-0123456789")


@pytest.fixture
def provider(fake_provider):  # type: ignore[no-untyped-def]
    fake_provider.set_default(Reply(text="fine", usage=USAGE))
    return fake_provider


def route(response) -> Route:  # type: ignore[no-untyped-def]
    return Director.route_of(response)


async def test_strongest_until_budget_then_moves_down_and_ledger_matches_usage(provider) -> None:
    cfg = parse_config_text(config_text(provider.base_url, per_hour=0.01, mini=True))
    tiers = []
    async with Director(cfg) as d:
        for _ in range(18):
            r = await d.acompletion(ASK)
            rt = route(r)
            tiers.append(rt["tier"])
            assert rt["reserved_cost_usd"] >= rt["cost_usd"]
            assert rt["reason"].startswith("quality")
        await d.budget.drain()
        report = await d.spend(by="model")
    assert tiers[0] == "strong" and "balanced" in tiers
    assert tiers.index("balanced") > 5 and "strong" not in tiers[tiers.index("balanced") :]
    seen_strong = len(provider.requests_for("gpt-4o"))
    seen_mini = len(provider.requests_for("gpt-4o-mini"))
    expected = seen_strong * STRONG_COST + seen_mini * MINI_COST
    assert report.windows["hour"].spent_usd == pytest.approx(expected, abs=1e-9)
    assert report.windows["hour"].spent_usd <= 0.01
    assert report.windows["hour"].reserved_usd == 0
    assert report.usage["openai:gpt-4o"].requests == seen_strong == tiers.count("strong")
    assert report.usage["openai:gpt-4o"].prompt_tokens == seen_strong * USAGE[0]


async def test_reservation_bounds_max_tokens_on_the_wire(provider) -> None:
    cfg = parse_config_text(config_text(provider.base_url, per_hour=1.0, max_tokens=77))
    async with Director(cfg) as d:
        await d.acompletion(ASK, strategy="quality")
        await d.acompletion(ASK, strategy="quality", max_tokens=12)
    bodies = [r.body for r in provider.requests_for("gpt-4o")]
    assert [b["max_tokens"] for b in bodies] == [77, 12]


async def test_nothing_affordable_raises_budget_exceeded_with_details(provider) -> None:
    cfg = parse_config_text(config_text(provider.base_url, per_hour=0.0012, ollama=False))
    async with Director(cfg) as d:
        await d.acompletion(ASK)  # 0.00075 spent; the next worst case does not fit
        await d.budget.drain()
        with pytest.raises(BudgetExceededError) as info:
            await d.acompletion(ASK)
        err = info.value
        assert err.window == "hour" and err.limit_usd == pytest.approx(0.0012)
        assert err.spent_usd == pytest.approx(STRONG_COST)
        assert err.resets_at is not None and err.resets_at.minute == 0
        assert "resets at" in str(err)
        # A pinned deployment and a stream obey the same budget (the one request path).
        with pytest.raises(BudgetExceededError):
            await d.acompletion(ASK, model="openai/gpt-4o")
        with pytest.raises(BudgetExceededError):
            await d.stream_response(ASK).text()
    assert len(provider.requests_for("gpt-4o")) == 1


async def test_zero_cost_tier_served_when_budget_is_zero(provider) -> None:
    cfg = parse_config_text(config_text(provider.base_url, per_hour=0.0))
    async with Director(cfg) as d:
        r = await d.acompletion(ASK)
        assert route(r)["tier"] == "small" and route(r)["cost_usd"] == 0
        assert "over budget: strong" in route(r)["reason"]
    assert not provider.requests_for("gpt-4o")


async def test_failed_attempt_is_released_and_fallback_settled(provider) -> None:
    provider.script("gpt-4o", [Fault.status(500)])
    cfg = parse_config_text(config_text(provider.base_url, per_hour=1.0, mini=True, ollama=False))
    async with Director(cfg) as d:
        r = await d.acompletion(ASK)
        assert route(r)["tier"] == "balanced" and route(r)["calls"] == 2
        await d.budget.drain()
        report = await d.spend()
        assert d.budget.open_holds == 0
    assert report.windows["hour"].reserved_usd == 0
    assert report.windows["hour"].spent_usd == pytest.approx(MINI_COST, abs=1e-12)
    assert report.total.requests == 1


async def test_hour_rollover_with_injected_clock(provider) -> None:
    now = [datetime(2026, 3, 1, 10, 59, 0, tzinfo=UTC)]
    cfg = parse_config_text(config_text(provider.base_url, per_hour=0.002))
    async with Director(cfg, clock=lambda: now[0]) as d:
        first = []
        for _ in range(3):  # settled one by one: a held worst case would make the 2nd move down
            first.append(route(await d.acompletion(ASK))["tier"])
            await d.budget.drain()
        now[0] += timedelta(minutes=1, seconds=1)  # 11:00:01, a new hour
        second = route(await d.acompletion(ASK))["tier"]
        await d.budget.drain()
        report = await d.spend(by="hour")
    assert first == ["strong", "strong", "small"]
    assert second == "strong"
    assert report.windows["hour"].period == "2026-03-01T11"
    assert report.windows["hour"].spent_usd == pytest.approx(STRONG_COST)
    # Every call is in the usage report, the free tier's too (at $0).
    assert report.usage["2026-03-01T10"].requests == len(first)
    assert report.usage["2026-03-01T10"].cost_usd == pytest.approx(first.count("strong") * STRONG_COST)


def closed(text: str) -> str:
    return text.replace("[llm]\n", '[llm]\nbudget_store_failure = "closed"\n', 1)


async def test_redis_outage_serves_only_zero_cost_tiers_when_closed(provider) -> None:
    dead = "redis://127.0.0.1:1/0"
    cfg = parse_config_text(closed(config_text(provider.base_url, per_hour=1.0, redis=dead)))
    async with Director(cfg, state_prefix="budget-outage-test:") as d:
        r = await d.acompletion(ASK)
        assert route(r)["tier"] == "small"
    cfg = parse_config_text(closed(config_text(provider.base_url, per_hour=1.0, redis=dead, ollama=False)))
    async with Director(cfg, state_prefix="budget-outage-test:") as d:
        with pytest.raises(BudgetStoreDownError):
            await d.acompletion(ASK)
    assert not provider.requests_for("gpt-4o")


async def test_redis_never_reached_spends_a_quarter_of_the_limit_when_local(provider) -> None:
    dead = "redis://127.0.0.1:1/0"
    cfg = parse_config_text(config_text(provider.base_url, per_hour=0.006, redis=dead, ollama=False))
    served = 0
    async with Director(cfg, state_prefix="budget-outage-test:") as d:
        for _ in range(4):
            try:
                await d.acompletion(ASK)
                served += 1
            except BudgetExceededError:
                pass
            await d.budget.drain()
    # The allowance is limit / expected_processes ($0.0015): one call ($0.00075, worst case
    # ~$0.0011) fits, a second worst case does not.
    assert served == 1 == len(provider.requests_for("gpt-4o"))


WORKER = textwrap.dedent("""
    import asyncio, json, os, sys
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from director_llm.director import Director
    from director_llm.errors import BudgetExceededError

    async def main(path, prefix, n):
        ask = [{"role": "user", "content": "Explain step by step why TCP and UDP differ?"}]
        async with Director.from_file(path, state_prefix=prefix) as d:
            async def one():
                try:
                    r = await d.acompletion(ask)
                    return r._hidden_params["director_route"]["tier"]
                except BudgetExceededError:
                    return "budget_exceeded"
            results = await asyncio.gather(*(one() for _ in range(n)))
        print(json.dumps(results))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


async def test_four_processes_share_one_budget(provider, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    budget = 50 * STRONG_COST  # affords ~50 strong calls (fewer while worst cases are held)
    cfg_path = tmp_path / "director.toml"
    cfg_path.write_text(config_text(provider.base_url, per_hour=budget, redis=redis_url))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, KEY_ENV: os.environ[KEY_ENV], "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
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
    for p, (out, err) in zip(procs, outputs, strict=False):
        assert p.returncode == 0, err.decode()[-2000:]
        results += json.loads(out.decode().strip().splitlines()[-1])
    assert len(results) == 200
    assert set(results) <= {"strong", "small", "budget_exceeded"}
    strong_seen = len(provider.requests_for("gpt-4o"))
    assert results.count("strong") == strong_seen
    assert 25 <= strong_seen <= 50
    assert results.count("small") + results.count("budget_exceeded") == 200 - strong_seen
    cfg = parse_config_text(config_text(provider.base_url, per_hour=budget, redis=redis_url))
    async with Director(cfg, state_prefix=redis_prefix) as d:
        report = await d.spend(by="provider")
    spent = report.windows["hour"].spent_usd
    assert spent <= budget + 1e-12
    assert spent == pytest.approx(strong_seen * STRONG_COST, abs=1e-9)
    assert report.usage["openai"].requests == strong_seen
    assert report.usage["openai"].completion_tokens == strong_seen * USAGE[1]
    assert report.windows["hour"].reserved_usd == 0
