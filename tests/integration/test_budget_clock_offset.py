"""The ledgers keep limiting when the app's clock and Redis's clock disagree.

Key lifetimes are relative (``PEXPIRE``), so an app host whose clock is 30 days behind (or
ahead of) the Redis server still creates live keys: reservations hold, spend is counted,
requests over the limit are refused, and expired reservations are reclaimed on the
ledger's own clock. Each case runs on the memory and the Redis store, with the injected
clock offset from the real time (never a fixed date).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from director_llm.budget import BudgetExceededError, BudgetLimits, MemoryLedger, RedisLedger

OFFSETS = {"30 days behind": timedelta(days=-30), "30 days ahead": timedelta(days=30), "in sync": timedelta(0)}


class OffsetClock:
    """The real time plus an offset, advanced by hand on top of it."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


Factory = Callable[[OffsetClock], MemoryLedger | RedisLedger]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Factory]:
    made: list[MemoryLedger | RedisLedger] = []
    limits = BudgetLimits(per_hour=1.0, per_provider={"openai": (0.5, None)})

    def factory(clock: OffsetClock) -> MemoryLedger | RedisLedger:
        if request.param == "memory":
            led: MemoryLedger | RedisLedger = MemoryLedger(limits=limits, clock=clock, reservation_ttl_s=30)
        else:
            url = request.getfixturevalue("redis_url")
            led = RedisLedger(url, prefix=redis_prefix, limits=limits, clock=clock, reservation_ttl_s=30)
        made.append(led)
        return led

    yield factory
    for led in made:
        await led.aclose()


@pytest.mark.parametrize("offset", list(OFFSETS.values()), ids=list(OFFSETS))
async def test_reserve_settle_refuse_and_expiry_hold_with_a_clock_offset(make: Factory, offset: timedelta) -> None:
    clock = OffsetClock(offset)
    led = make(clock)
    res = await led.reserve(amount_usd=0.3, provider="openai", model="gpt-4o")
    await led.settle(res, actual_usd=0.2, prompt_tokens=10, completion_tokens=5)
    held = await led.reserve(amount_usd=0.25, provider="openai", model="gpt-4o")
    # spent 0.2 + held 0.25 + 0.1 > the provider's 0.5: refused, naming the window
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.1, provider="openai", model="gpt-4o")
    assert info.value.window == "provider:openai:hour"
    assert (info.value.spent_usd, info.value.reserved_usd) == pytest.approx((0.2, 0.25))
    assert await led.remaining() == pytest.approx({"hour": 0.55, "provider:openai:hour": 0.05})
    # The hold expires on the ledger's own clock (30 s TTL), whatever Redis's clock says.
    clock.advance(seconds=31)
    assert await led.remaining() == pytest.approx({"hour": 0.8, "provider:openai:hour": 0.3})
    late = await led.reserve(amount_usd=0.3, provider="openai", model="gpt-4o")
    await led.release(late)
    await led.release(held)  # expired already: a no-op, nothing is given back twice
    report = await led.snapshot(by="provider")
    assert report.usage["openai"].requests == 1
    assert report.total.cost_usd == pytest.approx(0.2)


@pytest.mark.parametrize("offset", list(OFFSETS.values()), ids=list(OFFSETS))
async def test_redis_keys_live_for_the_window_whatever_the_offset(
    redis_url: str, redis_prefix: str, offset: timedelta
) -> None:
    led = RedisLedger(
        redis_url,
        prefix=redis_prefix,
        limits=BudgetLimits(per_hour=1.0, per_day=2.0),
        clock=OffsetClock(offset),
        reservation_ttl_s=30,
    )
    try:
        await led.settle(
            await led.reserve(amount_usd=0.1, provider="openai", model="m"),
            actual_usd=0.1,
            prompt_tokens=1,
            completion_tokens=1,
        )
        open_hold = await led.reserve(amount_usd=0.1, provider="openai", model="m")
        assert open_hold.state == "open"
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = list(client.scan_iter(match=f"{redis_prefix}*"))
            assert any(":w:hour:" in k for k in keys) and any(":x:hour:" in k for k in keys)
            for key in keys:
                ttl_s = client.pttl(key) / 1000
                # Hour data: the rest of the hour + 2 h keep; day data: the rest of the day + 2 days.
                assert 2 * 3600 - 60 < ttl_s <= 3 * 86400, (key, ttl_s)
        finally:
            client.close()
    finally:
        await led.aclose()
