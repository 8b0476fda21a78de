"""The one request engine, through real HTTP: each defect of the "one engine" issue has a
regression test here (failover inside a tier, bad input, selection on every path,
capabilities, store outage and the last resort, breaker across event loops, hostile input,
closed Directors, stream deadlines, Retry-After caps, oversized bodies)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
import time

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import DirectorClosedError, InputError, ProviderError, StreamInterruptedError
from director_llm.intents.models import IntentClassificationStream
from director_llm.streaming import StreamEnd
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_ENGINE_KEY"
KEY = "sk-engine-test-key-0123456789"
ASK = [{"role": "user", "content": "oi, tudo bem?"}]
GOOD = {"flow": "greeting", "confidence": 0.93, "reasoning": "a greeting", "entities": {}}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def two_in_a_tier(
    base: str,
    extra: str = "",
    llm: str = "",
    *,
    models: tuple[str, ...] = ("a-model", "b-model"),
    threshold: int = 3,
    breaker: str = "",
) -> str:
    overrides = "".join(
        f"[providers.openai.overrides.{m}]\ninput_price_per_million = 1.0\noutput_price_per_million = 2.0\n"
        for m in models
    )
    return (
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        {llm}
        [llm.circuit_breaker]
        failure_threshold = {threshold}
        {breaker}
        [providers.openai]
        models = {list(models)!r}
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "balanced"
    """).replace("'", '"')
        + overrides
        + textwrap.dedent(extra)
    )


