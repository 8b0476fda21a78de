"""A deployment that starts failing gets one attempt at a time, through the real engine and
real HTTP: concurrent requests go to its healthy sibling instead of piling onto it, in one
process and across processes sharing Redis (two Directors stand for two workers)."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import ProviderError
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_GATE_KEY"
ASK = [{"role": "user", "content": "oi, tudo bem?"}]
DEAD, ALIVE = "openai/cheap-model", "openai/dear-model"


def config(base: str, llm: str = "") -> str:
    # Strategy "cost" puts the cheap (dying) model first in every plan, so every request
    # would try it first without the gate.
    return textwrap.dedent(f"""
        [llm]
        num_retries = 0
        default_strategy = "cost"
        {llm}
        [llm.circuit_breaker]
        failure_threshold = 3
        cooldown_seconds = 60
        [providers.openai]
        models = ["cheap-model", "dear-model"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "balanced"
        [providers.openai.overrides.cheap-model]
        input_price_per_million = 1.0
        output_price_per_million = 1.0
        [providers.openai.overrides.dear-model]
        input_price_per_million = 5.0
        output_price_per_million = 5.0
    """)


def dying_and_alive(fake_provider, monkeypatch) -> None:
    """The cheap model answers 503 from now on, the dear one answers."""
    monkeypatch.setenv(KEY_ENV, "sk-gate-test")
    fake_provider.script("cheap-model", [Fault.status(503)], repeat=True)
    fake_provider.script("dear-model", [Reply("from dear")], repeat=True)


async def _burst(directors: list[Director], n: int) -> list[object]:
    calls = [directors[i % len(directors)].acompletion(ASK) for i in range(n)]
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_after_one_failure_the_others_go_to_the_sibling(fake_provider, monkeypatch) -> None:
    dying_and_alive(fake_provider, monkeypatch)
    async with Director(parse_config_text(config(fake_provider.base_url))) as d:
        first = await d.acompletion(ASK)  # cheap fails once, dear answers
        assert [a.deployment for a in Director.route_of(first).attempts] == [DEAD, ALIVE]
        before = len(fake_provider.requests_for("cheap-model"))
        results = await _burst([d], 30)
        assert all(not isinstance(r, BaseException) for r in results), results
        sent = len(fake_provider.requests_for("cheap-model")) - before
        # One probe at a time: at most failure_threshold - 1 more failures, then it is open.
        assert 1 <= sent <= 2, sent
        assert d.breaker.state(DEAD) in ("closed", "open")
        seen = [a for r in results for a in Director.route_of(r).attempts if a.deployment == DEAD]
        deferred = [a for a in seen if a.outcome == "skipped" and "probing" in a.message]
        assert len(deferred) >= 30 - 2  # the rest never sent it a byte: deferred, then not needed


async def test_the_gate_holds_across_workers_sharing_redis(
    fake_provider, monkeypatch, redis_url: str, redis_prefix: str
) -> None:
    dying_and_alive(fake_provider, monkeypatch)
    text = config(fake_provider.base_url, llm=f'state_redis_url = "{redis_url}"')
    workers = [Director(parse_config_text(text), state_prefix=redis_prefix) for _ in range(3)]
    try:
        await workers[0].acompletion(ASK)  # the first failure, seen by one worker only
        before = len(fake_provider.requests_for("cheap-model"))
        results = await _burst(workers, 45)
        assert all(not isinstance(r, BaseException) for r in results), results
        sent = len(fake_provider.requests_for("cheap-model")) - before
        # 3 workers x 15 concurrent requests: 1 + at most 2 failures in total, not per worker.
        assert 1 <= sent <= 2, sent
        assert all(len(fake_provider.requests_for("cheap-model")) - before == sent for _ in workers)
        assert {r.choices[0].message.content for r in results} == {"from dear"}  # type: ignore[union-attr]
    finally:
        for w in workers:
            await w.aclose()


async def test_a_lone_failing_deployment_still_serves_everyone(fake_provider, monkeypatch) -> None:
    # Nothing else can serve: a request that finds it busy does not give up, it tries it
    # anyway (a failing deployment may still answer; refusing would lose the request).
    monkeypatch.setenv(KEY_ENV, "sk-gate-test")
    fake_provider.script("cheap-model", [Fault.status(503)], then=Reply("back"))
    text = config(fake_provider.base_url).replace('["cheap-model", "dear-model"]', '["cheap-model"]')
    text = text.split("[providers.openai.overrides.dear-model]")[0]
    async with Director(parse_config_text(text)) as d:
        with contextlib.suppress(ProviderError):  # the one scripted failure
            await d.acompletion(ASK)
        results = await _burst([d], 10)
    assert all(not isinstance(r, BaseException) for r in results), results
    assert {r.choices[0].message.content for r in results} == {"back"}  # type: ignore[union-attr]


async def test_an_attempt_that_waited_is_not_sent_once_another_worker_probes(
    fake_provider, monkeypatch, redis_url: str, redis_prefix: str
) -> None:
    # The breaker is asked just before sending: an attempt planned while the deployment was
    # healthy, delayed before it went out (budget, rate limit, a busy loop) while another
    # worker saw it fail and took the probe, is not sent (no failure, nothing spent) and the
    # sibling answers.
    dying_and_alive(fake_provider, monkeypatch)
    text = config(fake_provider.base_url, llm=f'state_redis_url = "{redis_url}"')
    here, other = (Director(parse_config_text(text), state_prefix=redis_prefix) for _ in range(2))
    try:
        call = here._call("complete", ASK, model=None, tier=None, strategy=None, cache=False, kwargs={})
        plan = await here.engine.plan(call)
        assert [i.name for i in plan.candidates] == [DEAD, ALIVE]

        async def attempt(slot):  # what happens while this worker's attempt waits to go out
            if slot.name == DEAD:
                await other.breaker.record_failure(DEAD, ConnectionError("refused"))
                assert (await other.breaker.admit(DEAD)).verdict == "probe"
                await here.breaker.refresh()  # this worker's background refresh
            return await slot.call(call.messages, call.params)

        reply, route = await here.engine.run(call, plan, attempt)
        assert reply.response.choices[0].message.content == "from dear"
        assert len(fake_provider.requests_for("cheap-model")) == 0
        first = route.attempts[0]
        assert (first.deployment, first.outcome) == (DEAD, "skipped") and "probing" in first.message
        assert route.deployment == ALIVE
        assert here.breaker.snapshot_of(DEAD).failures == 1  # a skip is not a failure
    finally:
        await here.aclose()
        await other.aclose()
