"""Rate limits through real HTTP (the fake provider records every request) and real Redis:
a limited deployment never gets more than its limit while its siblings serve the rest; a
request waits only when nothing else can serve, then ``RateLimitedError``; global limits
hold across Directors and processes sharing Redis; a Redis outage falls back to counting
in memory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import RateLimitedError
from director_llm.resilience.rate_limits import LimitReached, Limits, RateLimiter
from director_llm.testing import Reply

KEY_ENV = "TEST_LIMITS_KEY"
KEY = "sk-limits-test-key-0123456789"
ASK = [{"role": "user", "content": "oi, tudo bem?"}]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def config_text(
    base: str,
    *,
    models: dict[str, str],
    llm: str = "",
    rate_limits: str = "",
    redis_url: str | None = None,
) -> str:
    """One openai provider on the fake server; ``models`` maps a model to its override lines."""
    overrides = "".join(
        f"[providers.openai.overrides.{m}]\ninput_price_per_million = 1.0\noutput_price_per_million = 2.0\n{extra}\n"
        for m, extra in models.items()
    )
    caching = f'[caching]\nredis_url = "{redis_url}"\n' if redis_url else ""
    return (
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        timeout_seconds = 20
        {llm}
        [llm.rate_limits]
        {rate_limits}
        [providers.openai]
        models = {json.dumps(list(models))}
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "balanced"
        """)
        + overrides
        + caching
    )


def director(text: str, **kwargs: object) -> Director:
    return Director(parse_config_text(text), **kwargs)  # type: ignore[arg-type]


async def test_a_limited_deployment_gets_its_rpm_and_its_sibling_serves_the_rest(fake_provider) -> None:
    fake_provider.set_default(Reply("ok"))
    text = config_text(fake_provider.base_url, models={"a-model": "rpm = 3", "b-model": ""})
    async with director(text) as d:
        burst = await asyncio.gather(*(d.acompletion(ASK) for _ in range(12)), return_exceptions=True)
        one_by_one = [await d.acompletion(ASK) for _ in range(12)]
    results = [*burst, *one_by_one]
    assert not [r for r in results if isinstance(r, BaseException)], results
    a = fake_provider.requests_for("a-model")
    assert len(a) == 3  # its limit, and not one more within the minute
    assert len(fake_provider.requests_for("b-model")) == 21
    skipped = [
        at
        for r in results
        for at in Director.route_of(r).attempts
        if at.deployment == "openai/a-model" and at.outcome == "skipped"
    ]
    assert skipped and all("rpm limit of openai/a-model (3 requests per minute)" in at.message for at in skipped)


async def test_nothing_else_can_serve_so_it_raises_rate_limited_without_a_pointless_wait(fake_provider) -> None:
    fake_provider.set_default(Reply("ok"))
    text = config_text(fake_provider.base_url, models={"a-model": "rpm = 2"}, rate_limits="max_wait_seconds = 3")
    async with director(text) as d:
        await d.acompletion(ASK)
        await d.acompletion(ASK)
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            await d.acompletion(ASK)
        took = time.monotonic() - started
        with pytest.raises(RateLimitedError):
            async with d.stream_response(ASK) as stream:
                await stream.text()
    exc = caught.value
    assert (exc.limit, exc.scope) == ("rpm", "openai/a-model")
    assert exc.retry_after is not None and 40 < exc.retry_after <= 60  # the first call leaves at 60 s
    assert "frees up in" in str(exc) and "without waiting" in str(exc)
    assert [a.outcome for a in exc.attempts] == ["skipped"]
    assert took < 2.5  # it frees up later than max_wait_seconds: no use waiting for it
    assert len(fake_provider.requests_for("a-model")) == 2


async def test_max_parallel_requests_queue_for_a_slot(fake_provider) -> None:
    fake_provider.set_default(Reply("ok", delay=0.3))
    text = config_text(
        fake_provider.base_url, models={"a-model": "max_parallel_requests = 2"}, rate_limits="max_wait_seconds = 15"
    )
    async with director(text) as d:
        started = time.monotonic()
        results = await asyncio.gather(*(d.acompletion(ASK) for _ in range(6)), return_exceptions=True)
        took = time.monotonic() - started
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len(fake_provider.requests_for("a-model")) == 6
    assert fake_provider.peak_in_flight["a-model"] == 2
    assert took >= 0.85  # three rounds of two
    waited = [a for r in results for a in Director.route_of(r).attempts if a.outcome == "skipped"]
    assert waited and all("max_parallel_requests of openai/a-model" in a.message for a in waited)
    # One skip per request on the route, however often it looked while waiting.
    assert all(len(Director.route_of(r).attempts) <= 2 for r in results)


