"""MemoryLedger: reserve/settle/release arithmetic, windows, errors and reports."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from director_llm.budget import (
    BudgetExceededError,
    BudgetLedger,
    BudgetLimits,
    MemoryLedger,
    ProviderLimits,
    ReservationClosedError,
    estimate_worst_case_cost,
)
from director_llm.errors import DirectorError

T0 = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


def ledger(clock: Clock | None = None, *, ttl: float = 300.0, **limits: object) -> MemoryLedger:
    return MemoryLedger(limits=BudgetLimits(**limits), clock=clock or Clock(), reservation_ttl_s=ttl)


async def test_memory_ledger_satisfies_protocol() -> None:
    assert isinstance(ledger(per_hour=1.0), BudgetLedger)


async def test_reserve_settle_release_arithmetic() -> None:
    led = ledger(per_hour=1.0)
    res = await led.reserve(amount_usd=0.4, provider="openai", model="gpt-4o-mini")
    assert (await led.remaining())["hour"] == pytest.approx(0.6)
    await led.settle(res, actual_usd=0.25, prompt_tokens=100, completion_tokens=20)
    assert (await led.remaining())["hour"] == pytest.approx(0.75)

    failed = await led.reserve(amount_usd=0.5, provider="openai", model="gpt-4o-mini")
    assert (await led.remaining())["hour"] == pytest.approx(0.25)
    await led.release(failed)
    hour = (await led.snapshot()).windows["hour"]
    assert (hour.spent_usd, hour.reserved_usd, hour.remaining_usd) == pytest.approx((0.25, 0.0, 0.75))


async def test_settle_twice_raises_and_release_after_settle_is_noop() -> None:
    led = ledger(per_hour=1.0)
    res = await led.reserve(amount_usd=0.4, provider="openai", model="m")
    await led.settle(res, actual_usd=0.4, prompt_tokens=1, completion_tokens=1)
    with pytest.raises(ReservationClosedError):
        await led.settle(res, actual_usd=0.4, prompt_tokens=1, completion_tokens=1)
    await led.release(res)  # as in a finally block: must not give 0.4 back
    assert (await led.remaining())["hour"] == pytest.approx(0.6)
    assert res.state == "settled"


async def test_integer_units_do_not_drift_at_the_limit() -> None:
    # Ten reservations of 0.1 must exactly fill 1.0 (float sums give 0.9999999999999999).
    led = ledger(per_hour=1.0)
    for _ in range(10):
        res = await led.reserve(amount_usd=0.1, provider="p", model="m")
        await led.settle(res, actual_usd=0.1, prompt_tokens=0, completion_tokens=0)
    assert (await led.remaining())["hour"] == 0.0
    with pytest.raises(BudgetExceededError):
        await led.reserve(amount_usd=1e-9, provider="p", model="m")


async def test_zero_amount_always_passes_and_still_counts_usage() -> None:
    led = ledger(per_hour=0.0, per_day=0.0, per_provider={"ollama": (0.0, 0.0)})
    with pytest.raises(BudgetExceededError):
        await led.reserve(amount_usd=0.001, provider="ollama", model="llama3.2")
    res = await led.reserve(amount_usd=0.0, provider="ollama", model="llama3.2")
    assert await led.can_afford(0.0, "ollama")
    await led.settle(res, actual_usd=0.0, prompt_tokens=30, completion_tokens=7)
    report = await led.snapshot(by="provider")
    assert report.usage["ollama"].requests == 1
    assert report.usage["ollama"].prompt_tokens == 30
    assert report.usage["ollama"].completion_tokens == 7


async def test_day_window_refuses_while_the_hour_has_room() -> None:
    clock = Clock()
    led = ledger(clock, per_hour=1.0, per_day=1.5)
    res = await led.reserve(amount_usd=1.0, provider="p", model="m")
    await led.settle(res, actual_usd=1.0, prompt_tokens=0, completion_tokens=0)
    clock.advance(hours=1)
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.6, provider="p", model="m")
    assert info.value.window == "day"
    assert info.value.resets_at == datetime(2026, 11, 26, tzinfo=UTC)
    await led.reserve(amount_usd=0.5, provider="p", model="m")  # exactly the day's rest


async def test_provider_window_only_limits_its_provider() -> None:
    led = ledger(per_hour=10.0, per_provider={"openai": ProviderLimits(per_hour=0.5)})
    await led.reserve(amount_usd=0.4, provider="openai", model="gpt-4o")
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.2, provider="openai", model="gpt-4o")
    assert info.value.window == "provider:openai:hour"
    assert await led.can_afford(0.2, "gemini")
    await led.reserve(amount_usd=0.2, provider="gemini", model="flash")
    remaining = await led.remaining()
    assert remaining["hour"] == pytest.approx(9.4)
    assert remaining["provider:openai:hour"] == pytest.approx(0.1)
    assert "provider:openai:day" not in remaining  # no limit there


async def test_error_fields_and_message() -> None:
    led = ledger(per_hour=1.0)
    first = await led.reserve(amount_usd=0.5, provider="p", model="m")
    await led.settle(first, actual_usd=0.5, prompt_tokens=0, completion_tokens=0)
    await led.reserve(amount_usd=0.3, provider="p", model="m")
    with pytest.raises(BudgetExceededError) as info:
        await led.reserve(amount_usd=0.25, provider="p", model="m")
    err = info.value
    assert isinstance(err, DirectorError)
    assert (err.window, err.limit_usd, err.spent_usd, err.reserved_usd, err.requested_usd) == (
        "hour",
        1.0,
        0.5,
        0.3,
        0.25,
    )
    assert err.resets_at == datetime(2026, 11, 25, 21, tzinfo=UTC)
    msg = str(err)
    for part in (
        "'hour'",
        "2026-11-25T20",
        "$0.250000",
        "$0.200000 of $1.000000",
        "2026-11-25T21:00:00",
        "budget_per_hour",
    ):
        assert part in msg, (part, msg)


async def test_hour_rollover_books_settlement_in_the_reservation_hour() -> None:
    clock = Clock(datetime(2026, 11, 25, 20, 59, 50, tzinfo=UTC))
    led = ledger(clock, per_hour=1.0)
    late = await led.reserve(amount_usd=1.0, provider="p", model="m")
    assert not await led.can_afford(0.01, "p")
    clock.advance(seconds=15)  # 21:00:05: a fresh hour
    assert (await led.remaining())["hour"] == 1.0
    await led.settle(late, actual_usd=0.9, prompt_tokens=5, completion_tokens=5)
    # The late call was admitted by hour 20's check, so its cost stays in hour 20.
    assert (await led.remaining())["hour"] == 1.0
    report = await led.snapshot(by="hour")
    assert report.hourly["2026-11-25T20"].cost_usd == pytest.approx(0.9)
    assert report.hourly["2026-11-25T21"].requests == 0
    assert list(report.hourly)[-1] == "2026-11-25T21" and len(report.hourly) == 24


async def test_day_rollover_resets_the_day_window() -> None:
    clock = Clock(datetime(2026, 11, 25, 23, 10, tzinfo=UTC))
    led = ledger(clock, per_day=1.0)
    res = await led.reserve(amount_usd=1.0, provider="p", model="m")
    await led.settle(res, actual_usd=1.0, prompt_tokens=0, completion_tokens=0)
    assert not await led.can_afford(0.5, "p")
    clock.advance(hours=1)
    assert await led.can_afford(1.0, "p")
    assert (await led.snapshot()).windows["day"].period == "2026-11-26"


async def test_expired_reservation_frees_budget_and_late_settle_is_truthful() -> None:
    clock = Clock()
    led = ledger(clock, ttl=60, per_hour=1.0)
    stale = await led.reserve(amount_usd=0.8, provider="p", model="m")
    clock.advance(seconds=59)
    assert not await led.can_afford(0.3, "p")
    clock.advance(seconds=1)  # the holder is presumed dead
    assert await led.can_afford(1.0, "p")
    other = await led.reserve(amount_usd=0.7, provider="p", model="m")
    await led.settle(stale, actual_usd=0.5, prompt_tokens=0, completion_tokens=0)
    hour = (await led.snapshot()).windows["hour"]
    # The real cost is booked even though it now overshoots; the report says so.
    assert (hour.spent_usd, hour.reserved_usd, hour.remaining_usd) == pytest.approx((0.5, 0.7, 0.0))
    await led.release(other)
    assert (await led.remaining())["hour"] == pytest.approx(0.5)


async def test_settle_above_the_estimate_is_recorded() -> None:
    led = ledger(per_hour=1.0)
    res = await led.reserve(amount_usd=0.1, provider="p", model="m")
    await led.settle(res, actual_usd=0.12, prompt_tokens=0, completion_tokens=0)
    assert (await led.snapshot()).windows["hour"].spent_usd == pytest.approx(0.12)


async def test_can_afford_takes_no_hold() -> None:
    led = ledger(per_hour=1.0)
    assert await led.can_afford(1.0, "p")
    assert await led.can_afford(1.0, "p")
    assert not await led.can_afford(1.01, "p")
    await led.reserve(amount_usd=1.0, provider="p", model="m")


async def test_snapshot_groups_by_provider_model_and_hour() -> None:
    clock = Clock()
    led = ledger(clock, per_hour=10.0, per_provider={"openai": (1.0, None)})
    calls = [
        ("openai", "gpt-4o", 0.3, 100, 10),
        ("openai", "gpt-4o-mini", 0.01, 50, 5),
        ("gemini", "flash", 0.02, 70, 7),
    ]
    for provider, model, cost, pt, ct in calls:
        res = await led.reserve(amount_usd=cost, provider=provider, model=model)
        await led.settle(res, actual_usd=cost, prompt_tokens=pt, completion_tokens=ct)
        clock.advance(hours=1)
    by_provider = await led.snapshot(by="provider")
    assert set(by_provider.usage) == {"openai", "gemini"}
    assert by_provider.usage["openai"].requests == 2
    assert by_provider.usage["openai"].cost_usd == pytest.approx(0.31)
    assert by_provider.usage["openai"].prompt_tokens == 150
    assert by_provider.total.requests == 3 and by_provider.total.completion_tokens == 22
    assert "provider:gemini:hour" in by_provider.windows  # seen, though not configured
    assert by_provider.windows["provider:gemini:hour"].limit_usd is None
    by_model = await led.snapshot(by="model")
    assert by_model.usage["openai:gpt-4o-mini"].cost_usd == pytest.approx(0.01)
    by_hour = await led.snapshot(by="hour")
    assert [u.requests for u in by_hour.usage.values()][-4:] == [1, 1, 1, 0]
    assert (await led.snapshot()).usage == {}
    json.dumps(by_model.to_dict())  # JSON-ready for the CLI
    with pytest.raises(ValueError):
        await led.snapshot(by="region")  # type: ignore[arg-type]


async def test_concurrent_tasks_never_overspend() -> None:
    led = ledger(per_hour=10.0)

    async def attempt() -> bool:
        try:
            res = await led.reserve(amount_usd=0.2, provider="p", model="m")
        except BudgetExceededError:
            return False
        await asyncio.sleep(0)
        await led.settle(res, actual_usd=0.2, prompt_tokens=0, completion_tokens=0)
        return True

    granted = sum(await asyncio.gather(*(attempt() for _ in range(200))))
    assert granted == 50
    assert (await led.snapshot()).windows["hour"].spent_usd == pytest.approx(10.0)


async def test_naive_clock_is_read_as_utc() -> None:
    led = MemoryLedger(limits=BudgetLimits(per_hour=1.0), clock=lambda: datetime(2026, 11, 25, 20, 30))
    res = await led.reserve(amount_usd=0.1, provider="p", model="m")
    assert res.hour == "2026-11-25T20" and res.expires_at.tzinfo is UTC


def test_estimate_worst_case_cost() -> None:
    assert estimate_worst_case_cost(1000, 200, 1e-6, 4e-6) == pytest.approx(0.0018)
    assert estimate_worst_case_cost(0, 0, 1.0, 1.0) == 0.0
    with pytest.raises(ValueError):
        estimate_worst_case_cost(-1, 10, 1e-6, 1e-6)


def test_limits_validate_and_accept_tuples() -> None:
    limits = BudgetLimits(per_hour=1.0, per_provider={"openai": (0.5, 2.0)})
    assert limits.per_provider["openai"] == ProviderLimits(per_hour=0.5, per_day=2.0)
    with pytest.raises(ValueError, match="per_hour"):
        BudgetLimits(per_hour=-1.0)
    with pytest.raises(ValueError):
        BudgetLimits(per_provider={"a|b": (1.0, None)})


async def test_invalid_amounts_are_rejected() -> None:
    led = ledger(per_hour=1.0)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            await led.reserve(amount_usd=bad, provider="p", model="m")
