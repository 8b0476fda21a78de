"""The breaker shared through a real Redis: two breakers (as two processes would) agree,
the half-open trial is claimed once across them, and a Redis outage never fails a call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from director_llm.breaker import CircuitBreaker


class _Err(Exception):
    status_code = 500


def _make(redis_url: str, prefix: str, **kw) -> CircuitBreaker:
    return CircuitBreaker(redis_url=redis_url, prefix=prefix, failure_threshold=2, refresh_interval=0.05, **kw)


async def test_other_process_sees_open_breaker(redis_url: str, redis_prefix: str) -> None:
    a, b = _make(redis_url, redis_prefix), _make(redis_url, redis_prefix)
    await b.allow("dead")  # b knows the deployment exists
    await a.record_failure("dead", _Err())
    await a.record_failure("dead", _Err())
    assert a.state("dead") == "open"
    await b.refresh()
    assert b.is_open("dead")
    await a.aclose()
    await b.aclose()


async def test_background_refresh_without_waiting(redis_url: str, redis_prefix: str) -> None:
    a, b = _make(redis_url, redis_prefix), _make(redis_url, redis_prefix)
    await b.allow("dead")
    for _ in range(2):
        await a.record_failure("dead", _Err())
    deadline = time.monotonic() + 1.0
    while not b.is_open("dead") and time.monotonic() < deadline:
        await b.allow("dead")  # triggers the refresh in the background
        await asyncio.sleep(0.02)
    assert b.is_open("dead")
    await a.aclose()
    await b.aclose()


async def test_half_open_trial_claimed_once_across_breakers(redis_url: str, redis_prefix: str) -> None:
    bs = [_make(redis_url, redis_prefix, cooldown_seconds=0.1) for _ in range(3)]
    for _ in range(2):
        await bs[0].record_failure("x", _Err())
    for b in bs[1:]:
        await b.allow("x")
        await b.refresh()
    await asyncio.sleep(0.15)
    grants = [await b.allow("x") for b in bs]
    assert sum(grants) == 1
    for b in bs:
        await b.aclose()


async def test_success_closes_for_everyone(redis_url: str, redis_prefix: str) -> None:
    a, b = _make(redis_url, redis_prefix), _make(redis_url, redis_prefix)
    for _ in range(2):
        await a.record_failure("d", _Err())
    await b.allow("d")
    await b.refresh()
    await b.record_success("d")
    await a.refresh()
    assert a.state("d") == "closed"
    await a.aclose()
    await b.aclose()


async def test_redis_outage_falls_back_to_memory() -> None:
    b = CircuitBreaker(redis_url="redis://127.0.0.1:1/0", failure_threshold=2, redis_timeout=0.05)
    t0 = time.perf_counter()
    for _ in range(2):
        await b.record_failure("d", _Err())
    assert time.perf_counter() - t0 < 1.0
    assert b.state("d") == "open" and not b.shared
    await b.aclose()


def test_two_real_processes_share_state(redis_url: str, redis_prefix: str) -> None:
    code = (
        "import asyncio,sys\n"
        "from director_llm.breaker import CircuitBreaker\n"
        "class E(Exception): status_code=500\n"
        "async def m():\n"
        f"  b=CircuitBreaker(redis_url={redis_url!r}, prefix={redis_prefix!r}, failure_threshold=2)\n"
        "  await b.record_failure('p', E()); await b.record_failure('p', E()); await b.aclose()\n"
        "asyncio.run(m())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)

    async def check() -> bool:
        b = _make(redis_url, redis_prefix)
        await b.allow("p")
        await b.refresh()
        try:
            return b.is_open("p")
        finally:
            await b.aclose()

    assert asyncio.run(check())


async def test_allow_reads_the_shared_state_before_each_attempt(redis_url: str, redis_prefix: str) -> None:
    # b's view is never refreshed in the background here: allow() itself must see that a
    # opened the breaker, so no process sends a request to a deployment already known dead.
    a = _make(redis_url, redis_prefix)
    b = CircuitBreaker(redis_url=redis_url, prefix=redis_prefix, failure_threshold=2, refresh_interval=3600)
    assert await b.allow("dead")
    for _ in range(2):
        await a.record_failure("dead", _Err())
    assert not await b.allow("dead")
    assert b.is_open("dead")
    await a.aclose()
    await b.aclose()


async def test_the_failing_state_admits_one_attempt_across_processes(redis_url: str, redis_prefix: str) -> None:
    # Two breakers on one Redis stand for two workers: after the first failure only one
    # attempt at a time may go to the deployment, whichever worker asks.
    a = CircuitBreaker(redis_url=redis_url, prefix=redis_prefix, failure_threshold=3, refresh_interval=3600)
    b = CircuitBreaker(redis_url=redis_url, prefix=redis_prefix, failure_threshold=3, refresh_interval=3600)
    assert (await b.admit("d")).verdict == "go"
    await a.record_failure("d", _Err())
    probe = await b.admit("d")
    assert probe.verdict == "probe"
    assert (await a.admit("d")).verdict == "busy"
    assert (await b.admit("d")).verdict == "busy"
    await b.record_failure("d", _Err(), token=probe.token)  # the count and the claim, together
    second = await a.admit("d")
    assert second.verdict == "probe"
    await a.record_failure("d", _Err(), token=second.token)
    assert (await b.admit("d")).verdict == "open"
    await a.aclose()
    await b.aclose()


async def test_a_probe_success_closes_it_for_every_process(redis_url: str, redis_prefix: str) -> None:
    a = CircuitBreaker(redis_url=redis_url, prefix=redis_prefix, failure_threshold=3, refresh_interval=3600)
    b = CircuitBreaker(redis_url=redis_url, prefix=redis_prefix, failure_threshold=3, refresh_interval=3600)
    await a.record_failure("d", _Err())
    probe = await b.admit("d")
    assert (await a.admit("d")).verdict == "busy"
    await b.record_success("d")
    assert [(await a.admit("d")).verdict for _ in range(3)] == ["go"] * 3
    await b.release("d", probe.token or "")  # late, after the success: a no-op
    await a.aclose()
    await b.aclose()
