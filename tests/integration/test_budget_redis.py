"""RedisLedger against a real Redis: the MemoryLedger behaviours, cross-process
concurrency, crashed holders, key expiry and outages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from director_llm.budget import (
    BudgetBackendError,
    BudgetExceededError,
    BudgetLedger,
    BudgetLimits,
    MemoryLedger,
    RedisLedger,
)

T0 = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


LedgerFactory = Callable[..., RedisLedger]


@pytest.fixture
async def make_ledger(redis_url: str, redis_prefix: str) -> AsyncIterator[LedgerFactory]:
    made: list[RedisLedger] = []

    def make(clock: Clock | None = None, *, ttl: float = 300.0, **limits: object) -> RedisLedger:
        led = RedisLedger(
            redis_url, prefix=redis_prefix, limits=BudgetLimits(**limits), clock=clock or Clock(), reservation_ttl_s=ttl
        )
        made.append(led)
        return led

    yield make
    for led in made:
        await led.aclose()


async def test_reserve_settle_release_arithmetic(make_ledger: LedgerFactory) -> None:
    led = make_ledger(per_hour=1.0, per_provider={"openai": (0.5, None)})
    assert isinstance(led, BudgetLedger)
    res = await led.reserve(amount_usd=0.4, provider="openai", model="gpt-4o")
    await led.settle(res, actual_usd=0.25, prompt_tokens=100, completion_tokens=20)
    failed = await led.reserve(amount_usd=0.25, provider="openai", model="gpt-4o")
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.01, provider="openai", model="gpt-4o")
    err = info.value
    assert (err.window, err.limit_usd, err.spent_usd, err.reserved_usd, err.requested_usd) == (
        "provider:openai:hour",
        0.5,
        0.25,
        0.25,
        0.01,
    )
    assert err.resets_at == datetime(2026, 11, 25, 21, tzinfo=UTC)
    await led.release(failed)
    assert await led.remaining() == pytest.approx({"hour": 0.75, "provider:openai:hour": 0.25})
    report = await led.snapshot(by="model")
    assert report.usage["openai:gpt-4o"].requests == 1
    assert report.usage["openai:gpt-4o"].cost_usd == pytest.approx(0.25)


async def test_zero_amount_needs_no_budget(make_ledger: LedgerFactory) -> None:
    led = make_ledger(per_hour=0.0)
    with pytest.raises(BudgetExceededError):
        await led.reserve(amount_usd=1e-6, provider="ollama", model="llama")
    res = await led.reserve(amount_usd=0, provider="ollama", model="llama")
    await led.settle(res, actual_usd=0, prompt_tokens=12, completion_tokens=3)
    assert (await led.snapshot()).total.prompt_tokens == 12


async def test_same_operations_give_the_same_report_as_memory(make_ledger: LedgerFactory) -> None:
    """Replays one script of operations on both stores: every observable must agree."""
    limits = {"per_hour": 1.0, "per_day": 2.5, "per_provider": {"openai": (0.6, 1.0)}}
    mem_clock, red_clock = (
        Clock(datetime(2026, 11, 25, 22, 50, tzinfo=UTC)),
        Clock(datetime(2026, 11, 25, 22, 50, tzinfo=UTC)),
    )
    mem = MemoryLedger(limits=BudgetLimits(**limits), clock=mem_clock, reservation_ttl_s=120)
    red = make_ledger(red_clock, ttl=120, **limits)
    plan = [
        ("openai", 0.3, 0.2),
        ("gemini", 0.5, 0.45),
        ("openai", 0.5, None),
        ("openai", 0.3, 0.35),
        ("gemini", 0.4, "hold"),
        ("openai", 0.2, 0.2),
        ("gemini", 0.3, 0.1),
    ]
    for step, (provider, amount, actual) in enumerate(plan * 3):
        outcomes = []
        for led, clock in ((mem, mem_clock), (red, red_clock)):
            try:
                res = await led.reserve(amount_usd=amount, provider=provider, model=f"m{step % 2}")
            except BudgetExceededError as exc:
                outcomes.append(("refused", exc.window, exc.spent_usd, exc.reserved_usd))
            else:
                outcomes.append(("granted",))
                if actual is None:
                    await led.release(res)
                elif actual != "hold":
                    await led.settle(res, actual_usd=actual, prompt_tokens=step, completion_tokens=1)
            outcomes.append(await led.remaining())
            clock.advance(minutes=7)
        assert outcomes[:2] == outcomes[2:], step
    mem_report, red_report = (await mem.snapshot(by="model")).to_dict(), (await red.snapshot(by="model")).to_dict()
    assert mem_report == red_report
    assert mem_report["total"]["requests"] > 5  # the plan really exercised settling


async def test_hour_rollover(make_ledger: LedgerFactory) -> None:
    clock = Clock(datetime(2026, 11, 25, 20, 59, 50, tzinfo=UTC))
    led = make_ledger(clock, per_hour=1.0, per_day=1.5)
    late = await led.reserve(amount_usd=1.0, provider="p", model="m")
    assert not await led.can_afford(0.01, "p")
    clock.advance(seconds=15)
    await led.settle(late, actual_usd=0.9, prompt_tokens=0, completion_tokens=0)
    assert await led.remaining() == pytest.approx({"hour": 1.0, "day": 0.6})
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.7, provider="p", model="m")
    assert info.value.window == "day"
    hourly = (await led.snapshot()).hourly
    assert hourly["2026-11-25T20"].cost_usd == pytest.approx(0.9)


async def test_expired_reservation_is_reclaimed(make_ledger: LedgerFactory) -> None:
    clock = Clock()
    led = make_ledger(clock, ttl=30, per_hour=1.0)
    await led.reserve(amount_usd=1.0, provider="p", model="m")  # never settled
    clock.advance(seconds=29)
    assert not await led.can_afford(0.1, "p")
    clock.advance(seconds=1)
    await led.reserve(amount_usd=1.0, provider="p", model="m")


async def test_keys_start_with_the_prefix_and_expire(
    make_ledger: LedgerFactory, redis_url: str, redis_prefix: str
) -> None:
    led = make_ledger(Clock(datetime.now(UTC)), per_hour=5.0, per_provider={"openai": (1.0, 3.0)})
    res = await led.reserve(amount_usd=0.5, provider="openai", model="m")
    await led.settle(res, actual_usd=0.5, prompt_tokens=1, completion_tokens=1)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = sorted(client.scan_iter(match=f"{redis_prefix}*"))
        assert any(":w:hour:" in k for k in keys) and any(":s:" in k for k in keys)
        assert all("{budget}" in k for k in keys)
        for key in keys:
            ttl_s = client.pttl(key) / 1000
            # Every key goes away on its own: hours after 2-3 h, days after 2-3 days.
            assert 0 < ttl_s <= 3 * 86400, (key, ttl_s)
            if ":hour:" in key or ":s:" in key:
                assert ttl_s <= 27 * 3600, (key, ttl_s)
    finally:
        client.close()


WORKER = r"""
import asyncio, json, random, sys
from datetime import datetime
from director_llm.budget import BudgetExceededError, BudgetLimits, RedisLedger