async def test_a_failing_deployment_fails_over_to_its_healthy_sibling(fake_provider) -> None:
    fake_provider.script("a-model", [Fault.status(500)], repeat=True)
    fake_provider.script("b-model", [Reply("from b")], repeat=True)
    async with Director(parse_config_text(two_in_a_tier(fake_provider.base_url, threshold=100))) as d:
        results = await asyncio.gather(*(d.acompletion(ASK) for _ in range(10)), return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert {r.choices[0].message.content for r in results} == {"from b"}  # type: ignore[union-attr]
    routes = [Director.route_of(r) for r in results]
    # Whenever a-model was asked first, its failure is on the route and b-model answered.
    tried_a = [r for r in routes if r.attempts[0].deployment == "openai/a-model"]
    assert all(r.attempts[0].outcome == "InternalServerError" and r.deployment == "openai/b-model" for r in tried_a)
    assert len(fake_provider.requests_for("b-model")) == 10


async def test_bad_input_is_an_input_error_and_never_opens_the_breaker(fake_provider) -> None:
    fake_provider.script("a-model", [Reply("fine")], repeat=True)
    fake_provider.script("b-model", [Reply("fine")], repeat=True)
    async with Director(parse_config_text(two_in_a_tier(fake_provider.base_url))) as d:
        bad_calls = [
            lambda: d.acompletion("hello"),  # type: ignore[arg-type]
            lambda: d.acompletion([{"role": "user", "content": 123}]),
            lambda: d.acompletion([{"role": "user", "content": "lone \ud800 surrogate"}]),
            lambda: d.acompletion([{"role": "robot", "content": "hi"}]),
            lambda: d.acompletion([{"role": "user", "content": "nul\x00byte"}]),
            lambda: d.acompletion(ASK, temperature=math.nan),
            lambda: d.acompletion(ASK, max_tokens=-5),
            lambda: d.acompletion(ASK, strategy="fastest"),
            lambda: d.classify_intent("oi", strategy="fastest"),
            lambda: d.classify_intent("oi", history=[{"role": "user", "content": 5}]),
        ]
        for bad in bad_calls * 2:
            with pytest.raises(InputError):
                await bad()
        with pytest.raises(InputError, match="stream_response"):
            await d.acompletion(ASK, stream=True)
        with pytest.raises(InputError, match="unknown strategy"):
            d.stream_response(ASK, strategy="fastest")
        with pytest.raises(InputError, match="unknown strategy"):
            async for _ in d.stream_intent("oi", strategy="fastest"):
                pass
        assert fake_provider.requests == []  # nothing reached a provider
        assert all(d.breaker.state(n) == "closed" for n in ("openai/a-model", "openai/b-model"))
        response = await d.acompletion(ASK)
        assert response.choices[0].message.content == "fine"


async def test_a_lone_surrogate_in_classification_history_is_cleaned_not_sent(fake_provider) -> None:
    fake_provider.set_default(Reply(json=GOOD))
    async with Director(parse_config_text(two_in_a_tier(fake_provider.base_url))) as d:
        result = await d.classify_intent("oi \ud800", history=["ola \udfff", {"role": "user", "content": "x\x00y"}])
    assert result.flow == "greeting"
    sent = str(fake_provider.requests[0].body)
    assert "\\ud800" not in sent and "\ud800" not in sent


async def test_the_strategy_runs_for_every_entry_point(fake_provider) -> None:
    fake_provider.set_default(Reply(json=GOOD))
    cfg = parse_config_text(two_in_a_tier(fake_provider.base_url, llm="budget_per_hour = 10"))
    async with Director(cfg) as d:
        complete = Director.route_of(await d.acompletion(ASK))
        stream = [c async for c in d.stream_response(ASK)][-1]
        classified = await d.classify_intent("oi", cache=False)
        streamed = [i async for i in d.stream_intent("oi")][-1]
    assert isinstance(stream, StreamEnd) and isinstance(streamed, IntentClassificationStream)
    assert streamed.result is not None
    for route in (complete, stream.route, classified.route, streamed.result.route):
        assert route.reason is not None and route.reason.startswith("adaptive:"), route.reason
        assert "left" in route.reason and "unlimited" not in route.reason, route.reason


async def test_capabilities_filter_the_deployments(fake_provider) -> None:
    fake_provider.set_default(Reply("ok"))

    def text(models: tuple[str, ...]) -> str:
        return two_in_a_tier(fake_provider.base_url, models=models).replace(
            "[providers.openai.overrides.a-model]\n",
            "[providers.openai.overrides.a-model]\nsupports_function_calling = false\nsupports_json_schema = false\n",
        )

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    async with Director(parse_config_text(text(("a-model", "b-model")))) as d:
        for _ in range(6):
            assert Director.route_of(await d.acompletion(ASK, tools=tools)).deployment == "openai/b-model"
            assert Director.route_of(await d.acompletion(ASK, response_format=schema)).deployment == "openai/b-model"
    assert fake_provider.requests_for("a-model") == []
    async with Director(parse_config_text(text(("a-model",)))) as d:
        with pytest.raises(InputError, match="supports tools"):
            await d.acompletion(ASK, tools=tools)
        with pytest.raises(InputError, match="JSON schema"):
            await d.acompletion(ASK, response_format=schema)


async def test_a_budget_store_outage_still_gets_the_local_answer(fake_provider, tmp_path) -> None:
    # Redis state unreachable ("closed": priced tiers refused) and the local tier unsure: the
    # local tier is the last resort. (With the default "local" mode the LLM tier would answer
    # from this process's allowance: tests/integration/test_budget_outage.py.)
    fake_provider.set_default(Reply(json=GOOD))
    dead = "redis://127.0.0.1:1/0"
    llm = f'budget_per_hour = 1.0\nstate_redis_url = "{dead}"\nbudget_store_failure = "closed"'
    text = (
        two_in_a_tier(fake_provider.base_url, llm=llm)
        + f'[providers.local]\nkind = "local"\ncache_dir = "{tmp_path}"\n[intents]\ntier_thresholds = {{ local = 0.999 }}\n'
    )
    async with Director(parse_config_text(text)) as d:
        result = await d.classify_intent("quero criar uma tarefa para amanhã")
    assert result.route.tier == "local", result.route
    assert "answered locally" in (result.route.reason or "")
    assert fake_provider.requests == []


def test_the_shared_breaker_keeps_counting_across_event_loops(fake_provider, redis_url: str, redis_prefix: str) -> None:
    fake_provider.script("a-model", [Fault.status(500)], repeat=True)
    text = two_in_a_tier(fake_provider.base_url, llm=f'state_redis_url = "{redis_url}"', models=("a-model",))
    d = Director(parse_config_text(text), state_prefix=redis_prefix)

    async def fail_once() -> None:
        with pytest.raises(ProviderError):
            await d.acompletion(ASK)

    for _ in range(3):  # three asyncio.run calls, three loops: the third failure opens it
        asyncio.run(fail_once())
    assert d.breaker.state("openai/a-model") == "open"
    other = Director(parse_config_text(text), state_prefix=redis_prefix)  # another "process" sees it

    async def read() -> str:
        await other.breaker.refresh()
        return other.breaker.state("openai/a-model")

    assert asyncio.run(read()) == "open"


async def test_a_callers_bad_key_does_not_open_the_breaker_for_everyone(fake_provider) -> None:
    fake_provider.script("a-model", [Fault.status(401, "bad key")], then=Reply("fine"))
    text = two_in_a_tier(fake_provider.base_url, models=("a-model",))
    async with Director(parse_config_text(text)) as d:
        with pytest.raises(ProviderError):
            await d.acompletion(ASK, api_key="sk-caller-own-key-000000")
        assert d.breaker.state("openai/a-model") == "closed"
        assert (await d.acompletion(ASK)).choices[0].message.content == "fine"


async def test_a_closed_director_refuses_requests(fake_provider) -> None:
    fake_provider.set_default(Reply("fine"))
    d = Director(parse_config_text(two_in_a_tier(fake_provider.base_url, llm="budget_per_hour = 1")))
    await d.acompletion(ASK)
    await d.aclose()
    with pytest.raises(DirectorClosedError):
        await d.acompletion(ASK)
    with pytest.raises(DirectorClosedError):
        await d.classify_intent("oi")
    with pytest.raises(DirectorClosedError):
        d.stream_response(ASK)
    assert len(fake_provider.requests) == 1


async def test_the_deadline_covers_the_whole_stream(fake_provider) -> None:
    # A stream that stalls after its first token, and one that never ends.
    stall = Reply("first " + "late " * 5, token_delay=0.0, chunk_chars=6)
    fake_provider.script("a-model", [Reply("one " * 2000, token_delay=0.01)], repeat=True)
    fake_provider.script("b-model", [stall], repeat=True)
    text = two_in_a_tier(fake_provider.base_url, llm="timeout_seconds = 1.5\nattempt_timeout_seconds = 1.0")
    async with Director(parse_config_text(text)) as d:
        started = time.perf_counter()
        with pytest.raises(StreamInterruptedError) as info:
            async for _ in d.stream_response(ASK, model="openai/a-model"):
                pass
        elapsed = time.perf_counter() - started
    assert info.value.partial_text.startswith("one")
    assert elapsed < 1.5 + 1.0, elapsed  # cut at the deadline, not after 20 s of tokens


async def test_retry_after_is_capped_by_max_cooldown(fake_provider) -> None:
    fake_provider.script("a-model", [Fault.status(429, "slow down", headers={"Retry-After": "999999999"})])
    text = two_in_a_tier(fake_provider.base_url, models=("a-model",), breaker="max_cooldown_seconds = 60")
    async with Director(parse_config_text(text)) as d:
        with pytest.raises(ProviderError):
            await d.acompletion(ASK)
        retry_in = d.breaker.describe("openai/a-model")["retry_in_s"]
    assert retry_in is not None and 0 < retry_in <= 60


async def test_an_oversized_body_fails_that_attempt_and_the_next_deployment_answers(fake_provider) -> None:
    fake_provider.script("a-model", [Reply("x" * (3 * 2**20))], repeat=True)
    fake_provider.script("b-model", [Reply("small")], repeat=True)
    text = two_in_a_tier(
        fake_provider.base_url,
        llm=f'max_response_bytes = {2**20}\n[llm.fallbacks]\n"openai/a-model" = ["openai/b-model"]',
    )
    async with Director(parse_config_text(text)) as d:
        response = await d.acompletion(ASK, model="openai/a-model")
    route = Director.route_of(response)
    assert response.choices[0].message.content == "small"
    assert route.attempts[0].outcome == "ResponseTooLarge" and route.deployment == "openai/b-model"


def test_the_first_call_does_not_block_the_event_loop(fake_provider) -> None:
    # A fresh process: LiteLLM (seconds to import) is imported off the loop, so a ticker on the
    # same loop keeps ticking while the first request waits for it.
    code = textwrap.dedent(f"""
        import asyncio, os, time
        os.environ["{KEY_ENV}"] = "{KEY}"
        from director_llm.config.loading import parse_config_text
        from director_llm.director import Director
        TEXT = {two_in_a_tier(fake_provider.base_url)!r}

        async def main():
            gaps, last = [], time.perf_counter()
            async def tick():
                nonlocal last
                while True:
                    await asyncio.sleep(0.01)
                    now = time.perf_counter(); gaps.append(now - last); last = now
            t = asyncio.ensure_future(tick())
            async with Director(parse_config_text(TEXT)) as d:
                started = time.perf_counter()
                await d.acompletion([{{"role": "user", "content": "hi"}}])
                took = time.perf_counter() - started
            t.cancel()
            print(round(max(gaps), 3), round(took, 3))
        asyncio.run(main())
    """)
    fake_provider.set_default(Reply("hi"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    worst_gap, took = map(float, out.stdout.split())
    # The import itself takes seconds; the loop must never stall for most of it.
    assert worst_gap < max(1.0, took / 3), (worst_gap, took)