async def test_a_busy_deployment_sends_the_overflow_to_its_sibling(fake_provider) -> None:
    fake_provider.set_default(Reply("ok", delay=0.3))
    text = config_text(fake_provider.base_url, models={"a-model": "max_parallel_requests = 1", "b-model": ""})
    async with director(text) as d:
        results = await asyncio.gather(*(d.acompletion(ASK) for _ in range(8)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert fake_provider.peak_in_flight.get("a-model", 0) <= 1
    assert len(fake_provider.requests_for("a-model")) + len(fake_provider.requests_for("b-model")) == 8


async def test_the_wait_is_bounded_by_max_wait_seconds(fake_provider) -> None:
    fake_provider.set_default(Reply("ok", delay=2.0))
    text = config_text(
        fake_provider.base_url, models={"a-model": "max_parallel_requests = 1"}, rate_limits="max_wait_seconds = 0.4"
    )
    async with director(text) as d:
        first = asyncio.ensure_future(d.acompletion(ASK))
        await fake_provider.await_requests(1, timeout=10)
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            await d.acompletion(ASK)
        took = time.monotonic() - started
        await first
    exc = caught.value
    assert exc.limit == "max_parallel_requests" and exc.scope == "openai/a-model"
    assert exc.retry_after is not None and exc.retry_after > 0
    assert 0.35 <= took < 1.9  # waited, then gave up before the call in flight ended
    assert "after waiting" in str(exc)
    assert len(fake_provider.requests_for("a-model")) == 1


async def test_tpm_counts_the_usage_reported(fake_provider) -> None:
    # Each call is admitted on its prompt (a few tokens) and then counts what it used: 400.
    fake_provider.set_default(Reply("ok", usage=(100, 300)))
    text = config_text(fake_provider.base_url, models={"a-model": "tpm = 1000"}, rate_limits="max_wait_seconds = 0")
    async with director(text) as d:
        for _ in range(3):
            await d.acompletion(ASK)  # 0 + prompt, 400 + prompt, 800 + prompt: each fits
        with pytest.raises(RateLimitedError) as caught:
            await d.acompletion(ASK)  # 1200 counted in the minute
    assert caught.value.limit == "tpm"
    assert len(fake_provider.requests_for("a-model")) == 3


async def test_limits_are_shared_by_directors_on_one_redis(fake_provider, redis_url, redis_prefix) -> None:
    fake_provider.set_default(Reply("ok"))
    text = config_text(
        fake_provider.base_url,
        models={"a-model": "rpm = 3", "b-model": ""},
        rate_limits="rpm = 5\nmax_wait_seconds = 0.2",
        redis_url=redis_url,
    )
    async with director(text, state_prefix=redis_prefix) as one, director(text, state_prefix=redis_prefix) as two:
        assert one.limiter.shared and two.limiter.shared
        results = await asyncio.gather(
            *(d.acompletion(ASK) for d in (one, two) for _ in range(6)), return_exceptions=True
        )
    served = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(served) == 5 and len(refused) == 7
    assert all(isinstance(r, RateLimitedError) and "[llm.rate_limits] (5 requests" in str(r) for r in refused)
    assert len(fake_provider.requests) == 5
    assert len(fake_provider.requests_for("a-model")) <= 3


WORKER = """
import asyncio, json, sys, time
from director_llm.redis_clients import RedisClients
from director_llm.resilience.rate_limits import LimitReached, Limits, RateLimiter

async def main():
    url, prefix, n, go_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    clients = RedisClients(url)
    limiter = RateLimiter({"p/a": Limits(), "p/b": Limits()}, Limits(rpm=6, max_parallel_requests=2),
                          redis=clients, prefix=prefix)
    await asyncio.sleep(max(0.0, go_at - time.time()))
    admitted = refused = 0
    for i in range(n):
        try:
            permit = await limiter.acquire("p/a" if i % 2 else "p/b", tokens=1)
        except LimitReached:
            refused += 1
        else:
            admitted += 1 if permit is not None and permit.shared else 1000
            await limiter.finish(permit)
    await clients.aclose()
    print(json.dumps({"admitted": admitted, "refused": refused}))

asyncio.run(main())
"""


def test_a_global_limit_holds_across_processes(redis_url, redis_prefix) -> None:
    # The limiter itself in 3 processes (importing LiteLLM in each would take a minute on
    # a busy box; the engine's side is covered by the two-Director test above).
    go_at = time.time() + 3
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, redis_prefix, "10", str(go_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = []
    for w in workers:
        out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(o["admitted"] for o in outs) == 6, outs
    assert sum(o["refused"] for o in outs) == 24


async def test_a_redis_outage_counts_in_memory_and_keeps_serving(fake_provider, redis_server) -> None:
    fake_provider.set_default(Reply("ok"))
    text = config_text(
        fake_provider.base_url,
        models={"a-model": "rpm = 2", "b-model": ""},
        rate_limits="max_wait_seconds = 0",
        redis_url=redis_server.url,
    )
    async with director(text, state_prefix="limits-outage:") as d:
        await d.acompletion(ASK, model="openai/a-model")
        assert d.limiter.shared
        redis_server.stop()
        results = await asyncio.gather(*(d.acompletion(ASK) for _ in range(8)), return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert not d.limiter.shared
        # Counted in this process's memory meanwhile: a-model still gets at most 2 a minute here.
        assert len(fake_provider.requests_for("a-model")) <= 1 + 2
        with pytest.raises(RateLimitedError):
            for _ in range(3):
                await d.acompletion(ASK, model="openai/a-model")
        # Redis is back (after the factory's retry delay): counting is shared again.
        redis_server.start()
        await asyncio.sleep(2.5)
        permit = await d.limiter.acquire("openai/a-model")
        assert permit is not None and permit.shared and d.limiter.shared
        await d.limiter.finish(permit)


async def test_the_redis_script_matches_the_memory_arithmetic(redis_url, redis_prefix) -> None:
    from director_llm.redis_clients import RedisClients

    clients = RedisClients(redis_url)
    lim = RateLimiter(
        {"p/a": Limits(rpm=2, tpm=1000, max_parallel_requests=2), "p/b": Limits()},
        Limits(rpm=3),
        redis=clients,
        prefix=redis_prefix,
        window_s=2.0,
    )
    try:
        first = await lim.acquire("p/a", tokens=400, lease_s=5)
        assert first is not None and first.shared
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/a", tokens=1001)
        assert hit.value.limit == "tpm" and hit.value.retry_after is None
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/a", tokens=700)
        assert hit.value.limit == "tpm" and hit.value.retry_after is not None and 0 < hit.value.retry_after <= 2.0
        await lim.finish(first, tokens=100)  # used less: room again
        second = await lim.acquire("p/a", tokens=700, lease_s=5)
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/a", tokens=1)
        assert hit.value.limit == "rpm" and hit.value.scope == "p/a"
        await lim.acquire("p/b")
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/b")
        assert hit.value.scope == "global" and hit.value.limit == "rpm"
        await asyncio.sleep(2.1)  # the window passes: rpm and tpm free up; second is still in flight
        third = await lim.acquire("p/a", tokens=10, lease_s=5)
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/a", tokens=10, lease_s=5)
        assert hit.value.limit == "max_parallel_requests" and not hit.value.exact
        await lim.finish(second)
        await lim.finish(third)
        assert await lim.acquire("p/a", tokens=10, lease_s=5) is not None
    finally:
        await clients.aclose()


async def test_the_redis_token_sum_follows_many_entries(redis_url, redis_prefix) -> None:
    from director_llm.redis_clients import RedisClients

    clients = RedisClients(redis_url)
    lim = RateLimiter({"p/c": Limits(tpm=1000)}, redis=clients, prefix=redis_prefix)
    try:
        permits = [await lim.acquire("p/c", tokens=2) for _ in range(300)]  # 600 tokens
        with pytest.raises(LimitReached) as hit:
            await lim.acquire("p/c", tokens=900)  # the oldest 250 entries must leave first
        assert hit.value.limit == "tpm" and hit.value.retry_after is not None and 0 < hit.value.retry_after <= 60
        for p in permits[:250]:
            await lim.finish(p, tokens=0)  # they used nothing after all
        assert await lim.acquire("p/c", tokens=900) is not None
        total = await clients.client().get(f"{redis_prefix}{{rl}}:p/c:tokens")
        assert int(total) == 50 * 2 + 900
    finally:
        await clients.aclose()


async def test_a_stream_holds_its_slot_until_it_ends_or_is_closed(fake_provider) -> None:
    fake_provider.set_default(Reply("one two three four five six", token_delay=0.2))
    text = config_text(
        fake_provider.base_url, models={"a-model": "max_parallel_requests = 1"}, rate_limits="max_wait_seconds = 0.3"
    )
    async with director(text) as d:
        stream = d.stream_response(ASK)
        async with stream:
            first = await stream.__anext__()
            assert first.text  # type: ignore[union-attr]
            with pytest.raises(RateLimitedError) as caught:
                await d.acompletion(ASK)
            assert caught.value.limit == "max_parallel_requests"
        # Closed early: the slot is free again at once. (The fake server's handler notices the
        # hang-up at its next write; wait for that so its in-flight peak counts our calls only.)
        await fake_provider.await_disconnects(1, timeout=10)
        fake_provider.set_default(Reply("ok"))
        reply = await d.acompletion(ASK)
        assert reply.choices[0].message.content == "ok"
        streamed = await d.stream_response(ASK).text()
        assert streamed == "ok"
        assert (await d.acompletion(ASK)).choices[0].message.content == "ok"  # the finished stream let go
    assert fake_provider.peak_in_flight["a-model"] == 1


async def test_classification_at_a_limit_falls_back_to_the_local_tier(fake_provider) -> None:
    fake_provider.set_default(Reply(json={"flow": "greeting", "confidence": 0.9, "reasoning": "hi", "entities": {}}))
    text = config_text(fake_provider.base_url, models={"a-model": "rpm = 1"}, rate_limits="max_wait_seconds = 0.2")
    text += '\n[providers.local]\nkind = "local"\n[intents.tier_thresholds]\nlocal = 1.0\n'
    async with director(text) as d:
        first = await d.classify_intent("oi, tudo bem?", cache=False)
        second = await d.classify_intent("bom dia, tudo certo?", cache=False)
    assert first.route.deployment == "openai/a-model"
    assert second.route.tier == "local"  # the LLM tier is at its rpm: the last resort answered
    assert any(a.outcome == "skipped" and "rpm limit" in a.message for a in second.route.attempts)
    assert len(fake_provider.requests_for("a-model")) == 1