url, prefix, mode, n, amount, per_hour, clock_iso, ttl, seed = sys.argv[1:10]
n, amount, per_hour, ttl = int(n), float(amount), float(per_hour), float(ttl)
rng = random.Random(int(seed))

async def main():
    now = datetime.fromisoformat(clock_iso)
    led = RedisLedger(url, prefix=prefix, limits=BudgetLimits(per_hour=per_hour),
                      clock=lambda: now, reservation_ttl_s=ttl)
    await led.can_afford(0.0001, "p")  # connect and load the scripts before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    if mode == "hold":
        held = [await led.reserve(amount_usd=amount, provider="p", model="m") for _ in range(n)]
        print(json.dumps({"held": len(held)}), flush=True)
        await asyncio.sleep(3600)  # killed by the test while holding
        return

    async def one(i):
        try:
            res = await led.reserve(amount_usd=amount, provider="p", model="m")
        except BudgetExceededError:
            return ("refused", 0)
        await asyncio.sleep(rng.random() * 0.01)
        if mode == "partial" and i % 5 == 0:
            await led.release(res)
            return ("released", 0)
        # Exact micro-dollar multiples, so the test can compare sums exactly.
        micros = round(amount * 1e6) if mode == "exact" else rng.randint(1, round(amount * 1e6))
        await led.settle(res, actual_usd=micros / 1e6, prompt_tokens=10, completion_tokens=2)
        return ("settled", micros)

    results = await asyncio.gather(*(one(i) for i in range(n)))
    out = {k: sum(1 for r, _ in results if r == k) for k in ("refused", "released", "settled")}
    out["spent_micros"] = sum(m for _, m in results)
    print(json.dumps(out), flush=True)
    await led.aclose()

asyncio.run(main())
"""


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _start_together(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        line = p.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "ready", (line, p.stderr.read() if p.poll() is not None else "")  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]


def _run_workers(
    redis_url: str, prefix: str, mode: str, *, per_hour: float, amount: float, workers: int = 4, per_worker: int = 50
) -> list[dict[str, int]]:
    procs = [
        _spawn([redis_url, prefix, mode, per_worker, amount, per_hour, T0.isoformat(), 300, seed])
        for seed in range(workers)
    ]
    try:
        _start_together(procs)
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outs, strict=False):
        assert p.returncode == 0, err
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


async def test_four_processes_never_overspend(make_ledger: LedgerFactory, redis_url: str, redis_prefix: str) -> None:
    # 80 concurrent reservations of 0.20 against 10.00: exactly 50 can be afforded. No process
    # asks for more than 20, so at least three must win some: the race is between processes
    # whatever the scheduler does (with 50 each, one fast process could take them all).
    reports = _run_workers(redis_url, redis_prefix, "exact", per_hour=10.0, amount=0.2, per_worker=20)
    granted = sum(r["settled"] for r in reports)
    assert granted == 50, reports
    assert sum(r["refused"] for r in reports) == 30
    assert sum(r["settled"] > 0 for r in reports) >= 3
    report = await make_ledger(per_hour=10.0).snapshot(by="provider")
    hour = report.windows["hour"]
    assert hour.spent_usd == pytest.approx(sum(r["spent_micros"] for r in reports) / 1e6, abs=1e-9)
    assert hour.spent_usd <= 10.0 + 1e-9 and hour.reserved_usd == 0.0
    assert report.usage["p"].requests == granted and report.usage["p"].prompt_tokens == 10 * granted


async def test_four_processes_with_releases_and_cheaper_calls(
    make_ledger: LedgerFactory, redis_url: str, redis_prefix: str
) -> None:
    reports = _run_workers(redis_url, redis_prefix, "partial", per_hour=10.0, amount=0.2)
    settled = sum(r["settled"] for r in reports)
    reported = sum(r["spent_micros"] for r in reports) / 1e6
    hour = (await make_ledger(per_hour=10.0).snapshot()).windows["hour"]
    assert hour.spent_usd == pytest.approx(reported, abs=1e-9)
    assert hour.spent_usd <= 10.0 and hour.reserved_usd == 0.0
    # Actual costs below the estimates free budget that later reservations use.
    assert settled + sum(r["released"] for r in reports) >= 50


async def test_killed_holder_frees_budget_after_ttl(
    make_ledger: LedgerFactory, redis_url: str, redis_prefix: str
) -> None:
    holder = _spawn([redis_url, redis_prefix, "hold", 3, 3.0, 10.0, T0.isoformat(), 5, 0])
    try:
        _start_together([holder])
        assert json.loads(holder.stdout.readline()) == {"held": 3}  # type: ignore[union-attr]
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(10) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    clock = Clock(T0 + timedelta(seconds=1))
    led = make_ledger(clock, ttl=5, per_hour=10.0)
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=1.5, provider="p", model="m")
    assert info.value.reserved_usd == pytest.approx(9.0)  # the dead process's holds
    clock.advance(seconds=4)  # T0 + 5 s: its holds expire
    assert (await led.remaining())["hour"] == 10.0
    await led.reserve(amount_usd=10.0, provider="p", model="m")


async def test_outage_raises_backend_error_but_zero_cost_still_served(redis_server) -> None:  # type: ignore[no-untyped-def]
    led = RedisLedger(redis_server.url, prefix="outage:", limits=BudgetLimits(per_hour=1.0))
    try:
        await led.reserve(amount_usd=0.1, provider="p", model="m")
        redis_server.stop()
        with pytest.raises(BudgetBackendError, match="zero-cost"):
            await led.reserve(amount_usd=0.1, provider="p", model="m")
        free = await led.reserve(amount_usd=0, provider="ollama", model="llama")
        assert free.amount_usd == 0
        with pytest.raises(BudgetBackendError):
            await led.snapshot()
        redis_server.start()  # empty again: the scripts must be reloaded transparently
        await led.reserve(amount_usd=1.0, provider="p", model="m")
        assert (await led.remaining())["hour"] == 0.0
    finally:
        await led.aclose()


async def test_client_without_decoding_is_accepted(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)  # bytes replies
    try:
        led = RedisLedger(client=client, prefix=redis_prefix, limits=BudgetLimits(per_hour=1.0), clock=Clock())
        res = await led.reserve(amount_usd=0.5, provider="p", model="m")
        await led.settle(res, actual_usd=0.4, prompt_tokens=3, completion_tokens=1)
        report = await led.snapshot(by="provider")
        assert report.usage["p"].cost_usd == pytest.approx(0.4)
        assert report.windows["hour"].remaining_usd == pytest.approx(0.6)
    finally:
        await client.aclose()


async def test_concurrent_tasks_in_one_process(make_ledger: LedgerFactory) -> None:
    led = make_ledger(per_hour=1.0)

    async def attempt() -> int:
        try:
            await led.reserve(amount_usd=0.05, provider="p", model="m")
            return 1
        except BudgetExceededError:
            return 0

    assert sum(await asyncio.gather(*(attempt() for _ in range(60)))) == 20
